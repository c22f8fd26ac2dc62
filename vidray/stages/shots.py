"""Shots: split a video's sampled frames into shots (colour-histogram cuts) snapped to pauses."""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np

from vidray.config import ShotsConfig
from vidray.stages.base import Row, Stage


def color_histogram(jpeg: bytes, bins: int = 4) -> np.ndarray:
    """A normalised RGB histogram with `bins` levels per channel (bins**3 cells)."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB").resize((32, 32)), np.int32)
    q = img * bins // 256
    cells = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    hist = np.bincount(cells.reshape(-1), minlength=bins**3).astype(np.float64)
    return hist / hist.sum()


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance in [0, 1]: the share of pixels that changed colour."""
    return float(0.5 * np.abs(a - b).sum())


def longest_pause(words: list[dict[str, Any]], start: float, end: float) -> float:
    """The middle of the longest stretch without speech inside [start, end]: a cut between two
    sampled frames most likely falls where the narrator paused."""
    inside = sorted(x for w in words for x in (w["start"], w["end"]) if start < x < end)
    bounds = [start, *inside, end]
    # A point inside a word is never a pause: walk the gaps between consecutive word edges.
    busy = [(w["start"], w["end"]) for w in words if w["end"] > start and w["start"] < end]
    best, best_len = (start + end) / 2, -1.0
    for a, b in itertools.pairwise(bounds):
        mid = (a + b) / 2
        if b - a > best_len and not any(s < mid < e for s, e in busy):
            best, best_len = mid, b - a
    return best


def shot_bounds(
    times: list[float],
    hists: list[np.ndarray],
    duration: float,
    words: list[dict[str, Any]],
    threshold: float,
) -> list[list[float]]:
    """For each sampled frame (in time order), the [start, end] of the shot it belongs to."""
    cuts = [0.0]
    for i in range(1, len(times)):
        if histogram_distance(hists[i - 1], hists[i]) > threshold:
            cuts.append(longest_pause(words, times[i - 1], times[i]))
    cuts.append(max(duration, times[-1] if times else 0.0))
    out, k = [], 0
    for t in times:
        while k + 2 < len(cuts) and t >= cuts[k + 1]:
            k += 1
        out.append([cuts[k], cuts[k + 1]])
    return out


class ShotsStage(Stage):
    """`frames` → each frame with `shots`: the shot interval(s) whose speech may label it."""

    name = "shots"

    cfg: ShotsConfig

    def process(self, row: Row) -> Row:
        frames = sorted(row.get("frames") or [], key=lambda f: f["frame_ts"])
        if not self.cfg.enabled:
            bounds = [[0.0, float(row.get("duration_s") or 1e12)]] * len(frames)
        else:
            hists = [color_histogram(f["image"]) for f in frames]
            times = [f["frame_ts"] for f in frames]
            bounds = shot_bounds(
                times,
                hists,
                float(row.get("duration_s") or 0.0),
                row.get("transcript") or [],
                self.cfg.threshold,
            )
        return {**row, "frames": [{**f, "shots": [b]} for f, b in zip(frames, bounds, strict=True)]}
