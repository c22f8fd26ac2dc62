"""The report's gallery: thumbnails of the chosen frames, their records in small script files
loaded page by page, and per-label lists of gallery frames for the label filter."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from vidray.report.scan import FrameScan, ragged_take
from vidray.schema import frame_id
from vidray.sink import iter_batches

CHUNK = 120  # gallery records per script file (the page shows half of one)
THUMB_PX = 224  # longest side of a thumbnail
THUMB_QUALITY = 82
THUMBS_PER_FOLDER = 1000
WORDS_SHOWN = 40  # transcript words kept per frame record


def write_script(path: Path, key: str, data: Any) -> None:
    """A data file the page loads with a <script> tag (file:// pages may not fetch JSON):
    it hands `data` to `vidray.put(key, data)`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    path.write_text(f"vidray.put({json.dumps(key)},{payload});\n", encoding="utf-8")


def thumb_path(g: int) -> str:
    """Where gallery frame `g`'s thumbnail lives, relative to the site (app.js agrees)."""
    return f"thumbs/{g // THUMBS_PER_FOLDER:04d}/{g}.jpg"


def thumbnail(jpeg: bytes, size: int = THUMB_PX) -> bytes:
    """A frame's JPEG scaled down to `size` on its longest side (decoded at reduced size)."""
    with Image.open(io.BytesIO(jpeg)) as im:
        # JPEG decodes at 1/2, 1/4 or 1/8 scale only while the result still covers the box it
        # is given: the thumbnail's own box, not a square, lets a 456×256 frame decode at half.
        w, h = im.size
        scale = size / max(w, h, 1)
        im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
        small = im.convert("RGB")
    small.thumbnail((size, size))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return out.getvalue()


def write_gallery(
    root: str,
    site: Path,
    scan: FrameScan,
    chosen: np.ndarray,
    endpoint_url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Thumbnails and records of the `chosen` frames (indices into `scan`); returns counts.

    Streams `frames/` once more, reading images only of chosen frames' batches; a frame whose
    image cannot be decoded keeps its record with no thumbnail (listed in `without_thumbnail`)."""
    position = {
        frame_id(scan.video_ids[scan.video[i]], float(scan.frame_ts[i])): g
        for g, i in enumerate(chosen.tolist())
    }
    records: list[list[Any] | None] = [None] * len(chosen)
    missing: set[int] = set()
    columns = ["video_id", "frame_ts", "image", "words", "labels", "label_scores"]
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        for batch in iter_batches(root, "frames", columns, 512, endpoint_url=endpoint_url):
            ids = [
                frame_id(v, t)
                for v, t in zip(
                    batch.column("video_id").to_pylist(),
                    batch.column("frame_ts").to_pylist(),
                    strict=True,
                )
            ]
            rows = [(r, position[f]) for r, f in enumerate(ids) if f in position]
            if not rows:
                continue
            picked = batch.take(pa.array([r for r, _ in rows]))
            images = picked.column("image").to_pylist()
            made = pool.map(
                _save_thumb, [(site, g, im) for (_, g), im in zip(rows, images, strict=True)]
            )
            failed = 0
            for (_, g), row, ok in zip(rows, _records(picked), made, strict=True):
                i = int(chosen[g])
                records[g] = [int(scan.video[i]), round(float(scan.frame_ts[i]), 2), *row, int(ok)]
                if not ok:
                    missing.add(g)
                    failed += 1
            if progress:
                progress(len(rows), failed)
    chunks = 0
    for start in range(0, len(records), CHUNK):
        part = [r or [] for r in records[start : start + CHUNK]]
        write_script(
            site / "data" / "gallery" / f"{start // CHUNK:05d}.js",
            f"gallery/{start // CHUNK:05d}",
            part,
        )
        chunks += 1
    return {"frames": len(chosen), "chunks": chunks, "without_thumbnail": missing}


def _save_thumb(job: tuple[Path, int, bytes | None]) -> bool:
    site, g, jpeg = job
    if not jpeg:
        return False
    try:
        data = thumbnail(jpeg)
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
    path = site / thumb_path(g)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def _records(batch: pa.RecordBatch | pa.Table) -> list[list[Any]]:
    """[labels, label scores, the words around the frame] of each row."""
    words = batch.column("words").to_pylist()
    labels = batch.column("labels").to_pylist()
    scores = batch.column("label_scores").to_pylist()
    return [
        [ls or [], [round(s, 2) for s in ss or []], " ".join((ws or [])[:WORDS_SHOWN])]
        for ls, ss, ws in zip(labels, scores, words, strict=True)
    ]


def write_label_index(
    site: Path, scan: FrameScan, chosen: np.ndarray, order: np.ndarray
) -> list[list[Any]]:
    """For each label (ids in `order`, most frequent first): its gallery frames in a script
    file. Returns the label list [[name, frames in the dataset, frames in the gallery], ...]."""
    in_gallery = np.zeros(len(order), np.int64)
    rank = np.empty(len(scan.labels), np.int64)
    rank[order] = np.arange(len(order))
    labels, offsets = ragged_take(scan.flat, scan.offsets, chosen)
    label_rank = rank[labels]
    gallery_pos = np.repeat(np.arange(len(chosen)), np.diff(offsets))
    by_label = np.lexsort((gallery_pos, label_rank))
    label_rank, gallery_pos = label_rank[by_label], gallery_pos[by_label]
    bounds = np.searchsorted(label_rank, np.arange(len(order) + 1))
    for r in range(len(order)):
        frames = np.unique(gallery_pos[bounds[r] : bounds[r + 1]])
        in_gallery[r] = len(frames)
        if len(frames):
            write_script(site / "data" / "labels" / f"{r}.js", f"labels/{r}", frames.tolist())
    return [[scan.labels[i], int(scan.counts[i]), int(in_gallery[r])] for r, i in enumerate(order)]
