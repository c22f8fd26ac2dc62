"""Per-video timelines for the report: the words over time, the kept frames with the span of
sampled frames each one stands for (near-duplicates merged into it), and the frames that
cross-video deduplication set aside; one small script file per video, loaded on demand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vidray.report.gallery import write_script
from vidray.report.scan import FrameScan
from vidray.schema import frame_id
from vidray.sink import iter_batches

PER_FOLDER = 1000


def timeline_key(v: int) -> str:
    """The data key (and file stem under data/) of video `v`'s timeline; app.js agrees."""
    return f"timeline/{v // PER_FOLDER:04d}/{v}"


def video_list(videos: list[dict[str, Any]], scan: FrameScan) -> list[list[Any]]:
    """One compact row per video in `scan.video_ids` order, for the paged videos table."""
    by_id = {v["video_id"]: v for v in videos}
    kept = scan.frames_per_video()
    rows = []
    for i, vid in enumerate(scan.video_ids):
        v = by_id.get(vid, {})
        rows.append(
            [
                vid,
                v.get("title") or Path(v.get("source") or vid).name,
                v.get("url") or v.get("source") or "",
                round(float(v.get("duration_s") or 0.0), 1),
                int(v.get("frames_sampled") or 0),
                int(kept[i]),
                int(v.get("frames_dropped") or 0),
                int(v.get("n_labels") or 0),
                v.get("license") or "",
            ]
        )
    return rows


def frame_rows(
    scan: FrameScan, v: int, gallery: dict[int, int], set_aside: set[str]
) -> list[list[Any]]:
    """The kept frames of video `v`: [time, span start, span end, merged, gallery position or
    -1, set aside by cross-video dedup (0/1), labels]."""
    lo, hi = np.searchsorted(scan.video, [v, v + 1])
    vid = scan.video_ids[v]
    return [
        [
            round(float(scan.frame_ts[i]), 2),
            round(float(scan.span_start[i]), 2),
            round(float(scan.span_end[i]), 2),
            int(scan.merged[i]),
            gallery.get(i, -1),
            int(frame_id(vid, float(scan.frame_ts[i])) in set_aside),
            scan.labels_of(i),
        ]
        for i in range(lo, hi)
    ]


def write_timelines(
    root: str,
    site: Path,
    scan: FrameScan,
    chosen: np.ndarray,
    without_thumbnail: set[int],
    set_aside: set[str],
    endpoint_url: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """A timeline file for every video in `scan.video_ids` (transcripts streamed from
    `videos/`); returns how many were written. Frames link to the gallery frames that have a
    thumbnail."""
    index = {vid: i for i, vid in enumerate(scan.video_ids)}
    gallery = {int(i): g for g, i in enumerate(chosen.tolist()) if g not in without_thumbnail}
    columns = ["video_id", "duration_s", "transcript", "keywords"]
    written = set()
    for batch in iter_batches(root, "videos", columns, 64, endpoint_url=endpoint_url):
        for row in batch.to_pylist():
            v = index.get(row["video_id"])
            if v is None:
                continue
            keywords = {
                (k["word"], round(k["start"], 2)): k["lemma"] for k in row["keywords"] or []
            }
            words = [
                [round(w["start"], 2), w["word"], keywords.get((w["word"], round(w["start"], 2)))]
                for w in row["transcript"] or []
            ]
            data = {
                "duration": round(float(row["duration_s"] or 0.0), 2),
                "words": words,
                "frames": frame_rows(scan, v, gallery, set_aside),
            }
            write_script(site / "data" / f"{timeline_key(v)}.js", timeline_key(v), data)
            written.add(v)
        if progress:
            progress(batch.num_rows)
    # Frames whose video row is missing (a dataset written by other tools) still get one.
    for v in set(range(len(scan.video_ids))) - written:
        duration = float(scan.span_end[scan.video == v].max(initial=0.0))
        data = {
            "duration": round(duration, 2),
            "words": [],
            "frames": frame_rows(scan, v, gallery, set_aside),
        }
        write_script(site / "data" / f"{timeline_key(v)}.js", timeline_key(v), data)
    return len(scan.video_ids)
