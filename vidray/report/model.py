"""The model half of the report: training curves, held-out evaluation against the frequency
baseline, best and worst labels, example predictions, and the statistics of the weights."""

from __future__ import annotations

import json
import shutil
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from vidray.progress import Progress
from vidray.report import charts, weights
from vidray.report.gallery import thumbnail
from vidray.report.html import cards, figure, fmt, section, table
from vidray.sink import table_dataset

EXAMPLES = 12
BEST_WORST = 10


def model_report(model_dir: Path, site: Path) -> tuple[list[tuple[str, str]], str, dict[str, Any]]:
    """Write the model's charts and example images under `site/model`; return
    (nav, HTML, summary)."""
    from vidray.query import load_model

    out = site / "model"
    out.mkdir(parents=True, exist_ok=True)
    with Progress("report: model", total=4, unit="parts") as p:
        model = load_model(model_dir)
        p.note("training curves")
        curves = (model_dir / "metrics.csv").is_file() and charts.training_chart(
            charts.read_metrics_csv(model_dir / "metrics.csv"), out / "training.png"
        )
        p.update(1)
        p.note("evaluation on held-out videos")
        metrics, eval_note = _evaluation(model_dir, out)
        p.update(1)
        p.note("example predictions")
        examples = _examples(model, out)
        p.update(1)
        p.note("weight statistics")
        analysis = weights.analyse(model.net.state_dict())
        weights.plot_spectra(analysis, out / "spectra.png")
        weights.plot_topk(analysis, out / "topk.png")
        (out / "weights.json").write_text(json.dumps(analysis))
        p.update(1)
    summary_file = model_dir / "train_summary.json"
    trained = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    body = (
        _training_html(model_dir, model, trained, bool(curves))
        + _evaluation_html(metrics, eval_note)
        + _examples_html(examples)
        + _weights_html(analysis)
    )
    nav = [
        ("training", "Training"),
        ("evaluation", "Evaluation"),
        ("predictions", "Predictions"),
        ("weights", "Weights"),
    ]
    summary = {
        "model_dir": str(model_dir),
        "vocab_size": len(model.vocab),
        "layers": len(analysis["matrices"]),
        "examples": len(examples),
        "evaluated": metrics is not None,
    }
    return nav, body, summary


def _evaluation(model_dir: Path, out: Path) -> tuple[dict[str, Any] | None, str]:
    """The held-out metrics of `vidray eval` (run now if they are missing) and their plots."""
    from vidray.train.evaluate import evaluate

    path = model_dir / "eval" / "metrics.json"
    try:
        metrics = json.loads(path.read_text()) if path.is_file() else evaluate(model_dir)
    except (ValueError, FileNotFoundError, OSError) as exc:
        return None, f"not evaluated: {exc}"
    for plot in metrics.get("plots", []):
        if Path(plot).is_file():
            shutil.copy(plot, out / Path(plot).name)
    return metrics, ""


def _examples(model: Any, out: Path, n: int = EXAMPLES) -> list[dict[str, Any]]:
    """Predictions for `n` held-out frames spread over the held-out videos, with thumbnails."""
    heldout = model.split.get("heldout") or []
    root = model.split.get("root")
    dataset = table_dataset(root, "frames") if root and heldout else None
    if dataset is None:
        return []
    rows = dataset.to_table(
        columns=["video_id", "frame_ts", "image", "labels"],
        filter=pc.field("video_id").isin(heldout) & pc.field("image").is_valid(),
    ).to_pylist()
    if not rows:
        return []
    rows.sort(key=lambda r: (r["video_id"], r["frame_ts"]))
    picks = [rows[i] for i in np.unique(np.linspace(0, len(rows) - 1, n).round().astype(int))]
    predictions = model.predict([r["image"] for r in picks], k=5)
    examples = []
    for i, (row, top) in enumerate(zip(picks, predictions, strict=True)):
        (out / f"example_{i}.jpg").write_bytes(thumbnail(row["image"], 320))
        examples.append(
            {
                "image": f"model/example_{i}.jpg",
                "video_id": row["video_id"],
                "frame_ts": row["frame_ts"],
                "labels": row["labels"] or [],
                "predicted": [[w, round(float(p), 3)] for w, p in top],
            }
        )
    return examples


def _training_html(model_dir: Path, model: Any, trained: dict[str, Any], curves: bool) -> str:
    facts = cards(
        [
            ("vocabulary", len(model.vocab)),
            ("training videos", trained.get("train_videos")),
            ("held-out videos", trained.get("heldout_videos")),
            ("labelled training frames", trained.get("labelled_train_frames")),
            ("epochs", trained.get("epochs_done")),
            ("workers", trained.get("workers")),
            ("training time (s)", trained.get("train_seconds")),
        ]
    )
    chart = (
        figure("model/training.png", "loss, its terms and the top-5 hit rate per step", True)
        if curves
        else '<p class="note">no metrics.csv in the model directory</p>'
    )
    return section("training", f"Training: {model_dir}", facts + chart)


