"""The `vidray` command: parses arguments, loads config, and calls the library.

Every command ends with a summary: where its output is, counts, and `next: ...`, the command
to run next. On a terminal these go to stdout. When stdout is not a terminal (or with --json),
stdout gets one JSON line instead and the summary goes to stderr (predict and search write
their results on stdout, and their summary always on stderr). Long work shows progress on
stderr (`--progress`, see vidray.progress).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from vidray.config import Config, ConfigError, apply_override, load_config
from vidray.progress import ENV_MODE, MODES, AboveBars, current_mode, echo, set_mode


def _config(args: argparse.Namespace, section: str) -> Config:
    """Load the config; `key=value` overrides may omit the command's own section name."""
    cfg = load_config(args.config)
    for item in args.overrides:
        key = item.split("=", 1)[0]
        top = key.split(".", 1)[0]
        apply_override(cfg if top in ("build", "dedup", "train") else getattr(cfg, section), item)
    return cfg


def finish(
    summary: dict[str, Any] | None,
    lines: list[str],
    next_step: str | None = None,
    as_json: bool = False,
) -> int:
    """End a command. On a terminal: `lines` and `next: NEXT_STEP` on stdout. When stdout is
    not a terminal, or with `as_json`: `summary` as one JSON line on stdout, and the lines on
    stderr. `summary=None` is for commands whose stdout holds their results (predict, search):
    their lines always go to stderr. Returns 0, the command's exit status."""
    machine = summary is None or as_json or not sys.stdout.isatty()
    human = sys.stderr if machine else sys.stdout
    for line in lines:
        print(line, file=human)
    if next_step:
        print(f"next: {next_step}", file=human)
    human.flush()
    if summary is not None and machine:
        print(json.dumps(summary, default=str), flush=True)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from vidray.testing.sample import make_samples

    paths = make_samples(
        args.dir, videos=args.videos, minutes=args.minutes, seed=args.seed, subjects=args.subjects
    )
    return finish(
        {"dir": args.dir, "videos": len(paths), "files": [str(p) for p in paths]},
        [f"wrote {len(paths)} narrated videos with ground truth to {args.dir}"],
        f"vidray build {args.dir} --output OUT",
        args.json,
    )


