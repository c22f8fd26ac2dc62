"""The `vidray` command: parses arguments, loads config, and calls the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from vidray.config import Config, ConfigError, apply_override, load_config


def _config(args: argparse.Namespace, section: str) -> Config:
    """Load the config; `key=value` overrides may omit the command's own section name."""
    cfg = load_config(args.config)
    for item in args.overrides:
        key = item.split("=", 1)[0]
        top = key.split(".", 1)[0]
        apply_override(cfg if top in ("build", "dedup", "train") else getattr(cfg, section), item)
    return cfg


def cmd_sample(args: argparse.Namespace) -> int:
    from vidray.testing.sample import make_samples

    paths = make_samples(
        args.dir, videos=args.videos, minutes=args.minutes, seed=args.seed, subjects=args.subjects
    )
    print(f"wrote {len(paths)} narrated videos with ground truth to {args.dir}")
    print(f"next: vidray build {args.dir} --output OUT")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from vidray.pipeline import run_build

    cfg = _config(args, "build")
    if args.max_videos is not None:
        cfg.build.sources.max_videos = args.max_videos
    tty = sys.stdout.isatty()

    def progress(summary: dict[str, Any], done: int, total: int) -> None:
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
        print(f"[{done}/{total}] {name}: {what}", flush=True)

    result = run_build(args.inputs, args.output, cfg.build, progress=progress, resume=args.resume)
    skipped = f" ({result.skipped} already built, skipped)" if result.skipped else ""
    print(
        f"built {args.output}: {result.videos} videos, {result.errors} errors{skipped}, "
        f"{result.frames_kept}/{result.frames_sampled} frames kept in {result.seconds:.1f}s"
    )
    if not tty or args.json:
        print(json.dumps(vars(result)))
    print(f"next: vidray train {args.output} --model-dir MODEL_DIR")
    return 0


def cmd_dedup(args: argparse.Namespace) -> int:
    from vidray.semdedup import run_dedup

    cfg = _config(args, "dedup")
    summary = run_dedup(args.root, cfg.dedup, ray_address=cfg.build.ray.address)
    if summary["message"]:
        print(summary["message"])
    print(
        f"{summary['duplicates']} of {summary['with_embeddings']} embedded frames are "
        f"near-duplicates of a kept frame ({summary['clusters']} clusters, "
        f"{summary['seconds']:.1f}s): listed in {args.root.rstrip('/')}/duplicates/; frames/ is "
        "unchanged"
    )
    print(f"next: vidray.open_dataset({args.root!r}, unique=True) reads the frames without them")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from vidray.train.ray_train import train

    cfg = _config(args, "train")
    summary = train(args.root, args.model_dir, cfg.train)
    print(json.dumps(summary, indent=1))
    print(f"next: vidray predict --model-dir {args.model_dir} IMAGE...")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from vidray.query import load_model

    model = load_model(args.model_dir)
    paths = [str(p) for p in args.images]
    for path, preds in zip(paths, model.predict(paths, k=args.k), strict=True):
        words = ", ".join(f"{w} {p:.2f}" for w, p in preds)
        print(f"{path}: {words}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from vidray.query import load_model

    model = load_model(args.model_dir)
    model.index_dataset(args.dataset)
    hits = model.search(args.words.split(), k=args.k)
    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    for rank, hit in enumerate(hits, 1):
        line = f"{rank:2d}. {hit['video_id']} t={hit['frame_ts']:.1f}s score={hit['score']:.3f} {hit['source']}"
        if save and hit.get("image"):
            out = save / f"{rank:02d}_{hit['video_id'].replace(':', '_')}_{hit['frame_ts']:.1f}.jpg"
            out.write_bytes(hit["image"])
            line += f" -> {out}"
        print(line)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from vidray.evaluate import score_dataset, score_model

    report = score_dataset(args.root, args.truth)
    if args.model_dir:
        report["model"] = score_model(args.model_dir, args.root, args.truth, examples=args.examples)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    if not args.brief:
        print(json.dumps(report, indent=1))
        return 0
    print(
        f"dataset: {report['videos']} videos, {report['frames_kept']}/{report['frames_sampled']} frames kept, "
        f"label precision {report['label_precision']:.2f}, subject recall {report['subject_recall']:.2f}"
    )
    model = report.get("model") or {}
    if model.get("heldout_frames"):
        print(
            f"model: subject in top-5 for {model['subject_top5']:.0%} of {model['heldout_frames']} held-out frames "
            f"({model['subject_top5_in_vocab']:.0%} where the subject is in the vocabulary); "
            f"frequency baseline {model['frequency_baseline_top5']:.0%}, chance {model['chance_top5']:.0%}"
        )
        for ex in model.get("examples", []):
            top = ", ".join(f"{w} {p:.2f}" for w, p in ex["top5"])
            print(
                f"  {ex['video']} t={ex['frame_ts']:5.1f}s  true subject: {ex['subject']:<9} predicted: {top}"
            )
    if args.out:
        print(f"full report: {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidray", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sample", help="make narrated sample videos with ground truth (espeak-ng)")
    s.add_argument("dir")
    s.add_argument("--videos", type=int, default=3)
    s.add_argument("--minutes", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--subjects", type=int, default=24, help="how many of the 24 subjects appear")
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
    d.set_defaults(func=cmd_dedup)

    t = sub.add_parser("train", help="train the image<->word model with Ray Train")
    t.add_argument("root", help="dataset root written by `vidray build`")
    t.add_argument("--model-dir", required=True)
    t.add_argument("--config")
    t.set_defaults(func=cmd_train)

    pr = sub.add_parser("predict", help="images -> top-k words with probabilities")
    pr.add_argument("--model-dir", required=True)
    pr.add_argument("-k", type=int, default=5)
    pr.add_argument("images", nargs="+")
    pr.set_defaults(func=cmd_predict)

    se = sub.add_parser("search", help="words -> best matching frames of a dataset")
    se.add_argument("--model-dir", required=True)
    se.add_argument("--dataset", required=True)
    se.add_argument("-k", type=int, default=10)
    se.add_argument("--save", help="folder to save the matching frames as JPEG files")
    se.add_argument("words")
    se.set_defaults(func=cmd_search)

    sc = sub.add_parser("score", help="score a dataset (and a model) against sample ground truth")
    sc.add_argument("root")
    sc.add_argument("--truth", required=True, help="folder of the sample videos and their JSON")
    sc.add_argument("--model-dir")
    sc.add_argument("--examples", type=int, default=0, help="print this many held-out predictions")
    sc.add_argument("--out", help="also write the report as JSON here")
    sc.add_argument("--brief", action="store_true", help="a short human summary instead of JSON")
    sc.set_defaults(func=cmd_score)
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
    )
    try:
        return int(args.func(args))
    except (ConfigError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"vidray {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