def _evaluation_html(metrics: dict[str, Any] | None, note: str) -> str:
    if metrics is None:
        return section("evaluation", "Evaluation", f'<p class="note">{escape(note)}</p>')
    i2w, w2i = metrics["image_to_word"], metrics["word_to_image"]
    base, chance = i2w["baseline"], w2i["chance"]
    rows = [
        ["image → words: mAP", i2w["map"], base["map"]],
        ["image → words: micro AP", i2w["micro_ap"], base["micro_ap"]],
        ["image → words: top-1", i2w["top1"], base["top1"]],
        ["image → words: top-5", i2w["top5"], base["top5"]],
        *[
            [f"words → image: recall@{k}", w2i[f"recall_at_{k}"], chance[f"recall_at_{k}"]]
            for k in (1, 5, 10)
        ],
    ]
    headline = table(["metric", "model", "frequency baseline / chance"], rows)
    labels = [r for r in metrics["labels"] if r["ap"] is not None]
    ranked = sorted(labels, key=lambda r: -r["ap"])
    columns = ["label", "held-out frames", "AP", "baseline AP", "precision", "recall"]

    def label_rows(rs: list[dict[str, Any]]) -> list[list[Any]]:
        return [
            [r["word"], r["support"], r["ap"], r["baseline_ap"], r["precision"], r["recall"]]
            for r in rs
        ]

    best_worst = (
        '<div class="tables"><div><h3>Best labels</h3>'
        + table(columns, label_rows(ranked[:BEST_WORST]))
        + "</div><div><h3>Worst labels</h3>"
        + table(columns, label_rows(ranked[::-1][:BEST_WORST]))
        + "</div></div>"
    )
    plots = "".join(
        figure(f"model/{Path(p).name}", title)
        for p, title in zip(
            metrics.get("plots", []),
            ["per-label AP against the baseline", "recall@K against chance", "precision-recall"],
            strict=False,
        )
    )
    note = (
        f"{metrics['frames']:,} frames of {metrics['heldout_videos']} held-out videos (no frame "
        f"of them was trained on); {escape(i2w['baseline_rule'])}."
    )
    return section(
        "evaluation", "Evaluation on held-out videos", headline + best_worst + plots, note
    )


def _examples_html(examples: list[dict[str, Any]]) -> str:
    if not examples:
        return section(
            "predictions",
            "Example predictions",
            '<p class="note">no held-out frame with an image</p>',
        )
    figures = []
    for ex in examples:
        truth = set(ex["labels"])
        words = ", ".join(
            f'<span class="{"good" if w in truth else ""}">{escape(w)} {p:.2f}</span>'
            for w, p in ex["predicted"]
        )
        figures.append(
            f'<figure><img src="{escape(ex["image"])}" loading="lazy" alt="held-out frame">'
            f"<figcaption>predicted: {words}<br>labels: {escape(', '.join(ex['labels']) or '–')}"
            f"<br>{escape(ex['video_id'])} @ {ex['frame_ts']:.1f}s</figcaption></figure>"
        )
    note = "Held-out frames with the model's top five words; words among the frame's own labels are green."
    return section(
        "predictions",
        "Example predictions",
        f'<div class="predictions">{"".join(figures)}</div>',
        note,
    )


def _weights_html(analysis: dict[str, Any]) -> str:
    head = analysis["summary"]
    facts = cards(
        [
            ("parameters", head["params"]),
            ("weight matrices", head["matrices"]),
            ("tails fitted", head["fitted"]),
            ("mean tail α", head["mean_alpha"]),
            ("α-weighted", head["alpha_weighted"]),
        ]
    )
    layer_rows = [
        [
            r["name"],
            _shape(r["shape"]),
            r["params"],
            r["mean"],
            r["std"],
            r["skewness"],
            r["kurtosis"],
        ]
        for r in analysis["layers"]
    ]
    stats = table(
        ["parameter", "shape", "values", "mean", "std", "skewness", "excess kurtosis"], layer_rows
    )
    ks = [k for k in analysis["topk_ks"] if any(str(k) in m["topk"] for m in analysis["matrices"])]
    matrix_rows = [
        [
            m["name"],
            _shape(m["shape"]),
            m["alpha"],
            m["n_tail"],
            m["stable_rank"],
            *[m["topk"].get(str(k)) for k in ks],
        ]
        for m in analysis["matrices"]
    ]
    spectra = table(
        ["weight matrix", "shape", "tail α", "tail size", "stable rank", *[f"top-{k}" for k in ks]],
        matrix_rows,
    )
    note = (
        "Each weight matrix (a convolution's kernel read as out × in·kh·kw) as a set of singular "
        "vectors: the eigenvalues of WᵀW/N with a power-law fit of their tail (heavy-tailed "
        "self-regularisation: α between 2 and 6 is typical of well-trained layers, larger α of "
        "layers that learned little, or too small to tell), and the share of the squared weights "
        "the top-k singular vectors capture, reading the weights as coefficients of a basis "
        "expansion."
    )
    body = (
        facts
        + figure("model/spectra.png", "eigenvalue spectra with power-law tail fits", True)
        + figure(
            "model/topk.png", "share of each matrix captured by its top-k singular vectors", True
        )
        + "<h3>Spectra and top-k shares</h3>"
        + spectra
        + "<h3>Per-layer statistics</h3>"
        + stats
        + f'<p class="note">{fmt(len(analysis["layers"]))} parameter tensors; every figure is in '
        "model/weights.json</p>"
    )
    return section("weights", "Weights", body, note)


def _shape(shape: list[int]) -> str:
    return "×".join(map(str, shape))
