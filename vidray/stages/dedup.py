"""Dedup: drop near-duplicate frames within a video by perceptual hash, merging their time spans."""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import numpy as np

from vidray.config import DedupConfig
from vidray.stages.base import Row, Stage


@lru_cache(maxsize=4)
def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def phash_pixels(gray32: np.ndarray) -> int:
    """64-bit DCT perceptual hash of a 32x32 grayscale image, as a signed int64."""
    d = _dct_matrix(32)
    coeffs = (d @ gray32.astype(np.float64) @ d.T)[:8, :8].reshape(-1)
    bits = coeffs > np.median(coeffs[1:])  # the DC term would dominate the median
    value = int(np.packbits(bits).view(">u8")[0])
    return value - (1 << 64) if value >= 1 << 63 else value


def phash(jpeg: bytes) -> int:
    from PIL import Image

    img = Image.open(io.BytesIO(jpeg)).convert("L").resize((32, 32), Image.Resampling.BILINEAR)
    return phash_pixels(np.asarray(img))


def hamming(a: int, b: int) -> int:
    return int(bin((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).count("1"))


def merge_spans(spans: list[list[float]]) -> list[list[float]]:
    """Union of [start, end] intervals, sorted, touching ones joined."""
    out: list[list[float]] = []
    for start, end in sorted([list(s) for s in spans]):
        if out and start <= out[-1][1] + 1e-6:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


def dedup_frames(
    frames: list[dict[str, Any]], max_distance: int, window: int
) -> list[dict[str, Any]]:
    """Keep a frame unless it is within `max_distance` of one of the last `window` kept frames.

    A dropped frame's time span is merged into the kept frame it matched, so that frame is
    later labelled with the words spoken over all the time it stands for.
    """
    kept: list[dict[str, Any]] = []
    for frame in sorted(frames, key=lambda f: f["frame_ts"]):
        h = frame["phash"]
        match = min(
            (k for k in kept[-window:] if hamming(k["phash"], h) <= max_distance),
            key=lambda k: hamming(k["phash"], h),
            default=None,
        )
        if match is None:
            kept.append(
                {
                    **frame,
                    "merged": 1,
                    "spans": merge_spans(frame["spans"]),
                    "shots": merge_spans(frame.get("shots") or []),
                }
            )
        else:
            match["spans"] = merge_spans(match["spans"] + frame["spans"])
            match["shots"] = merge_spans(match["shots"] + (frame.get("shots") or []))
            match["merged"] += 1
    return kept


class DedupStage(Stage):
    """`frames` → the near-duplicate-free `frames`, each with its `phash` and merged `spans`."""

    name = "dedup"

    cfg: DedupConfig

    def process(self, row: Row) -> Row:
        frames = [{**f, "phash": phash(f["image"])} for f in row.get("frames") or []]
        kept = dedup_frames(frames, self.cfg.max_distance, self.cfg.window)
        return {
            **row,
            "frames": kept,
            "frames_sampled": len(frames),
            "frames_kept": len(kept),
            "frames_dropped": len(frames) - len(kept),
        }
