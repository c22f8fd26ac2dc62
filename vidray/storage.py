"""Where a dataset lives: a local folder or S3 (or an S3-compatible store). The one place a
filesystem is built, the output is probed, and files are written atomically."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vidray.config import OutputConfig, parse_size

TMP_PREFIX = ".tmp-"
PROBE_PREFIX = ".vidray-write-check-"
DEFAULT_ROW_GROUP = parse_size(OutputConfig().row_group_size)


def s3_endpoint(endpoint_url: str | None = None) -> str | None:
    """The config's endpoint, else the AWS SDK's standard variables (pyarrow's S3FileSystem
    reads neither AWS_ENDPOINT_URL_S3 nor AWS_ENDPOINT_URL itself)."""
    return (
        endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


@lru_cache(maxsize=64)
def bucket_region(bucket: str) -> str | None:
    """The region of an AWS bucket (as `FileSystem.from_uri` finds it), or None if unknown."""
    try:
        return str(pafs.resolve_s3_region(bucket))
    except (OSError, ValueError):
        return None


def open_root(
    root: str, endpoint_url: str | None = None, region: str | None = None
) -> tuple[pafs.FileSystem, str]:
    """A local folder or an `s3://bucket/prefix` → (filesystem, path). S3 credentials come only
    from the AWS chain (environment, profile, instance role); the endpoint from `endpoint_url`,
    else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; the region from `region`, else the chain's."""
    if root[:5].lower() == "s3://":
        path = root[5:].strip("/")
        if "@" in path.split("/", 1)[0] or "?" in path:
            # Credentials belong to the AWS chain; one in the URL would end up in messages.
            raise ValueError(
                f"{redact_url(root)}: put no credentials or query in an s3:// URL; they come "
                "from the AWS chain (environment, profile, instance role)"
            )
        endpoint = s3_endpoint(endpoint_url)
        if region is None and endpoint is None:
            region = bucket_region(path.split("/", 1)[0])
        return pafs.S3FileSystem(endpoint_override=endpoint, region=region), path
    try:
        fs, path = pafs.FileSystem.from_uri(root)
    except (pa.ArrowInvalid, ValueError):
        fs, path = pafs.LocalFileSystem(), os.path.abspath(root)
    return fs, path.rstrip("/")


def redact_url(text: str) -> str:
    """A URL without its secrets: user:password@ and query values become `***`."""
    if "://" not in text:  # e.g. a proxy given as user:password@host:port
        return re.sub(r"^[^/\s@]+@", "***@", text)
    try:
        parts = urlsplit(text)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(
        f"{item.split('=', 1)[0]}=***" if "=" in item else item
        for item in parts.query.split("&")
        if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def check_writable(root: str, endpoint_url: str | None = None, region: str | None = None) -> None:
    """Fail at once if `root` cannot be written, saying what to fix (bucket, endpoint or
    credentials on S3)."""
    fs, path = open_root(root, endpoint_url, region)
    s3 = fs.type_name == "s3"
    endpoint = s3_endpoint(endpoint_url)
    where = redact_url(endpoint) if endpoint else "AWS S3"
    try:
        if s3:
            bucket = path.split("/", 1)[0]
            if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                raise FileNotFoundError(f"bucket {bucket!r} does not exist at {where}")
        else:
            fs.create_dir(path, recursive=True)
        probe = f"{path}/{PROBE_PREFIX}{uuid.uuid4().hex}"
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except OSError as exc:
        hint = s3_hint(str(exc), where) if s3 else ""
        raise OSError(f"cannot write to output {root!r}: {exc}{hint}") from exc


def s3_hint(message: str, where: str) -> str:
    """What to fix, from the AWS error in `message`."""
    text = message.lower()
    if "does not exist" in text or "no_such_bucket" in text or "not found" in text:
        return (
            "; create the bucket, or fix the bucket name in --output and the endpoint "
            "(output.endpoint_url or AWS_ENDPOINT_URL) if it lives on another store"
        )
    if "network" in text or "connect" in text or "resolve" in text or "timeout" in text:
        return (
            f"; the S3 endpoint {where} cannot be reached: fix output.endpoint_url "
            "(or AWS_ENDPOINT_URL) or the network"
        )
    if any(w in text for w in ("denied", "403", "credential", "signature", "accesskey", "token")):
        return (
            "; check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE "
            "or the instance role) and the bucket's permissions"
        )
    return (
        "; check the bucket, the endpoint (output.endpoint_url or AWS_ENDPOINT_URL) and the "
        "AWS credentials"
    )


def row_sizes(table: pa.Table) -> np.ndarray:
    """Bytes per row, about: binary and string values exactly, everything else averaged."""
    sizes = np.zeros(table.num_rows)
    rest = 0
    for column in table.columns:
        kind = column.type
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_string(kind):
            sizes += pc.fill_null(pc.binary_length(column), 0).to_numpy() + 4
        else:
            rest += column.nbytes
    return sizes + rest / max(table.num_rows, 1)


def byte_chunks(table: pa.Table, limit: int) -> list[tuple[int, int]]:
    """(offset, length) of consecutive slices of at most `limit` bytes (at least one row each)."""
    chunks, start, total = [], 0, 0.0
    for i, size in enumerate(row_sizes(table)):
        if i > start and total + size > limit:
            chunks.append((start, i - start))
            start, total = i, 0.0
        total += size
    if table.num_rows > start:
        chunks.append((start, table.num_rows - start))
    return chunks


def write_table(
    fs: pafs.FileSystem, path: str, table: pa.Table, row_group_bytes: int | None = None
) -> None:
    """Write a zstd Parquet file with row groups of about `row_group_bytes` (default 64 MiB)
    under a temporary name, then move it into place: no half-written file is ever visible."""
    groups = byte_chunks(table, row_group_bytes or DEFAULT_ROW_GROUP)

    def write(out: Any) -> None:
        with pq.ParquetWriter(out, table.schema, compression="zstd") as writer:
            for offset, length in groups:
                writer.write_table(table.slice(offset, length), row_group_size=length)

    put(fs, path, write)


def put_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write a small file atomically (temporary name, then move)."""
    put(fs, path, lambda out: out.write(data))


def put(fs: pafs.FileSystem, path: str, write: Callable[[Any], Any]) -> None:
    """Call `write(stream)` on a hidden temporary file, then move it to `path` (on S3 a
    server-side copy, so a file may be up to 5 GB)."""
    parent = path.rsplit("/", 1)[0]
    if fs.type_name != "s3":  # object stores need no folders (pyarrow would write markers)
        fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/{TMP_PREFIX}{uuid.uuid4().hex}"
    try:
        with fs.open_output_stream(tmp) as out:
            write(out)
        fs.move(tmp, path)  # a rename locally; copy + delete on S3
    except BaseException:
        with suppress(OSError):
            fs.delete_file(tmp)
        raise


def list_files(fs: pafs.FileSystem, folder: str) -> list[str]:
    """Paths of every file under `folder` (recursively; none if it does not exist)."""
    selector = pafs.FileSelector(folder, recursive=True, allow_not_found=True)
    return [i.path for i in fs.get_file_info(selector) if i.type == pafs.FileType.File]


def delete_files(fs: pafs.FileSystem, paths: Iterable[str]) -> None:
    """Delete files, several at a time (object stores answer slowly but in parallel)."""

    def delete(path: str) -> None:
        with suppress(FileNotFoundError):
            fs.delete_file(path)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(delete, paths))
