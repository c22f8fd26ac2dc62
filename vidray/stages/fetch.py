"""Fetch: a video row → a local media file in scratch space, with the page's metadata (yt-dlp).

Web video goes through yt-dlp's Python API (never a shell command built from a URL or a
title); `s3://` objects are copied with pyarrow; local files pass through untouched. Files
are named from the `video_id`, never from titles. Transient failures (timeouts, 5xx,
connection resets, incomplete reads) are retried with exponential backoff; permanent ones
(not found, private, removed, geo-blocked, age-gated, unsupported) fail at once with a reason.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from vidray.config import FetchConfig, parse_size
from vidray.sink import open_root
from vidray.stages.base import Row, Stage, VideoError
from vidray.web import INSTALL_HINT, base_options, with_retries

log = logging.getLogger(__name__)


def safe_name(video_id: str) -> str:
    """A file name for a video: from its id only, no path separators or odd characters."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", video_id).strip("_")[:80] or "video"
    return f"{stem}-{hashlib.sha1(video_id.encode()).hexdigest()[:8]}"


def format_selector(cfg: FetchConfig) -> str:
    """The smallest video at or above the target height plus the best audio, else the best."""
    if cfg.audio_only:
        return "ba/b"
    h = cfg.target_height
    return f"wv*[height>={h}]+ba/w[height>={h}]/bv*+ba/b"


def web_metadata(info: dict[str, Any]) -> Row:
    """The page metadata kept in `videos/`."""
    chapters = [
        {"title": c.get("title"), "start": c.get("start_time"), "end": c.get("end_time")}
        for c in info.get("chapters") or []
    ]
    return {
        "url": info.get("webpage_url") or info.get("original_url"),
        "extractor": info.get("extractor_key") or info.get("extractor"),
        "title": info.get("title"),
        "uploader": info.get("uploader"),
        "channel": info.get("channel"),
        "web_duration_s": info.get("duration"),
        "upload_date": info.get("upload_date"),
        "categories": info.get("categories"),
        "tags": info.get("tags"),
        "license": info.get("license"),
        "declared_language": info.get("language"),
        "chapters": chapters or None,
        "view_count": info.get("view_count"),
    }


def check_limits(info: dict[str, Any], cfg: FetchConfig) -> None:
    if info.get("_type") == "playlist":
        raise VideoError("playlist", "a playlist, not one video: pass it as an input to expand it")
    if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
        raise VideoError("live", "a live or upcoming stream, not a finished video")
    duration = info.get("duration")
    if duration and cfg.max_duration_s and duration > cfg.max_duration_s:
        raise VideoError(
            "too_long",
            f"{duration:.0f}s is longer than fetch.max_duration_s={cfg.max_duration_s:g}",
        )
    size = expected_size(info)
    if size and size > parse_size(cfg.max_filesize):
        raise VideoError(
            "too_large", f"about {size / 2**20:.0f} MiB, over fetch.max_filesize={cfg.max_filesize}"
        )


def expected_size(info: dict[str, Any]) -> int:
    parts = info.get("requested_formats") or [info]
    return int(sum(p.get("filesize") or p.get("filesize_approx") or 0 for p in parts))


class Gate(Protocol):
    def try_acquire(self, host: str) -> float: ...
    def release(self, host: str) -> None: ...
    def finished(self, host: str, nbytes: int) -> None: ...


class HostGate:
    """Per-host download slots and spacing between starts; one shared by all fetch actors.

    A slot is a lease: one not released within `lease_s` (its actor died mid-download) expires,
    so a lost actor cannot block a host for good. Finished downloads are counted here too, so
    the driver's progress can show them (`stats`).
    """

    def __init__(self, per_host: int, min_interval_s: float = 0.0, lease_s: float = 3600.0) -> None:
        self.per_host, self.min_interval_s, self.lease_s = per_host, min_interval_s, lease_s
        self.active: dict[str, list[float]] = {}  # host -> start times of the held slots
        self.last_start: dict[str, float] = {}
        self.downloads = self.bytes = 0
        self.lock = threading.Lock()

    def try_acquire(self, host: str) -> float:
        """0 when a slot is taken, else how long to wait before asking again."""
        with self.lock:
            now = time.monotonic()
            held = [t for t in self.active.get(host, []) if now - t < self.lease_s]
            self.active[host] = held
            wait = self.last_start.get(host, -1e9) + self.min_interval_s - now
            if len(held) >= self.per_host:
                return max(wait, 0.2)
            if wait > 0:
                return wait
            held.append(now)
            self.last_start[host] = now
            return 0.0

    def release(self, host: str) -> None:
        with self.lock:
            held = self.active.get(host, [])
            if held:
                held.pop(0)

    def finished(self, host: str, nbytes: int) -> None:
        """A video's media is in scratch (downloaded, or copied from S3)."""
        with self.lock:
            self.downloads += 1
            self.bytes += nbytes

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {"downloads": self.downloads, "bytes": self.bytes}


@contextmanager
def host_slot(gate: Gate, host: str) -> Iterator[None]:
    while (wait := gate.try_acquire(host)) > 0:
        time.sleep(min(wait, 1.0))
    try:
        yield
    finally:
        gate.release(host)


