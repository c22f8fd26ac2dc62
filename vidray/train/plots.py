"""PNG plots of an evaluation: per-label AP, recall@K against chance, micro precision-recall."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TOP_LABELS = 30


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt

    return plt


def _paired_bars(
    ax: Any, names: list[str], model: list[float], other: list[float], label: str
) -> None:
    """The model's bars beside a reference's, one pair per name."""
    x = np.arange(len(names))
    ax.bar(x - 0.2, model, 0.4, label="model")
    ax.bar(x + 0.2, other, 0.4, label=label)
    ax.set_ylim(0, 1)
    ax.legend()


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_label_ap(labels: list[dict[str, Any]], path: Path, top: int = TOP_LABELS) -> None:
    """AP of the `top` most frequent held-out labels, model beside the frequency baseline."""
    plt = _pyplot()
    rows = [r for r in labels if r["ap"] is not None][:top]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(rows) + 2), 4))
    names = [f"{r['word']} ({r['support']})" for r in rows]
    _paired_bars(
        ax, names, [r["ap"] for r in rows], [r["baseline_ap"] for r in rows], "frequency baseline"
    )
    ax.set_xticks(np.arange(len(rows)), names, rotation=60, ha="right")
    ax.set_ylabel("average precision")
    ax.set_title(f"per-label AP, {len(rows)} most frequent held-out labels (frames)")
    _save(plt, fig, path)


def plot_recall(w2i: dict[str, Any], path: Path) -> None:
    """Words→image recall@K of the model against a random ranking."""
    plt = _pyplot()
    ks = [k.removeprefix("recall_at_") for k in w2i["chance"]]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    names = [f"R@{k}" for k in ks]
    model = [w2i[f"recall_at_{k}"] or 0 for k in ks]
    _paired_bars(ax, names, model, [w2i["chance"][f"recall_at_{k}"] or 0 for k in ks], "chance")
    ax.set_xticks(np.arange(len(ks)), names)
    ax.set_title(f"words → image, {w2i['queries']} held-out queries")
    _save(plt, fig, path)


def plot_pr(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """Micro-averaged precision-recall curves, one per scorer."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (precision, recall) in curves.items():
        ax.plot(recall, precision, label=name, marker="." if len(recall) < 5 else None)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("image → words, micro-averaged")
    ax.legend()
    _save(plt, fig, path)


def write_plots(
    out: Path,
    labels: list[dict[str, Any]],
    w2i: dict[str, Any],
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
) -> list[str]:
    paths = [out / "label_ap.png", out / "recall_at_k.png", out / "precision_recall.png"]
    plot_label_ap(labels, paths[0])
    plot_recall(w2i, paths[1])
    plot_pr(curves, paths[2])
    return [str(p) for p in paths]
