"""One streamed pass over a dataset's `frames/` table: labels as integer ids, frame times and
spans, in arrays small enough for ten million frames (no images, no transcript words)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vidray.sink import iter_batches, read_table

SCAN_COLUMNS = ["video_id", "frame_ts", "span_start", "span_end", "merged", "labels", "image"]

# The videos table without its two large per-word columns (read per video for timelines).
VIDEO_COLUMNS = [
    "video_id",
    "source",
    "url",
    "extractor",
    "title",
    "uploader",
    "channel",
    "license",
    "language",
    "playlist",
    "duration_s",
    "has_audio",
    "asr_backend",
    "frames_sampled",
    "frames_kept",
    "frames_dropped",
    "n_labels",
    "n_keywords",
    "speech_ratio",
    "loudness_db",
    "loudness_trend_db_per_min",
    "periodicity",
    "serial_correlation",
    "skewness",
    "kurtosis",
    "hurst",
]


@dataclass
class FrameScan:
    """Every kept frame, ordered by video (in the videos table's order) then time."""

    labels: list[str]  # label names by id
    counts: np.ndarray  # frames per label id
    flat: np.ndarray  # label ids of every frame, one frame after another (int32)
    offsets: np.ndarray  # frame i's labels are flat[offsets[i]:offsets[i + 1]] (int64)
    video: np.ndarray  # index into `video_ids` per frame (int32)
    video_ids: list[str]
    frame_ts: np.ndarray
    span_start: np.ndarray
    span_end: np.ndarray
    merged: np.ndarray  # sampled frames each kept frame stands for (int32)
    has_image: np.ndarray  # bool

    @property
    def frames(self) -> int:
        return len(self.frame_ts)

    def labels_of(self, i: int) -> list[str]:
        return [self.labels[j] for j in self.flat[self.offsets[i] : self.offsets[i + 1]]]

    def labels_per_frame(self) -> np.ndarray:
        return np.diff(self.offsets)

    def frames_per_video(self) -> np.ndarray:
        return np.bincount(self.video, minlength=len(self.video_ids))


def read_videos(root: str, endpoint_url: str | None = None) -> list[dict[str, Any]]:
    """The videos table without transcripts, in a stable order (by video id)."""
    table = read_table(root, "videos", VIDEO_COLUMNS, endpoint_url=endpoint_url)
    return sorted(table.to_pylist(), key=lambda r: r["video_id"])


def scan_frames(
    root: str,
    video_ids: list[str],
    endpoint_url: str | None = None,
    batch_size: int = 4096,
    progress: Callable[[int], None] | None = None,
) -> FrameScan:
    """Stream `frames/` once; frames of videos missing from `video_ids` are appended to it.
    `progress(n)` is called with each batch's frame count."""
    index = {v: i for i, v in enumerate(video_ids)}
    ids = list(video_ids)
    names: dict[str, int] = {}
    flat: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("video", "ts", "start", "end", "merged")}
    images: list[np.ndarray] = []
    for batch in iter_batches(root, "frames", SCAN_COLUMNS, batch_size, endpoint_url=endpoint_url):
        labels = batch.column("labels")
        values = pc.list_flatten(labels).to_pylist()
        for name in set(values) - names.keys():
            names[name] = len(names)
        flat.append(np.fromiter((names[v] for v in values), np.int32, len(values)))
        lengths.append(pc.fill_null(pc.list_value_length(labels), 0).to_numpy())
        batch_ids = batch.column("video_id").to_pylist()
        for v in batch_ids:
            if v not in index:
                index[v] = len(ids)
                ids.append(v)
        cols["video"].append(np.fromiter((index[v] for v in batch_ids), np.int32, len(batch_ids)))
        ts = _floats(batch.column("frame_ts"))
        cols["ts"].append(ts)
        cols["start"].append(_floats(batch.column("span_start"), ts))
        cols["end"].append(_floats(batch.column("span_end"), ts))
        cols["merged"].append(pc.fill_null(batch.column("merged"), 1).to_numpy().astype(np.int32))
        images.append(pc.is_valid(batch.column("image")).to_numpy(zero_copy_only=False))
        if progress:
            progress(batch.num_rows)
    if not lengths:
        empty = np.zeros(0)
        return FrameScan(
            [], np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(1, np.int64),
            np.zeros(0, np.int32), ids, empty, empty, empty, np.zeros(0, np.int32),
            np.zeros(0, bool),
        )  # fmt: skip
    video, ts = np.concatenate(cols["video"]), np.concatenate(cols["ts"])
    size = np.concatenate(lengths).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(size)])
    order = np.lexsort((ts, video))
    flat_sorted, new_offsets = ragged_take(np.concatenate(flat), offsets, order)
    return FrameScan(
        labels=sorted(names, key=names.__getitem__),
        counts=_frame_counts(flat_sorted, new_offsets, len(names)),
        flat=flat_sorted,
        offsets=new_offsets,
        video=video[order],
        video_ids=ids,
        frame_ts=ts[order],
        span_start=np.concatenate(cols["start"])[order],
        span_end=np.concatenate(cols["end"])[order],
        merged=np.concatenate(cols["merged"])[order],
        has_image=np.concatenate(images)[order],
    )


def ragged_take(
    flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ragged lists `rows` (list i is flat[offsets[i]:offsets[i + 1]]), in that order, as a
    new (flat, offsets) pair."""
    starts, size = offsets[:-1][rows], np.diff(offsets)[rows]
    new_offsets = np.concatenate([[0], np.cumsum(size)])
    gather = np.repeat(starts - new_offsets[:-1], size) + np.arange(new_offsets[-1])
    return flat[gather], new_offsets


def _floats(column: pa.ChunkedArray | pa.Array, fill: np.ndarray | None = None) -> np.ndarray:
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    if fill is not None:
        values = np.where(np.isnan(values), fill, values)
    return values


def _frame_counts(flat: np.ndarray, offsets: np.ndarray, n: int) -> np.ndarray:
    """Frames per label, counting a label listed twice on one frame once."""
    frame = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    pairs = sorted_unique(frame.astype(np.int64) * max(n, 1) + flat)
    return np.bincount(pairs % max(n, 1), minlength=n)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """`np.unique` of integers by a sort and a neighbour mask: the same result, many times
    faster than `np.unique` on millions of values with numpy 2.4."""
    s = np.sort(values)
    return s[np.concatenate([[True], s[1:] != s[:-1]])] if len(s) else s
