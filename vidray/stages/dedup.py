"""Dedup: drop near-duplicate frames within a video, merging their time spans into the frame kept.

Two frames are near-duplicates when both checks pass:

1. They look alike overall: by the cosine similarity of their embeddings
   (`dedup.min_similarity`) when both carry one (the embed stage ran), else by the Hamming
   distance of their 64-bit DCT perceptual hashes (`dedup.max_distance`) or, failing that,
   nearly equal 28x16 colour block means (a flat picture's phash bits flip on encoder noise).
2. No region of the picture changed: grey 224x128 thumbnails, the newer one matched in
   brightness (flicker) and aligned (shake), each 16x16 block of it free to move 2 px (sway,
   slow zoom), differ in at most `MAX_CHANGED` 8x8 windows (~1.5% of the frame). Global
   descriptors hardly move when one line of a slide is rewritten or another object takes the
   same place and colour; on bench/dedup.py's hard negatives, phash alone at distance 8 merges
   a quarter of them and this check none. It runs only on frames step 1 calls alike.

The check applies to embeddings too: an image encoder pools the whole picture as phash does.

Each frame is compared with the last `dedup.window` kept frames, best match first, and merges
into the first that passes. A kept frame also matches through its latest duplicate while the
new frame stays within `DRIFT` times the thresholds of the kept frame itself: a slow zoom stays
one frame, a slow pan does not go on merging forever.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from vidray.config import DedupConfig
from vidray.stages.base import Row, Stage

THUMB = (224, 128)  # (width, height) of the grey thumbnail the local-change check compares
TINY = (28, 16)  # colour block means: nearly equal ones are alike whatever the phash says
SEARCH = 2  # px each 16x16 block of it may move on its own after the global alignment
MOTION_BLOCK = 16
CELL = 4  # changes are counted in 8x8 px windows at a 4 px stride (1,377 inside the border)
CELL_DIFF = 15.0  # mean grey-level difference (0-255) at which a window has changed
MAX_CHANGED = 19  # more changed windows than this (~1.5% of the frame): a different picture
MAX_SHIFT = 16  # px of global shift the alignment accepts (camera shake, not a pan)
TINY_DIFF = 2.0  # mean difference (0-255) of the colour block means under which frames are alike
DRIFT = 2.0  # a match through a kept frame's latest duplicate stays within this x thresholds


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


def jpeg_look(jpeg: bytes, embedding: np.ndarray | None = None) -> Look:
    """Phash, grey thumbnail and colour block means of a JPEG, from one reduced-size decode."""
    from PIL import Image

    img = Image.open(io.BytesIO(jpeg))
    img.draft("RGB", THUMB)  # the JPEG decoder scales down by 1/2, 1/4, ... as it decodes
    rgb = img.convert("RGB")
    gray = rgb.convert("L")
    return Look(
        phash=phash_pixels(np.asarray(gray.resize((32, 32), Image.Resampling.BILINEAR))),
        thumb=np.asarray(gray.resize(THUMB, Image.Resampling.BOX), np.float32),
        tiny=np.asarray(rgb.resize(TINY, Image.Resampling.BOX), np.float32),
        embedding=embedding,
    )


def phash(jpeg: bytes) -> int:
    return jpeg_look(jpeg).phash


def hamming(a: int, b: int) -> int:
    return int(bin((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).count("1"))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / norm if norm > 0 else 0.0


def merge_spans(spans: list[list[float]]) -> list[list[float]]:
    """Union of [start, end] intervals, sorted, touching ones joined."""
    out: list[list[float]] = []
    for start, end in sorted([list(s) for s in spans]):
        if out and start <= out[-1][1] + 1e-6:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


def global_shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(dy, dx) such that b moved by it best matches a: the phase-correlation peak, or no
    shift where that matches better (flat pictures have no reliable peak)."""
    h, w = a.shape
    cross = np.fft.rfft2(a - a.mean()) * np.conj(np.fft.rfft2(b - b.mean()))
    corr = np.fft.irfft2(cross / (np.abs(cross) + 1e-6), s=a.shape)
    py, px = np.unravel_index(int(np.argmax(corr)), corr.shape)
    dy, dx = (int(py) + h // 2) % h - h // 2, (int(px) + w // 2) % w - w // 2
    if max(abs(dy), abs(dx)) > MAX_SHIFT or (dy, dx) == (0, 0):
        return 0, 0
    m = MAX_SHIFT
    inner = a[m:-m, m:-m]
    moved = b[m - dy : h - m - dy, m - dx : w - m - dx]
    return (
        (dy, dx) if np.abs(inner - moved).mean() < np.abs(inner - b[m:-m, m:-m]).mean() else (0, 0)
    )


def match_brightness(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`b` with the mean and contrast of `a` (flicker, exposure), unless that takes more than
    doubling or halving its contrast: then the picture itself changed."""
    gain = float(a.std()) / max(float(b.std()), 1e-3)
    return (b - b.mean()) * gain + a.mean() if 0.5 <= gain <= 2.0 else b


def _pool(x: np.ndarray, n: int) -> np.ndarray:
    """Sums over n x n cells of the last two axes (strided adds: 10x numpy's reshape-sum)."""
    rows = sum(x[..., i::n, :] for i in range(1, n)) + x[..., 0::n, :]
    return sum(rows[..., i::n] for i in range(1, n)) + rows[..., 0::n]


def changed_windows(a: np.ndarray, b: np.ndarray) -> int:
    """How many 8x8 windows of thumbnail `a` thumbnail `b` does not explain, once `b` is
    matched in brightness (flicker), shifted as a whole (shake) and each of its 16x16 blocks
    moved up to `SEARCH` px on its own (sway, zoom). A block moves as a whole, so a changed line
    of text cannot slide into place stroke by stroke. Windows at the border, where shifted-in
    content is unknown, are not counted."""
    b = match_brightness(a, b)
    dy, dx = global_shift(a, b)
    h, w = a.shape
    p = MAX_SHIFT + SEARCH
    padded = np.pad(b, p, mode="edge")
    hc, wc, k = h // CELL, w // CELL, MOTION_BLOCK // CELL
    span = range(-SEARCH, SEARCH + 1)
    cells = np.empty((len(span) ** 2, hc, wc), np.float32)  # per block move: cell sums of |a - b|
    for i, (y, x) in enumerate(itertools.product(span, span)):
        diff = np.abs(a - padded[p - dy + y : p - dy + y + h, p - dx + x : p - dx + x + w])
        cells[i] = _pool(diff, CELL)
    moves = _pool(cells, k).argmin(0)
    pick = np.repeat(np.repeat(moves, k, 0), k, 1)[None]
    cells = np.take_along_axis(cells, pick, 0)[0]
    windows = (cells[:-1, :-1] + cells[1:, :-1] + cells[:-1, 1:] + cells[1:, 1:]) / (4 * CELL**2)
    m = max(2, math.ceil((max(abs(dy), abs(dx)) + SEARCH) / CELL))
    return int((windows[m:-m, m:-m] > CELL_DIFF).sum())


@dataclass
class Look:
    """What dedup compares of a frame: its phash, grey thumbnail, colour block means and
    embedding (None: no local-change check; no near-identical shortcut; phash decides)."""

    phash: int
    thumb: np.ndarray | None = None
    tiny: np.ndarray | None = None
    embedding: np.ndarray | None = None


def embedding_of(frame: dict[str, Any]) -> np.ndarray | None:
    e = frame.get("embedding")
    return None if e is None or len(e) == 0 else np.asarray(e, np.float32)


def given_look(frame: dict[str, Any]) -> Look:
    """A frame's own `phash` and `embedding`, without pixels."""
    return Look(frame["phash"], embedding=embedding_of(frame))


def image_look(frame: dict[str, Any]) -> Look:
    """The look of the frame's JPEG, with its embedding."""
    if frame.get("image") is None:
        return given_look(frame)
    return jpeg_look(frame["image"], embedding_of(frame))


def distance(
    a: Look, b: Look, max_distance: int, min_similarity: float, slack: float = 1.0
) -> float | None:
    """How unalike `a` and `b` look overall (0 = alike), or None past the threshold (widened
    `slack` times): by embedding cosine when both carry an embedding, else by phash Hamming
    bits, or by their tiny thumbnails when those are nearly the same (a flat picture's phash
    bits flip on encoder noise)."""
    if a.embedding is not None and b.embedding is not None:
        sim = cosine(a.embedding, b.embedding)
        return 1.0 - sim if 1.0 - sim <= slack * (1.0 - min_similarity) + 1e-6 else None
    bits = hamming(a.phash, b.phash)
    if bits <= slack * max_distance:
        return bits / 64
    ta, tb = a.tiny, b.tiny
    if ta is None or tb is None:
        return None
    diff = float(np.abs(ta - match_brightness(ta, tb)).mean())
    return diff / 255 if diff <= slack * TINY_DIFF else None


def same_picture(a: Look, b: Look) -> bool:
    """The local-change check (True when either frame has no thumbnail)."""
    return a.thumb is None or b.thumb is None or changed_windows(a.thumb, b.thumb) <= MAX_CHANGED


@dataclass
class _Kept:
    frame: dict[str, Any]
    first: Look | None  # dropped once out of the window, to bound memory
    last: Look | None


def dedup_frames(
    frames: list[dict[str, Any]],
    max_distance: int,
    window: int,
    min_similarity: float = DedupConfig.min_similarity,
    look: Callable[[dict[str, Any]], Look] = given_look,
) -> list[dict[str, Any]]:
    """Keep a frame unless it is a near-duplicate (see the module) of one of the last `window`
    kept frames or of its latest duplicate; `look` says what to compare of each frame.

    A dropped frame's time span is merged into the kept frame it matched, so that frame is
    later labelled with the words spoken over all the time it stands for.
    """
    kept: list[_Kept] = []
    for frame in sorted(frames, key=lambda f: f["frame_ts"]):
        new = look(frame)
        candidates = []
        for k in kept[-window:]:
            assert k.first is not None and k.last is not None
            d = distance(k.first, new, max_distance, min_similarity)
            if d is not None:
                candidates.append((d, k, k.first))
            if k.last is k.first or (
                d is None and distance(k.first, new, max_distance, min_similarity, DRIFT) is None
            ):
                continue
            d = distance(k.last, new, max_distance, min_similarity)
            if d is not None:
                candidates.append((d, k, k.last))
        candidates.sort(key=lambda c: c[0])
        match = next((k for _, k, seen in candidates if same_picture(seen, new)), None)
        if match is None:
            kept_frame = {
                **frame,
                "phash": new.phash,
                "merged": 1,
                "spans": merge_spans(frame["spans"]),
                "shots": merge_spans(frame.get("shots") or []),
            }
            kept.append(_Kept(kept_frame, new, new))
            if len(kept) > window:
                kept[-window - 1].first = kept[-window - 1].last = None
        else:
            f = match.frame
            f["spans"] = merge_spans(f["spans"] + frame["spans"])
            f["shots"] = merge_spans(f["shots"] + (frame.get("shots") or []))
            f["merged"] += 1
            match.last = new
    return [k.frame for k in kept]


class DedupStage(Stage):
    """`frames` → the near-duplicate-free `frames`, each with its `phash` and merged `spans`."""

    name = "dedup"

    cfg: DedupConfig

    def process(self, row: Row) -> Row:
        frames = row.get("frames") or []
        c = self.cfg
        kept = dedup_frames(frames, c.max_distance, c.window, c.min_similarity, image_look)
        return {
            **row,
            "frames": kept,
            "frames_sampled": len(frames),
            "frames_kept": len(kept),
            "frames_dropped": len(frames) - len(kept),
        }
