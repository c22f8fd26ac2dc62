"""Sources: the inputs of a build → one row per video, each with a stable `video_id`.

Inputs mix freely: video files and folders, URLs, URL-list files (.txt one per line;
.csv/.parquet/.jsonl with a `url` column, other columns kept as `extra`), anything yt-dlp
expands (playlists, channels, searches such as `ytsearch50:knife skills`) and `s3://`
prefixes. Web video is `<extractor>:<id>` (YouTube's `youtube:dQw4w9WgXcQ` whichever URL
form named it); direct media URLs and generic pages are `url:<hash>`; files are a content
hash, S3 objects a path hash. Duplicates collapse to one row.

Resolving web inputs needs yt-dlp and often the network, so it runs in batches through a
`runner` the pipeline backs with Ray tasks; the driver only reads lists and keeps order.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vidray.config import FetchConfig, SourcesConfig
from vidray.progress import Progress
from vidray.stages.base import Row, VideoError, failed

VIDEO_EXTENSIONS = frozenset(
    [".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".flv", ".ts", ".mpg", ".mpeg", ".3gp"]
)
LIST_EXTENSIONS = frozenset([".txt", ".csv", ".parquet", ".jsonl", ".ndjson"])
GENERIC_EXTRACTORS = frozenset(["generic", "html5mediaembed"])  # ids unique only per page
MAX_DEPTH = 3  # channel → tab → playlist → video

Runner = Callable[[list[list[str]], FetchConfig], Iterator[list[list[Row]]]]


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


def url_video_id(url: str) -> str:
    return f"url:{hashlib.sha1(url.strip().encode()).hexdigest()[:16]}"


def is_web(text: str) -> bool:
    """http(s) URLs and yt-dlp schemes such as `ytsearch20:query`."""
    return bool(re.match(r"(?i)https?://", text) or re.match(r"(?i)[a-z][a-z0-9]*:(?!//)\S", text))


def read_inputs(inputs: list[str]) -> list[Row]:
    """Everything knowable without yt-dlp: file, S3 and error rows, `{"web": url}` placeholders.

    A missing file or folder, an empty S3 prefix or a list without a `url` column is a bad
    *job* and raises here, before any work starts.
    """
    if not inputs:
        raise ValueError(
            "no inputs given: pass video files, folders, URLs, URL lists or s3:// prefixes"
        )
    entries = [e for item in inputs for e in _entries(item, top=True)]
    if not entries:
        raise ValueError(
            f"no video files found in {', '.join(inputs)} (looked for {', '.join(sorted(VIDEO_EXTENSIONS))})"
        )
    return entries


def expand_inputs(
    inputs: list[str] | list[Row],
    cfg: SourcesConfig | None = None,
    fetch: FetchConfig | None = None,
    runner: Runner | None = None,
    progress: Progress | None = None,
) -> list[Row]:
    """Every input → rows to process, in order; duplicates collapse and bad entries inside
    lists become error rows. `inputs` may be what `read_inputs` already returned. `progress`
    counts the inputs resolved, the error rows among what they gave, and the videos found."""
    cfg = cfg or SourcesConfig()
    entries = [e for e in inputs if isinstance(e, dict)] or read_inputs([str(i) for i in inputs])
    if progress is not None:
        progress.total = len(entries)
    rows: dict[str, Row] = {}
    videos = 0
    capped = False
    for found in _resolved(entries, cfg, fetch or FetchConfig(), runner or local_runner):
        errors = 0
        for row in found:
            if row["video_id"] in rows:
                continue
            if not row.get("error") and cfg.max_videos is not None and videos >= cfg.max_videos:
                capped = True
                break
            rows[row["video_id"]] = row
            videos += not row.get("error")
            errors += bool(row.get("error"))
        if progress is not None:
            note = f"{videos} video{'' if videos == 1 else 's'} found"
            note += " (max_videos reached)" if capped else ""
            progress.update(1, errors=errors, note=note)
        if capped:
            break
    return list(rows.values())


def _entries(item: str, top: bool, extra: dict[str, Any] | None = None) -> Iterator[Row]:
    """Rows known without the network, and `{"web": url}` placeholders for yt-dlp to resolve."""
    text = item.strip()
    base = {"extra": json.dumps(extra, default=str, sort_keys=True)} if extra else {}
    if text.lower().startswith("s3://"):
        yield from (row | base for row in list_s3(text))
        return
    if is_web(text):
        # A direct media link needs no network, so no Ray task either (telling a single site
        # video apart tries yt-dlp's ~1,800 extractors: left to the tasks).
        yield (direct_media_row(text) or {"web": text}) | base
        return
    path = Path(text).expanduser()
    if path.is_dir():
        for p in sorted(
            q for q in path.rglob("*") if q.suffix.lower() in VIDEO_EXTENSIONS and q.is_file()
        ):
            yield _file_row(p) | base
    elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS and top:
        for entry, more in read_url_list(path):
            yield from _entries(entry, top=False, extra=more)
    elif path.is_file():
        yield _file_row(path) | base
    elif top:
        raise FileNotFoundError(
            f"input not found: {item} (pass existing files or folders, URLs or s3:// prefixes)"
        )
    else:
        bad = {"video_id": url_video_id(text), "source": text[:500], **base}
        yield failed(
            bad,
            "sources",
            VideoError(
                "invalid_input", f"not a URL, s3:// object or existing file: {text[:200]!r}"
            ),
        )


def _file_row(path: Path) -> Row:
    return {"video_id": file_video_id(path), "source": str(path.resolve()), "title": path.stem}


def read_url_list(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(entry, extra columns) from a .txt (one per line, # comments) or a table with a `url` column."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                yield line, {}
        return
    table = _read_table(path, suffix)
    if "url" not in table.column_names:
        raise ValueError(
            f"{path}: a URL list needs a `url` column (columns: {', '.join(table.column_names)})"
        )
    for record in table.to_pylist():
        url = record.pop("url")
        if url is not None and str(url).strip():
            yield str(url), {k: v for k, v in record.items() if v is not None}


def _read_table(path: Path, suffix: str) -> Any:
    if suffix == ".csv":
        from pyarrow import csv

        return csv.read_csv(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    from pyarrow import json as pajson

    return pajson.read_json(path)


def list_s3(uri: str) -> list[Row]:
    """Media objects under an `s3://` prefix (or the one object named)."""
    from pyarrow import fs

    filesystem, base = fs.FileSystem.from_uri(uri)
    query = f"?{urlparse(uri).query}" if urlparse(uri).query else ""  # e.g. endpoint_override
    info = filesystem.get_file_info(base)
    if info.type == fs.FileType.File:
        found = [info]
    elif info.type == fs.FileType.Directory:
        found = filesystem.get_file_info(fs.FileSelector(base, recursive=True))
    else:
        raise FileNotFoundError(f"input not found: {uri} (no such S3 object or prefix)")
    rows = [
        {
            "video_id": f"s3:{hashlib.sha1(f.path.encode()).hexdigest()[:16]}",
            "source": f"s3://{f.path}{query}",
            "title": Path(f.path).stem,
        }
        for f in sorted(found, key=lambda f: f.path)
        if f.type == fs.FileType.File and Path(f.path).suffix.lower() in VIDEO_EXTENSIONS
    ]
    if not rows:
        raise FileNotFoundError(
            f"no video files under {uri} (looked for {', '.join(sorted(VIDEO_EXTENSIONS))})"
        )
    return rows


def _resolved(
    entries: list[Row], cfg: SourcesConfig, fetch: FetchConfig, runner: Runner
) -> Iterator[list[Row]]:
    """The rows of each entry in order: a web placeholder's are the videos yt-dlp finds behind it.

    The runner is consumed lazily, so a `max_videos` cap stops resolving early.
    """
    web = [e["web"] for e in entries if "web" in e]
    chunks = [web[i : i + cfg.urls_per_task] for i in range(0, len(web), cfg.urls_per_task)]
    per_url = (found for chunk in runner(chunks, fetch) for found in chunk)
    for entry in entries:
        if "web" not in entry:
            yield [entry]
            continue
        extra = {"extra": entry["extra"]} if entry.get("extra") else {}
        yield [row | extra for row in next(per_url)]


def local_runner(chunks: list[list[str]], fetch: FetchConfig) -> Iterator[list[list[Row]]]:
    """Resolve in this process (tests, tiny jobs); the pipeline passes a Ray-backed runner."""
    for chunk in chunks:
        yield resolve_urls(chunk, fetch)


def resolve_urls(urls: list[str], fetch: FetchConfig | None = None) -> list[list[Row]]:
    """For each URL, the video rows behind it (one for a video, many for a playlist)."""
    return [resolve_url(url, fetch or FetchConfig()) for url in urls]


def direct_media_row(url: str) -> Row | None:
    """The row of a URL whose path names a media file, else None."""
    if Path(urlparse(url).path).suffix.lower() in VIDEO_EXTENSIONS:
        return {"video_id": url_video_id(url), "url": url, "source": url}
    return None


def resolve_url(url: str, fetch: FetchConfig, depth: int = 0) -> list[Row]:
    """yt-dlp's view of one web input, without downloading anything."""
    direct = direct_media_row(url)
    if direct is not None:
        return [direct]
    ie = single_video_extractor(url)
    if ie is not None:
        return [{"video_id": f"{ie[0]}:{ie[1]}", "url": url, "source": url}]
    from vidray.web import INSTALL_HINT, base_options, with_retries

    try:
        import yt_dlp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(INSTALL_HINT) from exc
    opts = base_options(fetch) | {"extract_flat": "in_playlist"}
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info, _ = with_retries(lambda: ydl.extract_info(url, download=False), fetch, "resolve")
    except VideoError as exc:
        return [failed({"video_id": url_video_id(url), "url": url, "source": url}, "sources", exc)]
    info = info or {}
    if info.get("_type") in (None, "video"):  # one video: fetch re-reads its page
        info = {**info, "url": url, "webpage_url": url}
    return list(_videos(info, url, fetch, depth, playlist=None))


