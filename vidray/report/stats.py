"""Figures of a dataset that the report shows: the overview, label statistics and the
pointwise mutual information (PMI) of labels that appear on the same frames."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import numpy as np

from vidray.report.scan import FrameScan, sorted_unique

AUDIO_STATS = [
    ("speech_ratio", "speech ratio"),
    ("loudness_db", "loudness (dBFS)"),
    ("loudness_trend_db_per_min", "loudness trend (dB/min)"),
    ("periodicity", "periodicity"),
    ("serial_correlation", "serial correlation"),
    ("skewness", "sample skewness"),
    ("kurtosis", "sample excess kurtosis"),
    ("hurst", "Hurst exponent"),
]


def overview(
    videos: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    scan: FrameScan,
    cross_video_duplicates: int = 0,
) -> dict[str, Any]:
    """The dataset's headline counts: videos, hours, frames, duplicates, errors, sources."""
    sampled = sum(v["frames_sampled"] or 0 for v in videos)
    dropped = sum(v["frames_dropped"] or 0 for v in videos)
    return {
        "videos": len(videos),
        "hours": round(sum(v["duration_s"] or 0.0 for v in videos) / 3600, 3),
        "frames_sampled": sampled,
        "frames_kept": scan.frames,
        "frames_with_image": int(scan.has_image.sum()),
        "frames_labelled": int((scan.labels_per_frame() > 0).sum()),
        "duplicates_merged": dropped,
        "duplicate_ratio": round(dropped / sampled, 4) if sampled else 0.0,
        "cross_video_duplicates": cross_video_duplicates,
        "labels": len(scan.labels),
        "label_occurrences": len(scan.flat),
        "errors": len(errors),
        "errors_by_stage": _count(e["stage"] for e in errors),
        "errors_by_reason": _count((e["stage"], e["reason"]) for e in errors),
        "sources": _count(_source_kind(v) for v in videos),
        "licenses": _count(v["license"] or "not stated" for v in videos),
        "languages": _count(v["language"] or "unknown" for v in videos),
        "asr_backends": _count(v["asr_backend"] or "none" for v in videos),
        "videos_without_audio": sum(v["has_audio"] is False for v in videos),
    }


def _count(items: Any) -> list[list[Any]]:
    """[[key, count], ...], most common first; tuple keys become lists (JSON)."""
    return [[list(k) if isinstance(k, tuple) else k, n] for k, n in Counter(items).most_common()]


def _source_kind(video: dict[str, Any]) -> str:
    """Where a video came from: the site's extractor, an S3 object or a local file."""
    if video["extractor"]:
        return str(video["extractor"])
    source = video["source"] or ""
    if source.startswith("s3://"):
        return "s3"
    return "web" if source.startswith(("http://", "https://")) else "local file"


def label_frequency(scan: FrameScan, top: int = 40) -> dict[str, Any]:
    """The most frequent labels and the shape of the long tail (frames per label)."""
    order = np.argsort(-scan.counts, kind="stable")
    counts = scan.counts[order]
    return {
        "top": [[scan.labels[i], int(scan.counts[i])] for i in order[:top]],
        "counts_by_rank": counts.tolist(),
        "seen_once": int((counts == 1).sum()),
        "seen_at_most_5": int((counts <= 5).sum()),
        "zipf_slope": _zipf_slope(counts),
    }


def _zipf_slope(counts: np.ndarray) -> float | None:
    """Least-squares slope of log count against log rank (about -1 for Zipf's law)."""
    counts = counts[counts > 0]
    if len(counts) < 3:
        return None
    ranks = np.arange(1, len(counts) + 1)
    return round(float(np.polyfit(np.log(ranks), np.log(counts), 1)[0]), 3)


