"""The report's PNG charts of a dataset and of a training run (matplotlib, no display)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from vidray.report.stats import AUDIO_STATS
from vidray.train.plots import _pyplot, _save


def label_frequency_chart(freq: dict[str, Any], path: Path) -> None:
    """The most frequent labels (bars) beside the whole rank–frequency curve (log–log)."""
    plt = _pyplot()
    top = freq["top"]
    fig, (bars, tail) = plt.subplots(
        1, 2, figsize=(12, max(4, 0.22 * len(top) + 1)), width_ratios=[1.3, 1]
    )
    bars.barh([w for w, _ in top][::-1], [n for _, n in top][::-1], color="#3b7dd8")
    bars.set_xlabel("frames")
    bars.set_title(f"{len(top)} most frequent labels")
    counts = np.array(freq["counts_by_rank"])
    if len(counts):
        tail.loglog(np.arange(1, len(counts) + 1), counts, ".", ms=3, color="#3b7dd8")
    slope = freq["zipf_slope"]
    tail.set_title(
        "long tail: frames per label by rank"
        + (f" (log-log slope {slope:.2f})" if slope is not None else "")
    )
    tail.set_xlabel("rank")
    tail.set_ylabel("frames")
    tail.text(
        0.02,
        0.03,
        f"{freq['seen_once']} labels on one frame, {freq['seen_at_most_5']} on at most five",
        transform=tail.transAxes,
        fontsize=9,
    )
    _save(plt, fig, path)


def histograms_chart(panels: list[tuple[str, list[float] | np.ndarray, str]], path: Path) -> None:
    """One histogram per (title, values, x label) panel, in a row of panels."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.3), squeeze=False)
    for ax, (title, values, xlabel) in zip(axes[0], panels, strict=True):
        values = np.asarray(values, dtype=np.float64)
        if len(values):
            integer = np.allclose(values, values.round()) and values.max() - values.min() < 60
            bins: Any = np.arange(values.min() - 0.5, values.max() + 1.5) if integer else 30
            ax.hist(values, bins=bins, color="#3b7dd8")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
    _save(plt, fig, path)


def audio_chart(values: dict[str, list[float]], path: Path) -> None:
    """Distributions of the audio statistics over videos, two rows of four."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(14, 5.5))
    for ax, (key, title) in zip(axes.flat, AUDIO_STATS, strict=True):
        data = values.get(key, [])
        if data:
            ax.hist(data, bins=min(30, max(5, len(data))), color="#2a9d6f")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)
        ax.set_title(f"{title} ({len(data)} videos)", fontsize=10)
    _save(plt, fig, path)


def pmi_heatmap(assoc: dict[str, Any], path: Path) -> bool:
    """Normalised PMI of the most frequent labels as a heat map; False if too few labels."""
    names = assoc["heat_labels"]
    if len(names) < 2:
        return False
    plt = _pyplot()
    size = 2.5 + 0.32 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(np.array(assoc["npmi"]), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=70, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_title("normalised PMI of labels on the same frames")
    fig.colorbar(image, ax=ax, shrink=0.8, label="NPMI (-1: never together, 1: always)")
    _save(plt, fig, path)
    return True


def read_metrics_csv(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Lightning's CSV log → {metric: [(step or epoch, value), ...]} for the logged metrics."""
    series: dict[str, list[tuple[float, float]]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            x = row.get("step") or row.get("epoch") or ""
            for key, value in row.items():
                if key in ("step", "epoch") or not value or not x:
                    continue
                try:
                    series.setdefault(key, []).append((float(x), float(value)))
                except ValueError:
                    continue
    return series


def training_chart(series: dict[str, list[tuple[float, float]]], path: Path) -> bool:
    """Training and validation loss, its two terms and the top-5 hit rate over steps."""
    split = ("train_", "val_")
    groups = [
        ("loss", [k for k in series if k.startswith(split) and k.endswith("_loss")]),
        (
            "loss terms",
            [
                k
                for k in series
                if k.startswith(split) and k.endswith(("multilabel", "contrastive"))
            ],
        ),
        ("top-5 hit rate", [k for k in series if k.startswith(split) and k.endswith("top5_hit")]),
    ]
    groups = [(title, keys) for title, keys in groups if keys]
    if not groups:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.6), squeeze=False)
    for ax, (title, keys) in zip(axes[0], groups, strict=True):
        for key in sorted(keys):
            xs, ys = zip(*series[key], strict=True)
            ax.plot(xs, ys, marker="." if len(xs) < 40 else None, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    _save(plt, fig, path)
    return True