def _videos(
    info: dict[str, Any], url: str, fetch: FetchConfig, depth: int, playlist: str | None
) -> Iterator[Row]:
    if info.get("_type") in ("playlist", "multi_video"):
        title = info.get("title") or info.get("id")
        for entry in info.get("entries") or []:
            if entry:
                yield from _videos(entry, url, fetch, depth, playlist=title)
        return
    target = _entry_url(info) or url
    key = (info.get("ie_key") or info.get("extractor_key") or "").lower()
    site = bool(key) and key not in GENERIC_EXTRACTORS
    nested = info.get("_type") in ("url", "url_transparent") and site and not _is_video_ie(key)
    if nested and depth < MAX_DEPTH:
        for row in resolve_url(target, fetch, depth + 1):  # a channel's tab, a nested playlist
            yield row | _playlist(playlist)
        return
    vid = f"{key}:{info['id']}" if site and info.get("id") else url_video_id(target)
    row = {"video_id": vid, "url": target, "source": target, "title": info.get("title")}
    yield row | _playlist(playlist)


def _playlist(title: str | None) -> Row:
    return {"playlist": title} if title else {}


def _entry_url(info: dict[str, Any]) -> str | None:
    from yt_dlp.utils import unsmuggle_url

    url = info.get("url") or info.get("webpage_url")
    if not url and info.get("formats"):
        url = info["formats"][-1].get("url")
    return unsmuggle_url(url)[0] if url else None


@cache
def _extractors() -> tuple[Any, ...]:
    from yt_dlp.extractor import gen_extractor_classes

    return tuple(
        ie for ie in gen_extractor_classes() if ie.ie_key().lower() not in GENERIC_EXTRACTORS
    )


@cache
def _is_video_ie(key: str) -> bool:
    return any(
        ie.ie_key().lower() == key and getattr(ie, "_RETURN_TYPE", None) == "video"
        for ie in _extractors()
    )


def single_video_extractor(url: str) -> tuple[str, str] | None:
    """(extractor, id) when a site extractor names one video by its URL alone (no network)."""
    for ie in _extractors():
        if ie.suitable(url):
            if getattr(ie, "_RETURN_TYPE", None) == "video" and (vid := ie.get_temp_id(url)):
                return ie.ie_key().lower(), str(vid)
            return None
    return None