def cooccurrence(scan: FrameScan, labels: np.ndarray) -> np.ndarray:
    """Frames on which each pair of the given label ids appear together (symmetric; the
    diagonal holds each label's frame count)."""
    position = np.full(len(scan.labels), -1, np.int64)
    position[labels] = np.arange(len(labels))
    frame = np.repeat(np.arange(scan.frames), scan.labels_per_frame())
    keep = position[scan.flat] >= 0
    frame, slot = frame[keep], position[scan.flat[keep]]
    n = len(labels)
    # Indicator matrix (frames × labels), deduplicated, then its Gram matrix in blocks of
    # frames so memory stays bounded by the block.
    pairs = sorted_unique(frame * n + slot)
    frame, slot = pairs // n, pairs % n
    counts = np.zeros((n, n), np.int64)
    bounds = np.searchsorted(frame, np.arange(0, scan.frames + 65536, 65536))
    for lo, hi in itertools.pairwise(bounds.tolist()):
        if hi > lo:
            rows = frame[lo:hi] - frame[lo]
            block = np.zeros((int(rows[-1]) + 1, n), np.float32)
            block[rows, slot[lo:hi]] = 1
            counts += (block.T @ block).astype(np.int64)
    return counts


def pmi(
    scan: FrameScan, top: int = 200, min_count: int = 3, associates: int = 8, heat: int = 30
) -> dict[str, Any]:
    """PMI of label pairs over frames: log p(a, b) / (p(a) p(b)), among the `top` most frequent
    labels, counting pairs seen on at least `min_count` frames. Returns the strongest pairs,
    each label's strongest associates, and a normalised-PMI matrix of the `heat` most frequent
    labels for a heat map (NPMI in [-1, 1]; -1 where a pair never co-occurs)."""
    n = scan.frames
    order = np.argsort(-scan.counts, kind="stable")[:top]
    order = order[scan.counts[order] > 0]
    if n == 0 or len(order) < 2:
        return {
            "pairs": [],
            "associates": {},
            "heat_labels": [],
            "npmi": [],
            "min_count": min_count,
        }
    together = cooccurrence(scan, order).astype(np.float64)
    single = np.diag(together).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        p_ab = together / n
        values = np.log(p_ab / np.outer(single / n, single / n))
        npmi = np.where(together > 0, values / -np.log(p_ab), -1.0)
    np.fill_diagonal(npmi, 1.0)
    names = [scan.labels[i] for i in order]
    valid = (together >= min_count) & ~np.eye(len(order), dtype=bool)
    a, b = np.nonzero(np.triu(valid))
    rank = np.argsort(-values[a, b], kind="stable")[:100]
    pairs = [_pair(names, values, npmi, together, int(a[r]), int(b[r])) for r in rank]
    best: dict[str, list[list[Any]]] = {}
    for i, name in enumerate(names):
        js = np.nonzero(valid[i])[0]
        js = js[np.argsort(-values[i, js], kind="stable")][:associates]
        best[name] = [[names[j], round(float(values[i, j]), 3), int(together[i, j])] for j in js]
    k = min(heat, len(order))
    return {
        "pairs": pairs,
        "associates": {k: v for k, v in best.items() if v},
        "heat_labels": names[:k],
        "npmi": np.round(npmi[:k, :k], 3).tolist(),
        "min_count": min_count,
    }


def _pair(
    names: list[str], pmi: np.ndarray, npmi: np.ndarray, together: np.ndarray, a: int, b: int
) -> dict[str, Any]:
    return {
        "a": names[a],
        "b": names[b],
        "pmi": round(float(pmi[a, b]), 3),
        "npmi": round(float(npmi[a, b]), 3),
        "frames": int(together[a, b]),
    }


def audio_values(videos: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each audio statistic over the videos that have it."""
    return {
        key: [float(v[key]) for v in videos if v.get(key) is not None and np.isfinite(v[key])]
        for key, _ in AUDIO_STATS
    }


def choose_gallery(scan: FrameScan, limit: int) -> np.ndarray:
    """Indices of the frames shown in the gallery: every frame with an image, or `limit` of
    them evenly spaced through the (video, time) order, so every part of a large dataset is
    seen."""
    with_image = np.nonzero(scan.has_image)[0]
    if limit <= 0 or len(with_image) <= limit:
        return with_image
    picks = np.linspace(0, len(with_image) - 1, limit).round().astype(np.int64)
    return with_image[np.unique(picks)]