def file_size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def scratch_usage(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*") if p.is_file())


def wait_for_space(folder: Path, need: int, budget: int, timeout_s: float) -> None:
    """Hold a download until the scratch folder has room (decoding frees it)."""
    if need > budget:
        raise VideoError("too_large", f"needs {need / 2**20:.0f} MiB, over fetch.scratch_budget")
    deadline = time.monotonic() + timeout_s
    while scratch_usage(folder) + need > budget:
        if time.monotonic() > deadline:
            raise VideoError(
                "scratch_full", f"no room in {folder} for {timeout_s:.0f}s (fetch.scratch_budget)"
            )
        time.sleep(0.5)


class FetchStage(Stage):
    """Rows with a `url` or an `s3://` source → `media_path`, a local file in scratch, + metadata."""

    name = "fetch"

    cfg: FetchConfig

    def __init__(
        self, cfg: FetchConfig, media_root: str | None = None, gate: Gate | None = None
    ) -> None:
        super().__init__(cfg)
        self.media_root = media_root  # where kept media goes (fetch.keep_media), e.g. ROOT/media
        self.gate: Gate = gate or HostGate(cfg.per_host, cfg.min_interval_s)

    def setup(self) -> None:
        self.scratch = Path(self.cfg.scratch_dir or Path(tempfile.gettempdir()) / "vidray-scratch")
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.budget = parse_size(self.cfg.scratch_budget)

    def process(self, row: Row) -> Row:
        fetch: Callable[[str, str], Row]
        if row.get("url"):
            fetch = self.fetch_web
        elif str(row.get("source", "")).startswith("s3://"):
            fetch = self.fetch_object
        else:
            return row  # a local file: decode reads it where it is
        stem = safe_name(row["video_id"])
        source = row.get("url") or row["source"]
        try:
            out = {**row, **fetch(source, stem)}
            self.gate.finished(urlparse(source).hostname or "?", file_size(out["media_path"]))
            if self.cfg.keep_media and self.media_root:
                out["media"] = keep_media(out["media_path"], self.media_root)
        except BaseException:
            for leftover in self.scratch.glob(f"{stem}.*"):  # partial downloads, subtitles
                leftover.unlink(missing_ok=True)
            raise
        return out

    def fetch_web(self, url: str, stem: str) -> Row:
        try:
            import yt_dlp
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(INSTALL_HINT) from exc
        opts = ydl_options(self.cfg, self.scratch, stem)
        host = urlparse(url).hostname or "?"
        # A host slot is held only while talking to the host, not while waiting for disk.
        with yt_dlp.YoutubeDL(opts) as ydl:
            with host_slot(self.gate, host):
                info, tries = with_retries(
                    lambda: ydl.extract_info(url, download=False), self.cfg, "extract"
                )
            info = ydl.sanitize_info(info) if info else {}
            check_limits(info, self.cfg)
            wait_for_space(self.scratch, expected_size(info), self.budget, self.cfg.scratch_wait_s)
            with host_slot(self.gate, host):
                done, attempts = with_retries(
                    lambda: ydl.process_ie_result(dict(info), download=True), self.cfg, "download"
                )
        files = [d.get("filepath") for d in done.get("requested_downloads") or []]
        path = next((f for f in files if f and Path(f).is_file()), None)
        if path is None:
            raise VideoError(
                "too_large",
                f"nothing downloaded (over fetch.max_filesize={self.cfg.max_filesize}?)",
            )
        return {
            **web_metadata(info),
            "media_path": path,
            "scratch": True,
            "subtitles": read_subtitles(done),
            "fetch_attempts": tries + attempts - 1,
        }

    def fetch_object(self, uri: str, stem: str) -> Row:
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(path)
        if info.type != fs.FileType.File:
            raise VideoError("not_found", f"no such S3 object: {uri}")
        size = info.size or 0
        wait_for_space(self.scratch, size, self.budget, self.cfg.scratch_wait_s)
        dst = self.scratch / (stem + Path(path).suffix.lower())

        def copy() -> None:
            with filesystem.open_input_stream(path) as src, dst.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)

        _, attempts = with_retries(copy, self.cfg, "s3 copy")
        return {"media_path": str(dst), "scratch": True, "fetch_attempts": attempts}


def ydl_options(cfg: FetchConfig, scratch: Path, stem: str) -> dict[str, Any]:
    """yt-dlp options: our own retries, quiet, file names from the video id only."""
    opts = base_options(cfg) | {
        "noplaylist": True,
        "format": format_selector(cfg),
        "outtmpl": {"default": f"{stem}.%(ext)s", "subtitle": f"{stem}.%(ext)s"},
        "paths": {"home": str(scratch), "temp": str(scratch)},
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "file_access_retries": 0,
        "overwrites": True,
        "max_filesize": parse_size(cfg.max_filesize),
    }
    if cfg.rate_limit:
        opts["ratelimit"] = parse_size(cfg.rate_limit)
    if cfg.subtitles:
        opts |= {
            "writesubtitles": True,
            "writeautomaticsub": True,
            "subtitleslangs": cfg.subtitle_langs,
            "subtitlesformat": "vtt/srt/best",
        }
    return opts


def read_subtitles(info: dict[str, Any]) -> list[Row] | None:
    """Subtitle and automatic-caption tracks saved next to the video, read as text."""
    tracks = info.get("requested_subtitles") or {}
    manual = set(info.get("subtitles") or {})
    out = []
    for lang, track in tracks.items():
        path = track.get("filepath")
        if not path or not Path(path).is_file():
            continue
        out.append(
            {
                "lang": lang,
                "ext": track.get("ext"),
                "automatic": lang not in manual,
                "text": Path(path).read_text(encoding="utf-8", errors="replace"),
            }
        )
        Path(path).unlink()
    return out or None


def keep_media(path: str, media_root: str) -> str:
    """Copy a fetched file to ROOT/media (local or S3); the scratch copy is still decoded."""
    filesystem, base = open_root(media_root)
    filesystem.create_dir(base, recursive=True)
    dst = f"{base}/{Path(path).name}"
    with open(path, "rb") as src, filesystem.open_output_stream(dst) as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return f"{media_root.rstrip('/')}/{Path(path).name}"
