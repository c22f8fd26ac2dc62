"""Sources: the inputs of a build (video files and folders) → one row per video to process."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

VIDEO_EXTENSIONS = frozenset(
    [".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".flv", ".ts", ".mpg", ".mpeg", ".3gp"]
)


def file_video_id(path: Path, block: int = 1 << 20) -> str:
    """A content hash (size, first and last MiB): the same video under two names is one video."""
    size = path.stat().st_size
    h = hashlib.sha1(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(block))
        if size > 2 * block:
            f.seek(-block, 2)
            h.update(f.read(block))
    return f"file:{h.hexdigest()[:16]}"


def expand_inputs(inputs: list[str]) -> list[dict[str, Any]]:
    """Files are taken as given; folders are searched for video files. Duplicates collapse."""
    if not inputs:
        raise ValueError("no inputs given: pass video files or folders")
    rows: dict[str, dict[str, Any]] = {}
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
            )
        elif path.is_file():
            found = [path]
        else:
            raise FileNotFoundError(
                f"input not found: {item} (pass existing video files or folders)"
            )
        for p in found:
            vid = file_video_id(p)
            rows.setdefault(vid, {"video_id": vid, "source": str(p.resolve())})
    if not rows:
        raise ValueError(
            f"no video files found in {', '.join(inputs)} (looked for {', '.join(sorted(VIDEO_EXTENSIONS))})"
        )
    return list(rows.values())
