"""Sink: route finished video rows into the `frames/`, `videos/` and `errors/` Parquet tables."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vidray.config import OutputConfig
from vidray.schema import TABLES, to_table
from vidray.stages.base import Batch, Row, to_rows


def open_root(root: str) -> tuple[pafs.FileSystem, str]:
    """A local folder or an `s3://bucket/prefix` → (filesystem, path), checked to be usable."""
    try:
        fs, path = pafs.FileSystem.from_uri(root)
    except (pa.ArrowInvalid, ValueError):
        import os

        fs, path = pafs.LocalFileSystem(), os.path.abspath(root)
    return fs, path.rstrip("/")


def check_output(root: str) -> None:
    """Fail before any work if the output root cannot be written."""
    fs, path = open_root(root)
    try:
        fs.create_dir(path, recursive=True)
        probe = f"{path}/.vidray-write-check-{uuid.uuid4().hex}"
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except OSError as exc:
        raise OSError(f"cannot write to output {root!r}: {exc}") from exc


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
                    "video_id": row["video_id"],
                    "source": row["source"],
                    "image": frame.get("image") if pixels else None,
                }
            )
    return tables


def part_name(rows: list[Row]) -> str:
    """A file name fixed by the videos it holds, so a rerun replaces rather than duplicates."""
    ids = "\n".join(sorted(str(r.get("video_id")) for r in rows))
    return f"part-{hashlib.sha1(ids.encode()).hexdigest()[:16]}.parquet"


def write_table(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    """Write under a temporary name, then move into place: no half-written file is visible."""
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
    with fs.open_output_stream(tmp) as out:
        pq.write_table(table, out, row_group_size=256, compression="zstd")
    fs.move(tmp, path)


class ParquetSink:
    """Writes each batch of finished rows; returns one small summary row per video."""

    def __init__(self, root: str, cfg: OutputConfig) -> None:
        self.root, self.cfg = root, cfg

    def __call__(self, batch: Batch) -> pa.Table:
        rows = to_rows(batch)
        fs, base = open_root(self.root)
        name = part_name(rows)
        for table, table_rows in split_rows(rows, self.cfg.pixels).items():
            if table_rows:
                write_table(fs, f"{base}/{table}/{name}", to_table(table_rows, TABLES[table]))
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


def read_table(
    root: str, table: str, columns: list[str] | None = None, filters: Any = None
) -> pa.Table:
    """One table of a dataset root, with its declared schema (empty if none was written);
    `filters` (a pyarrow expression) is pushed down so unwanted rows are never loaded."""
    fs, files = table_files(root, table)
    schema = TABLES[table]
    if not files:
        empty = schema.empty_table()
        return empty.select(columns) if columns else empty
    dataset = pq.ParquetDataset(files, filesystem=fs, schema=schema, filters=filters)
    return dataset.read(columns=columns)


def iter_batches(
    root: str, table: str, columns: list[str], batch_size: int = 1024
) -> Iterator[pa.RecordBatch]:
    """One table of a dataset root as record batches, so a large table is never all in memory."""
    import pyarrow.dataset as pads

    fs, files = table_files(root, table)
    if files:
        dataset = pads.dataset(files, filesystem=fs, schema=TABLES[table], format="parquet")
        yield from dataset.to_batches(columns=columns, batch_size=batch_size)


def table_files(root: str, table: str) -> tuple[pafs.FileSystem, list[str]]:
    """The filesystem and the finished Parquet files of one table (temporary files skipped)."""
    fs, base = open_root(root)
    folder = f"{base}/{table}"
    if fs.get_file_info(folder).type == pafs.FileType.NotFound:
        return fs, []
    return fs, sorted(
        f.path
        for f in fs.get_file_info(pafs.FileSelector(folder))
        if f.path.endswith(".parquet") and not f.base_name.startswith(".")
    )
