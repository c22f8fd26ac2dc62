"""Sink: route finished video rows into the `frames/`, `videos/` and `errors/` Parquet tables.

A dataset ROOT (a local folder or `s3://bucket/prefix`) holds:

    frames/[k=v/...]part-<h>[-NNNNN].parquet   one row per kept frame
    videos/[k=v/...]part-<h>[-NNNNN].parquet   one row per video
    errors/part-<h>[-NNNNN].parquet            one row per video that could not be processed
    _parts/part-<h>.json                       a sink batch's manifest: the batch's commit
    README.md, corpus_stats.parquet            rewritten at the end of every build

`<h>` is fixed by the video ids of the batch, so a rerun replaces rather than duplicates.
`k=v/` are Hive partitions by `output.partition_by` (columns of the video row); as in every Hive
layout the value lives in the path, not in the file. A batch larger than `output.max_file_size`
is split into numbered files. Each file is written under a hidden temporary name and moved into
place; the manifest, written after all of a batch's files, commits them. vidray's readers read
only committed parts, and `prepare_output(..., resume=True)` deletes everything else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vidray.config import ConfigError, OutputConfig, parse_size
from vidray.schema import TABLES, VIDEOS_SCHEMA, frame_id, to_table
from vidray.stages.base import Batch, Row, to_rows

# open_root and write_table are also imported from here (pipeline, semdedup).
from vidray.storage import (
    PROBE_PREFIX,
    TMP_PREFIX,
    byte_chunks,
    check_writable,
    delete_files,
    list_files,
    open_root,
    put_bytes,
    redact_url,
    write_table,
)

log = logging.getLogger(__name__)

SINK_TABLES = ("frames", "videos", "errors")
PARTS = "_parts"  # manifests; the leading underscore hides the folder from Parquet readers
PART_FILE = re.compile(r"(part-[0-9a-f]{16})(?:-\d{5})?\.parquet")
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # Hive's name for a null value (pyarrow, DuckDB)


def check_output(root: str, cfg: OutputConfig | None = None) -> None:
    """Fail before any work if the output config is wrong or the root cannot be written."""
    cfg = cfg or OutputConfig()
    check_layout(cfg)
    check_writable(root, cfg.endpoint_url, cfg.region)


def check_layout(cfg: OutputConfig) -> None:
    """Sizes must parse and partition columns must be scalar columns of the videos table."""
    for key in ("row_group_size", "max_file_size"):
        if parse_size(getattr(cfg, key)) <= 0:
            raise ConfigError(f"output.{key} must be positive, got {getattr(cfg, key)!r}")
    if len(set(cfg.partition_by)) != len(cfg.partition_by):
        raise ConfigError(f"output.partition_by names a column twice: {cfg.partition_by}")
    for name in cfg.partition_by:
        kind = VIDEOS_SCHEMA.field(name).type if name in VIDEOS_SCHEMA.names else None
        if kind is None or not (
            pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind)
        ):
            usable = [
                f.name for f in VIDEOS_SCHEMA if pa.types.is_string(f.type) and f.name != "video_id"
            ]
            raise ConfigError(
                f"output.partition_by: {name!r} is not a string, integer or boolean column of "
                f"the videos table; use e.g. {', '.join(usable[:8])}"
            )


# --- writing ----------------------------------------------------------------------------------


def split_rows(rows: list[Row], pixels: bool = True) -> dict[str, list[Row]]:
    """Finished video rows → rows of each table. Every video lands in exactly one of
    `videos` or `errors`; its kept frames go to `frames`."""
    tables: dict[str, list[Row]] = {"frames": [], "videos": [], "errors": []}
    for row in rows:
        if row.get("error"):
            tables["errors"].append(
                {
                    "video_id": row.get("video_id"),
                    "source": row.get("source"),
                    "url": row.get("url"),
                    "stage": row.get("error_stage"),
                    "reason": row.get("error_reason"),
                    "error_type": row.get("error_type"),
                    "message": row.get("error"),
                    "attempts": row.get("attempts"),
                    "extra": row.get("extra"),
                }
            )
            continue
        frames = row.get("frames") or []
        first = frames[0] if frames else {}
        tables["videos"].append({**row, "width": first.get("width"), "height": first.get("height")})
        for frame in frames:
            tables["frames"].append(
                {
                    **frame,
                    "frame_id": frame_id(row["video_id"], frame["frame_ts"]),
                    "video_id": row["video_id"],
                    "source": row["source"],
                    "url": row.get("url"),
                    "image": frame.get("image") if pixels else None,
                }
            )
    return tables


def part_name(rows: list[Row]) -> str:
    """A file name fixed by the videos it holds, so a rerun replaces rather than duplicates."""
    ids = "\n".join(sorted(str(r.get("video_id")) for r in rows))
    return f"part-{hashlib.sha1(ids.encode()).hexdigest()[:16]}.parquet"


def partition_folder(row: Row, by: list[str]) -> str:
    """`k=v/...` for the Hive partition of a video row (values URI-encoded, null as Hive's)."""
    parts = []
    for name in by:
        value = row.get(name)
        if value is None or value == "":
            text = NULL_PARTITION
        elif isinstance(value, bool):
            text = str(value).lower()
        else:
            text = quote(str(value), safe="")
        parts.append(f"{name}={text}/")
    return "".join(parts)


def write_part(root: str, rows: list[Row], cfg: OutputConfig) -> dict[str, Any]:
    """Write one sink batch's files, then its manifest; return the manifest."""
    fs, base = open_root(root, cfg.endpoint_url, cfg.region)
    stem = part_name(rows).removesuffix(".parquet")
    manifest_path = f"{base}/{PARTS}/{stem}.json"
    old = read_manifest(fs, manifest_path)
    if old is not None:  # uncommit first, so readers never see a half-replaced part
        fs.delete_file(manifest_path)
    row_group, file_size = parse_size(cfg.row_group_size), parse_size(cfg.max_file_size)
    tables = split_rows(rows, cfg.pixels)
    folders = {r["video_id"]: partition_folder(r, cfg.partition_by) for r in tables["videos"]}
    files: list[str] = []
    for table, table_rows in tables.items():
        groups: dict[str, list[Row]] = {}
        for row in table_rows:
            groups.setdefault("" if table == "errors" else folders[row["video_id"]], []).append(row)
        schema = TABLES[table]
        hidden = [] if table == "errors" else [c for c in cfg.partition_by if c in schema.names]
        for folder, group in groups.items():
            data = to_table(group, schema).drop_columns(hidden)
            pieces = byte_chunks(data, file_size)
            for i, (offset, length) in enumerate(pieces):
                name = f"{stem}.parquet" if len(pieces) == 1 else f"{stem}-{i:05d}.parquet"
                files.append(f"{table}/{folder}{name}")
                write_table(fs, f"{base}/{files[-1]}", data.slice(offset, length), row_group)
    for rel in set(old["files"] if old else []) - set(files):
        with suppress(FileNotFoundError):
            fs.delete_file(f"{base}/{rel}")
    manifest = {
        "part": stem,
        "video_ids": sorted(str(r.get("video_id")) for r in rows),
        "files": files,
        "rows": {table: len(table_rows) for table, table_rows in tables.items()},
        "pixels": cfg.pixels,
        "partition_by": list(cfg.partition_by),
    }
    put_bytes(fs, manifest_path, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return manifest


def read_manifest(fs: pafs.FileSystem, path: str) -> dict[str, Any] | None:
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return dict(json.loads(f.read()))


class ParquetSink:
    """Writes each batch of finished rows; returns one small summary row per video."""

    # A failed write fails the batch (not its videos): Ray retries it, and the driver's second
    # pass reruns the videos of a batch still lost, so each ends in videos/ or errors/.
    guarded = False

    def __init__(self, root: str, cfg: OutputConfig) -> None:
        self.root, self.cfg = root, cfg

    def __call__(self, batch: Batch) -> pa.Table:
        rows = to_rows(batch)
        if rows:
            write_part(self.root, rows, self.cfg)
        return pa.Table.from_pylist([summary(r) for r in rows])


def summary(row: Row) -> dict[str, Any]:
    return {
        "video_id": row.get("video_id"),
        "source": row.get("source"),
        "url": row.get("url"),
        "error_stage": row.get("error_stage"),
        "error_reason": row.get("error_reason"),
        "error": row.get("error"),
        "frames_sampled": row.get("frames_sampled") or 0,
        "frames_kept": row.get("frames_kept") or 0,
        "n_labels": row.get("n_labels") or 0,
        "n_words": len(row.get("transcript") or []),
    }


# --- resuming ---------------------------------------------------------------------------------


def committed_parts(fs: pafs.FileSystem, base: str) -> set[str]:
    """The stems (`part-<h>`) of the batches whose manifest has been written."""
    selector = pafs.FileSelector(f"{base}/{PARTS}", allow_not_found=True)
    names = (i.base_name for i in fs.get_file_info(selector) if i.type == pafs.FileType.File)
    return {n.removesuffix(".json") for n in names if n.endswith(".json") and n[0] not in "._"}


def committed_videos(root: str, cfg: OutputConfig | None = None) -> set[str]:
    """The ids of the videos in committed batches, read from the manifests; deletes nothing."""
    cfg = cfg or OutputConfig()
    fs, base = open_root(root, cfg.endpoint_url, cfg.region)
    stems = sorted(committed_parts(fs, base))
    with ThreadPoolExecutor(16) as pool:
        manifests = pool.map(lambda s: read_manifest(fs, f"{base}/{PARTS}/{s}.json"), stems)
        return {v for m in manifests if m for v in m["video_ids"]}


def prepare_output(root: str, cfg: OutputConfig | None = None, resume: bool = False) -> set[str]:
    """Make ROOT ready for a build; return the ids of the videos already committed there.

    Without `resume` a ROOT that already holds a dataset is refused: a build neither mixes
    with nor silently destroys an earlier one. With it, stale temporary files and the files
    of uncommitted or broken batches are deleted, and the committed videos are returned."""
    cfg = cfg or OutputConfig()
    fs, base = open_root(root, cfg.endpoint_url, cfg.region)
    found = {t: list_files(fs, f"{base}/{t}") for t in (*SINK_TABLES, PARTS)}
    if not resume:
        held = [t for t, files in found.items() if files]
        if held:
            raise FileExistsError(
                f"output {root!r} already holds a dataset ({', '.join(held)}): pass --resume to "
                "continue it (videos already written are skipped), or choose a new --output"
            )
        return set()
    stems = sorted(committed_parts(fs, base))
    with ThreadPoolExecutor(16) as pool:
        read = pool.map(lambda s: read_manifest(fs, f"{base}/{PARTS}/{s}.json"), stems)
        manifests = dict(zip(stems, read, strict=True))
    present = {p[len(base) + 1 :] for t in SINK_TABLES for p in found[t]}
    keep: set[str] = set()
    done: set[str] = set()
    stale = []
    for stem, manifest in sorted(manifests.items()):
        if manifest is None:
            continue
        check_same_layout(root, manifest, cfg)
        if all(f in present for f in manifest["files"]):
            keep.update(manifest["files"])
            done.update(manifest["video_ids"])
        else:  # a file of a committed batch is gone: redo the batch's videos
            stale.append(f"{base}/{PARTS}/{stem}.json")
    for rel in present - keep:
        name = rel.rsplit("/", 1)[-1]
        if name.startswith(TMP_PREFIX) or PART_FILE.fullmatch(name):
            stale.append(f"{base}/{rel}")
    stale += [p for p in found[PARTS] if p.rsplit("/", 1)[-1].startswith(TMP_PREFIX)]
    top = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    stale += [i.path for i in top if i.base_name.startswith((TMP_PREFIX, PROBE_PREFIX))]
    delete_files(fs, stale)
    log.info(
        "resuming %s: %d videos committed in %d parts; removed %d stale files",
        redact_url(root),
        len(done),
        len(manifests),
        len(stale),
    )
    return done


def check_same_layout(root: str, manifest: dict[str, Any], cfg: OutputConfig) -> None:
    for key in ("partition_by", "pixels"):
        if manifest.get(key) != getattr(cfg, key):
            raise ConfigError(
                f"output {root!r} was written with output.{key}={manifest.get(key)!r} but this "
                f"run has {getattr(cfg, key)!r}: resume with the same output.{key}, or choose a "
                "new --output"
            )


# --- reading ----------------------------------------------------------------------------------


def table_files(
    root: str, table: str, *, endpoint_url: str | None = None, region: str | None = None
) -> tuple[pafs.FileSystem, list[str]]:
    """The filesystem and the Parquet files of one table: hidden and temporary files skipped,
    and for the sink's tables only the files of committed batches."""
    fs, base = open_root(root, endpoint_url, region)
    return fs, [f"{base}/{table}/{rel}" for rel in _table_files(fs, base, table)]


def _table_files(fs: pafs.FileSystem, base: str, table: str) -> list[str]:
    folder = f"{base}/{table}"
    # Commits first: a batch committed while the files are listed is then left out whole,
    # never seen with only some of its files.
    parts = committed_parts(fs, base) if table in SINK_TABLES else set()
    rels = [p[len(folder) + 1 :] for p in list_files(fs, folder)]
    rels = [r for r in rels if r.endswith(".parquet") and not re.search(r"(^|/)[._]", r)]
    if table in SINK_TABLES:
        rels = [
            r
            for r in rels
            if (m := PART_FILE.fullmatch(r.rsplit("/", 1)[-1])) is None or m.group(1) in parts
        ]
    return sorted(rels)


def table_dataset(
    root: str, table: str, endpoint_url: str | None = None, region: str | None = None
) -> pads.Dataset | None:
    """One table as a pyarrow dataset of its declared schema plus any Hive partition columns
    (typed as in the videos table); None if no file has been committed."""
    fs, base = open_root(root, endpoint_url, region)
    rels = _table_files(fs, base, table)
    if not rels:
        return None
    layouts = {tuple(d.split("=", 1)[0] for d in r.split("/")[:-1]) for r in rels}
    if len(layouts) > 1:
        raise ValueError(f"{root}/{table} mixes partition layouts: {sorted(layouts)}")
    keys = layouts.pop()
    schema = TABLES[table]
    fields = [
        VIDEOS_SCHEMA.field(k) if k in VIDEOS_SCHEMA.names else pa.field(k, pa.string())
        for k in keys
    ]
    return pads.dataset(
        [f"{base}/{table}/{r}" for r in rels],
        filesystem=fs,
        format="parquet",
        schema=pa.schema([*schema, *(f for f in fields if f.name not in schema.names)]),
        partitioning=pads.partitioning(pa.schema(fields), flavor="hive") if keys else None,
        partition_base_dir=f"{base}/{table}",
    )


def read_table(
    root: str,
    table: str,
    columns: list[str] | None = None,
    filters: Any = None,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> pa.Table:
    """One table of a dataset root, with its declared schema (empty if none was written);
    `filters` (a pyarrow expression or DNF list, may name partition columns) is pushed down so
    unwanted rows and partitions are never loaded."""
    dataset = table_dataset(root, table, endpoint_url, region)
    schema = TABLES[table]
    if dataset is None:
        empty = schema.empty_table()
        return empty.select(columns) if columns else empty
    if filters is not None and not isinstance(filters, pc.Expression):
        filters = pq.filters_to_expression(filters)
    return dataset.to_table(columns=columns or schema.names, filter=filters)


def iter_batches(
    root: str,
    table: str,
    columns: list[str],
    batch_size: int = 1024,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """One table of a dataset root as record batches, so a large table is never all in memory."""
    dataset = table_dataset(root, table, endpoint_url, region)
    if dataset is not None:
        yield from dataset.to_batches(columns=columns, batch_size=batch_size)
