"""Open a dataset written by `vidray build` as a Ray Dataset or a pandas frame.

The tables are plain Parquet, so pandas, DuckDB, Hugging Face `datasets` and
`ray.data.read_parquet` read them as they are; `open_dataset` adds what vidray knows: only
committed files, the `vidray dedup` view without cross-video duplicates, and images decoded
when they are first looked at rather than when the table is read.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from vidray.semdedup import IdSet, dropped_ids, read_unique_frames
from vidray.sink import read_table, table_files

if TYPE_CHECKING:
    import pandas as pd
    import ray.data
    from PIL import Image


class FrameImage:
    """The JPEG bytes of one frame, decoded on first use: `.to_pil()`, `np.asarray(img)`."""

    __slots__ = ("_array", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._array: np.ndarray | None = None

    def to_pil(self) -> Image.Image:
        from PIL import Image

        img = Image.open(io.BytesIO(self.data))
        img.load()
        return img.convert("RGB")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self._array is None:
            self._array = np.asarray(self.to_pil())
        return self._array if dtype is None else self._array.astype(dtype)

    def _repr_jpeg_(self) -> bytes:  # shown as a picture in notebooks
        return self.data

    def __repr__(self) -> str:
        return f"<FrameImage JPEG {len(self.data)} bytes>"


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes → an H×W×3 uint8 array."""
    return np.asarray(FrameImage(data))


def open_dataset(
    root: str,
    *,
    table: str = "frames",
    format: Literal["ray", "pandas"] = "ray",
    columns: list[str] | None = None,
    unique: bool = False,
    decode_images: bool = True,
) -> ray.data.Dataset | pd.DataFrame:
    """One table of the dataset at `root` (a folder or `s3://bucket/prefix`).

    `format="ray"` gives a lazy Ray Dataset, `"pandas"` a DataFrame. `unique=True` leaves out
    the frames `vidray dedup ROOT` marked as duplicates of another video's frame. With
    `decode_images`, the `image` column is decoded only when used: in Ray as H×W×3 uint8
    arrays while the dataset streams, in pandas as `FrameImage` objects.
    """
    if unique and table != "frames":
        raise ValueError("unique=True applies to the frames table only")
    wanted = (
        None
        if columns is None
        else list(dict.fromkeys([*columns, *(["frame_id"] if unique else [])]))
    )
    if format == "ray":
        drop = IdSet(dropped_ids(root)) if unique else None
        return _ray_dataset(root, table, wanted, columns, drop, decode_images)
    if format == "pandas":
        data = read_unique_frames(root, wanted) if unique else read_table(root, table, wanted)
        if columns is not None:
            data = data.select(columns)
        frame = data.to_pandas()
        if decode_images and "image" in frame.columns:
            frame["image"] = [FrameImage(b) if b is not None else None for b in frame["image"]]
        return frame
    raise ValueError(f"format must be 'ray' or 'pandas', not {format!r}")


def _ray_dataset(
    root: str,
    table: str,
    wanted: list[str] | None,
    columns: list[str] | None,
    drop: IdSet | None,
    decode_images: bool,
) -> ray.data.Dataset:
    import ray.data

    fs, files = table_files(root, table)
    if not files:
        from vidray.schema import TABLES

        empty = TABLES[table].empty_table()
        return ray.data.from_arrow(empty.select(columns) if columns else empty)
    ds = ray.data.read_parquet(files, filesystem=fs)
    if wanted is not None:  # pushed down into the read by Ray Data's optimizer
        ds = ds.select_columns(wanted)
    if drop is not None and len(drop.sorted):
        ds = ds.map_batches(_keep_frames, fn_args=(drop,), batch_format="pyarrow")  # type: ignore[arg-type]
    if columns is not None and wanted != columns:
        ds = ds.select_columns(columns)
    if decode_images and (columns is None or "image" in columns):
        ds = ds.map_batches(_decode_images, batch_format="pyarrow")
    return ds


def _keep_frames(batch: pa.Table, drop: IdSet) -> pa.Table:
    return batch.filter(pa.array(~drop.contains(batch.column("frame_id").combine_chunks())))


def _decode_images(batch: pa.Table) -> pa.Table:
    """The `image` column as H×W×3 uint8 tensors (features-only tables stay as they are)."""
    images = batch.column("image")
    if images.null_count == len(images):
        return batch
    from ray.data.extensions import ArrowTensorArray

    arrays = [decode_jpeg(b) for b in images.to_pylist()]
    i = batch.column_names.index("image")
    return batch.set_column(i, "image", ArrowTensorArray.from_numpy(arrays))