def cmd_build(args: argparse.Namespace) -> int:
    from vidray.pipeline import run_build

    cfg = _config(args, "build")
    if args.max_videos is not None:
        cfg.build.sources.max_videos = args.max_videos
    # Per-video lines: all of them with -v; else the failures, above the bar or in the job's
    # log, and none when progress is off (stderr is then kept for the summary).
    shown = args.verbose or current_mode() != "none"

    def progress(summary: dict[str, Any], done: int, total: int) -> None:
        if not (args.verbose or (shown and summary["error"])):
            return
        if summary["error"]:
            what = (
                f"error at {summary['error_stage']} ({summary['error_reason']}): {summary['error']}"
            )
        else:
            what = (
                f"{summary['n_words']} words, {summary['frames_kept']}/{summary['frames_sampled']} "
                f"frames kept, {summary['n_labels']} labels"
            )
        name = summary["url"] or Path(summary["source"] or "?").name
        echo(f"[{done}/{total}] {name}: {what}")

    result = run_build(args.inputs, args.output, cfg.build, progress=progress, resume=args.resume)
    out = args.output.rstrip("/")
    skipped = f" ({result.skipped} already built, skipped)" if result.skipped else ""
    lines = [
        f"built {args.output}: {result.videos} videos, {result.errors} errors{skipped}, "
        f"{result.frames_kept}/{result.frames_sampled} frames kept in {result.seconds:.1f}s"
    ]
    if result.fetched:
        lines.append(f"fetched {result.fetched} videos ({result.fetched_bytes / 2**20:,.0f} MiB)")
    if result.error_stages:
        stages = sorted(result.error_stages.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append(
            "errors by stage: "
            + ", ".join(f"{stage} {n}" for stage, n in stages)
            + f"; one row each, with the reason, in {out}/errors/"
        )
    lines.append(f"dataset card: {out}/README.md")
    step = f"vidray train {args.output} --model-dir MODEL_DIR"
    if not result.videos and not result.skipped:
        step = f"read {out}/README.md (errors by stage and reason), then build again"
    return finish(vars(result), lines, step, args.json)


def cmd_dedup(args: argparse.Namespace) -> int:
    from vidray.semdedup import run_dedup

    cfg = _config(args, "dedup")
    summary = run_dedup(args.root, cfg.dedup, ray_address=cfg.build.ray.address)
    where = f"{args.root.rstrip('/')}/duplicates/"
    lines = [summary["message"]] if summary["message"] else []
    lines.append(
        f"{summary['duplicates']} of {summary['with_embeddings']} embedded frames are "
        f"near-duplicates of a kept frame ({summary['clusters']} clusters, "
        f"{summary['seconds']:.1f}s): listed in {where}; frames/ is unchanged, and "
        f"vidray.open_dataset({args.root!r}, unique=True) reads the frames without them"
    )
    return finish(
        {**summary, "root": args.root, "duplicates_dir": where},
        lines,
        f"vidray train {args.root} --model-dir MODEL_DIR (train.unique leaves the duplicates out)",
        args.json,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from vidray.train.ray_train import train

    cfg = _config(args, "train")
    summary = train(args.root, args.model_dir, cfg.train, resume=args.resume)
    metrics = summary["metrics"]
    lines = [
        f"trained {summary['model_dir']}: {summary['epochs_done']} epochs on "
        f"{summary['labelled_train_frames']} frames of {summary['train_videos']} videos, "
        f"{summary['workers']} workers, {summary['train_seconds']:.0f}s; vocabulary "
        f"{summary['vocab_size']} words; val_loss {metrics.get('val_loss', float('nan')):.3f}, "
        f"val_top5_hit {metrics.get('val_top5_hit', float('nan')):.2f}",
        f"checkpoint: {summary['checkpoint']}",
    ]
    return finish(summary, lines, f"vidray eval --model-dir {args.model_dir}", args.json)


def cmd_predict(args: argparse.Namespace) -> int:
    from vidray.query import expand_images, load_model

    model = load_model(args.model_dir)
    named = expand_images(args.images)
    start = time.perf_counter()
    preds = model.predict([im for _, im in named], k=args.k, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    for (name, _), top in zip(named, preds, strict=True):
        if args.json:
            print(json.dumps({"image": name, "words": [[w, round(p, 4)] for w, p in top]}))
        else:
            print(f"{name}: " + ", ".join(f"{w} {p:.2f}" for w, p in top))
    sys.stdout.flush()
    return finish(
        None,
        [
            f"predicted top-{args.k} words for {len(named)} images in {seconds:.2f}s "
            f"with {args.model_dir}"
        ],
        f"vidray search --model-dir {args.model_dir} WORD... (words -> frames)",
    )


def cmd_index(args: argparse.Namespace) -> int:
    from vidray.query import load_model

    model = load_model(args.model_dir)
    info = model.build_index(args.root)
    line = (
        f"indexed {info['rows']} frames of {info['root']} in {info['seconds']:.1f}s "
        f"({info['skipped_without_image']} without image skipped): {model.index_dir}"
    )
    return finish(
        {**info, "index_dir": str(model.index_dir)},
        [line],
        f"vidray search --model-dir {args.model_dir} WORD...",
        args.json,
    )


def cmd_search(args: argparse.Namespace) -> int:
    from vidray.query import load_model

    model = load_model(args.model_dir)
    model.word_weights(args.words)  # unknown words fail before any indexing; loads spaCy
    model.load_index()  # built here if missing, so the timing below is the search alone
    start = time.perf_counter()
    hits = model.search(args.words, k=args.k, with_images=bool(args.save))
    seconds = time.perf_counter() - start
    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    for rank, hit in enumerate(hits, 1):
        out = None
        if save and hit.get("image"):
            name = f"{rank:02d}_{hit['video_id']}_{hit['frame_ts']:.1f}.jpg"
            out = save / "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
            out.write_bytes(hit.pop("image"))
        hit.pop("image", None)
        if args.json:
            print(json.dumps({"rank": rank, **hit, "file": str(out) if out else None}))
        else:
            line = (
                f"{rank:2d}. {hit['video_id']} t={hit['frame_ts']:.1f}s score={hit['score']:.3f} "
                f"[{', '.join(hit['labels'] or [])}] {hit['source']}"
            )
            print(line + (f" -> {out}" if out else ""))
    sys.stdout.flush()
    where = f", frames saved to {save}" if save else ""
    words = " ".join(args.words)
    step = (
        f"look at the frames in {save}"
        if save
        else f"vidray search --model-dir {args.model_dir} --save DIR {words} (saves the frames)"
    )
    return finish(
        None,
        [
            f"{len(hits)} frames for {words!r} in {seconds * 1000:.1f} ms "
            f"({'search + reading images' if save else 'exact search'}) from {model.index_dir}{where}"
        ],
        step,
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from vidray.train.evaluate import evaluate

    report = evaluate(args.model_dir, root=args.root, out_dir=args.out)
    i2w, w2i = report["image_to_word"], report["word_to_image"]
    base, chance = i2w["baseline"], w2i["chance"]

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.1%}"

    lines = [
        f"held out: {report['frames']} frames of {report['heldout_videos']} videos "
        f"({report['frames_skipped']} without vocabulary labels skipped), "
        f"vocabulary {report['vocab_size']} words",
        f"image -> words: mAP {pct(i2w['map'])} (baseline {pct(base['map'])}, "
        f"{i2w['labels_with_positives']} labels), top-1 {pct(i2w['top1'])} "
        f"(baseline {pct(base['top1'])}), top-5 {pct(i2w['top5'])} (baseline {pct(base['top5'])})",
        "words -> image: "
        + ", ".join(
            f"R@{k} {pct(w2i[f'recall_at_{k}'])} (chance {pct(chance[f'recall_at_{k}'])})"
            for k in (1, 5, 10)
        ),
    ]
    if report["best_labels"]:
        lines.append(f"best labels: {', '.join(report['best_labels'][:5])}")
        lines.append(f"worst labels: {', '.join(report['worst_labels'][:5])}")
    folder = Path(report["metrics_file"]).parent
    lines.append(f"evaluated {args.model_dir}: metrics and plots in {folder}")
    # Per-label rows stay in metrics.json: a vocabulary of thousands is no one-line summary.
    summary = {k: v for k, v in report.items() if k != "labels"}
    return finish(summary, lines, f"vidray search --model-dir {args.model_dir} WORD...", args.json)


def cmd_score(args: argparse.Namespace) -> int:
    from vidray.evaluate import score_dataset, score_model

    report = score_dataset(args.root, args.truth)
    if args.model_dir:
        report["model"] = score_model(args.model_dir, args.root, args.truth, examples=args.examples)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    lines = [
        f"dataset: {report['videos']} videos, {report['frames_kept']}/{report['frames_sampled']} frames kept, "
        f"label precision {report['label_precision']:.2f}, subject recall {report['subject_recall']:.2f}"
    ]
    model = report.get("model") or {}
    if model.get("heldout_frames"):
        lines.append(
            f"model: subject in top-5 for {model['subject_top5']:.0%} of {model['heldout_frames']} held-out frames "
            f"({model['subject_top5_in_vocab']:.0%} where the subject is in the vocabulary); "
            f"frequency baseline {model['frequency_baseline_top5']:.0%}, chance {model['chance_top5']:.0%}"
        )
        if model.get("search_queries"):
            lines.append(
                f"search: a frame of the subject in the top 5 for {model['search_recall_at_5']:.0%} "
                f"of {model['search_queries']} subject queries; precision@5 "
                f"{model['search_precision_at_5']:.0%} (base rate {model['search_base_rate']:.0%})"
            )
        for ex in model.get("examples", []):
            top = ", ".join(f"{w} {p:.2f}" for w, p in ex["top5"])
            lines.append(
                f"  {ex['video']} t={ex['frame_ts']:5.1f}s  true subject: {ex['subject']:<9} predicted: {top}"
            )
    lines.append(f"scored {args.root}" + (f": full report in {args.out}" if args.out else ""))
    step = (
        f"vidray eval --model-dir {args.model_dir} (scores against the dataset's own labels)"
        if args.model_dir
        else f"vidray train {args.root} --model-dir MODEL_DIR, then score with --model-dir"
    )
    if args.brief:  # the human summary on stdout, even when it is not a terminal (make demo)
        print("\n".join([*lines, f"next: {step}"]))
        return 0
    return finish(report, lines, step, args.json)


def cmd_report(args: argparse.Namespace) -> int:
    from vidray.report import write_report

    summary = write_report(args.out, root=args.root, model_dir=args.model_dir, gallery=args.gallery)
    parts = []
    if summary.get("dataset"):
        d = summary["dataset"]
        parts.append(
            f"{d['videos']} videos, {d['frames']} frames ({d['gallery']} in the gallery), "
            f"{d['labels']} labels, {d['errors']} errors"
        )
    if summary.get("model"):
        m = summary["model"]
        evaluated = "evaluated" if m["evaluated"] else "not evaluated"
        parts.append(
            f"model {evaluated}, {m['examples']} example predictions, "
            f"{m['layers']} weight matrices analysed"
        )
    return finish(
        summary,
        [f"report in {summary['out']}: {'; '.join(parts)}; {summary['seconds']:.1f}s"],
        f"open {summary['index']} in a browser (no server needed)",
        args.json,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vidray", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-v", "--verbose", action="store_true", help="more logging; every video built")
    progress_help = (
        "progress on stderr: a bar redrawn in place, a line every $VIDRAY_PROGRESS_INTERVAL "
        "seconds (30; for logs), or none; auto (the default, or $VIDRAY_PROGRESS): a bar on a "
        "terminal, else none"
    )
    p.add_argument(
        "--progress", choices=MODES, default=os.environ.get(ENV_MODE) or "auto", help=progress_help
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sample", help="make narrated sample videos with ground truth (espeak-ng)")
    s.add_argument("dir")
    s.add_argument("--videos", type=int, default=3)
    s.add_argument("--minutes", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--subjects", type=int, default=24, help="how many of the 24 subjects appear")
    s.add_argument("--json", action="store_true", help="print a JSON summary")
    s.set_defaults(func=cmd_sample)

    b = sub.add_parser("build", help="build the labelled frame dataset from videos")
    b.add_argument(
        "inputs",
        nargs="+",
        help="video files or folders, URLs, URL lists (.txt/.csv/.parquet/.jsonl), playlists, "
        "channels, searches (ytsearch20:QUERY), s3:// prefixes; key=value overrides may follow",
    )
    b.add_argument("--max-videos", type=int, help="stop expanding inputs after this many videos")
    b.add_argument(
        "--output",
        "-o",
        required=True,
        help="a local folder or s3://bucket/prefix; one that already holds a dataset is refused "
        "unless --resume",
    )
    b.add_argument(
        "--resume",
        action="store_true",
        help="continue a dataset in --output: skip videos it already holds (in videos/ or "
        "errors/) and delete what an interrupted run left uncommitted",
    )
    b.add_argument("--config", help="YAML config (default: configs/local.yaml)")
    b.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    b.set_defaults(func=cmd_build)

    d = sub.add_parser(
        "dedup",
        help="find near-duplicate frames across videos (SemDeDup on embeddings); writes "
        "ROOT/duplicates/ and leaves frames/ as it is",
    )
    d.add_argument("root", help="dataset root written by `vidray build` with build.embed on")
    d.add_argument("--config")
    d.add_argument("--json", action="store_true", help="print a JSON summary")
    d.set_defaults(func=cmd_dedup)

    t = sub.add_parser("train", help="train the image<->word model with Ray Train")
    t.add_argument("root", help="dataset root written by `vidray build`")
    t.add_argument("--model-dir", required=True)
    t.add_argument("--config")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --model-dir (or train.checkpoint_dir) from its last "
        "checkpoint, with the split and vocabulary it started with",
    )
    t.add_argument("--json", action="store_true", help="print a JSON summary")
    t.set_defaults(func=cmd_train)

    pr = sub.add_parser("predict", help="images -> top-k words with probabilities")
    pr.add_argument("--model-dir", required=True)
    pr.add_argument("-k", type=int, default=5)
    pr.add_argument("--batch-size", type=int, default=64)
    pr.add_argument("--json", action="store_true", help="one JSON object per image")
    pr.add_argument("images", nargs="+", help="image files, folders of images, http(s) URLs")
    pr.set_defaults(func=cmd_predict)

    ix = sub.add_parser("index", help="embed every frame of a dataset for `vidray search`")
    ix.add_argument("--model-dir", required=True)
    ix.add_argument("root", nargs="?", help="dataset root (default: the one trained on)")
    ix.add_argument("--json", action="store_true", help="print a JSON summary")
    ix.set_defaults(func=cmd_index)

    se = sub.add_parser("search", help="words -> best matching frames (cosine, exact)")
    se.add_argument("--model-dir", required=True)
    se.add_argument("-k", type=int, default=10)
    se.add_argument("--save", help="folder to save the matching frames as JPEG files")
    se.add_argument("--json", action="store_true", help="one JSON object per hit")
    se.add_argument("words", nargs="+")
    se.set_defaults(func=cmd_search)

    ev = sub.add_parser("eval", help="evaluate a model on its held-out videos")
    ev.add_argument("--model-dir", required=True)
    ev.add_argument("--root", help="dataset root (default: the one trained on)")
    ev.add_argument("--out", help="folder for metrics.json and plots (default: MODEL_DIR/eval)")
    ev.add_argument("--json", action="store_true", help="print a JSON summary")
    ev.set_defaults(func=cmd_eval)

    sc = sub.add_parser("score", help="score a dataset (and a model) against sample ground truth")
    sc.add_argument("root")
    sc.add_argument("--truth", required=True, help="folder of the sample videos and their JSON")
    sc.add_argument("--model-dir")
    sc.add_argument("--examples", type=int, default=0, help="print this many held-out predictions")
    sc.add_argument("--out", help="also write the report as JSON here")
    sc.add_argument("--json", action="store_true", help="print the report as one JSON line")
    sc.add_argument("--brief", action="store_true", help="the human summary on stdout, never JSON")
    sc.set_defaults(func=cmd_score)
    rp = sub.add_parser(
        "report",
        help="a static HTML report (index.html) of a dataset, a trained model, or both",
    )
    rp.add_argument("root", nargs="?", help="dataset root written by `vidray build`")
    rp.add_argument("--model-dir", help="a model trained by `vidray train`")
    rp.add_argument("--out", help="folder for the site (default: ROOT/report, or MODEL_DIR/report)")
    rp.add_argument(
        "--gallery",
        type=int,
        default=50_000,
        help="at most this many frames in the gallery, spread over the videos (0: all)",
    )
    rp.add_argument("--json", action="store_true", help="print a JSON summary")
    rp.set_defaults(func=cmd_report)
    for command in sub.choices.values():  # `vidray build --progress lines ...` works too
        command.add_argument(
            "--progress", choices=MODES, default=argparse.SUPPRESS, help=progress_help
        )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `key=value` config overrides may stand anywhere after the command.
    args, extra = parser.parse_known_args(argv)
    unknown = [x for x in extra if "=" not in x or x.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = [x for x in extra if x not in unknown]
    if args.command == "build":
        moved = [x for x in args.inputs if "=" in x and not Path(x).exists()]
        args.overrides += moved
        args.inputs = [x for x in args.inputs if x not in moved]
    elif args.overrides and args.command not in ("dedup", "train"):
        parser.error(f"{args.command} takes no key=value overrides: {' '.join(args.overrides)}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=AboveBars(),  # log lines go above a progress bar, not into it
    )
    try:
        set_mode(args.progress)
        return int(args.func(args))
    except (ConfigError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"vidray {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
