"""A Lightning DataModule over a dataset's `frames/` Parquet, for training without Ray.

Files stream record batch by record batch (local or `s3://`), are turned into model-ready
arrays by the same `prepare_batch` Ray Train uses, and pass through a shuffle buffer. Each
DDP rank and each DataLoader worker reads its own share of the files, so a dataset larger
than memory trains as it is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vidray.sink import table_files
from vidray.train.data import prepare_batch

COLUMNS = ["video_id", "frame_ts", "image", "labels", "label_scores"]
Prepare = Callable[[dict[str, Any]], dict[str, np.ndarray]]


def shuffled_batches(
    chunks: Iterator[dict[str, np.ndarray]],
    batch_size: int,
    buffer_rows: int,
    rng: np.random.Generator | None,
) -> Iterator[dict[str, np.ndarray]]:
    """Prepared chunks → batches of `batch_size` rows, drawn at random from a buffer of about
    `buffer_rows` rows (in order when `rng` is None); the last batch may be smaller."""
    buffer: dict[str, np.ndarray] | None = None
    for chunk in chunks:
        buffer = (
            chunk
            if buffer is None
            else {k: np.concatenate([buffer[k], v]) for k, v in chunk.items()}
        )
        n = len(buffer["image"])
        while n >= max(buffer_rows, batch_size):
            order = rng.permutation(n) if rng is not None else np.arange(n)
            take, rest = order[:batch_size], np.sort(order[batch_size:])
            yield {k: v[take] for k, v in buffer.items()}
            buffer = {k: v[rest] for k, v in buffer.items()}
            n -= batch_size
    if buffer is not None:
        n = len(buffer["image"])
        order = rng.permutation(n) if rng is not None else np.arange(n)
        for i in range(0, n, batch_size):
            yield {k: v[order[i : i + batch_size]] for k, v in buffer.items()}


class FrameStream(IterableDataset):
    """The frames of a dataset as batches of tensors; this process's share of the files."""

    def __init__(
        self,
        root: str,
        prepare: Prepare,
        batch_size: int,
        shuffle_rows: int = 0,
        seed: int = 0,
        read_rows: int = 256,
    ) -> None:
        self.root, self.prepare = root, prepare
        self.batch_size, self.shuffle_rows, self.seed = batch_size, shuffle_rows, seed
        self.read_rows = read_rows
        self.rank, self.world_size, self.epoch = 0, 1, 0

    def my_files(self) -> tuple[Any, list[str]]:
        fs, files = table_files(self.root, "frames")
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        shard, shards = self.rank * workers + worker, self.world_size * workers
        return fs, files[shard::shards]

    def chunks(self) -> Iterator[dict[str, np.ndarray]]:
        import pyarrow.parquet as pq

        fs, files = self.my_files()
        for path in files:
            with fs.open_input_file(path) as f:
                for rb in pq.ParquetFile(f).iter_batches(self.read_rows, columns=COLUMNS):
                    chunk = self.prepare(rb.to_pydict())
                    if len(chunk["image"]):
                        yield chunk

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rng = (
            np.random.default_rng([self.seed, self.epoch, self.rank]) if self.shuffle_rows else None
        )
        self.epoch += 1
        for batch in shuffled_batches(self.chunks(), self.batch_size, self.shuffle_rows, rng):
            yield {k: torch.from_numpy(v) for k, v in batch.items()}


class FrameDataModule(pl.LightningDataModule):
    """Training and held-out frames of one dataset root, split by video."""

    def __init__(
        self,
        root: str,
        vocab: list[str],
        split: dict[str, list[str]],
        image_size: int,
        batch_size: int,
        neighbours: int = 0,
        window_s: float = 0.0,
        bag_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root, self.split, self.batch_size = root, split, batch_size
        self.num_workers, self.seed = num_workers, seed
        self.prepare = functools.partial(
            prepare_batch,
            vocab=vocab,
            image_size=image_size,
            neighbours=neighbours,
            window_s=window_s,
            bag_size=bag_size,
        )

    def _loader(self, part: str, shuffle: bool) -> DataLoader:
        stream = FrameStream(
            self.root,
            functools.partial(self.prepare, video_ids=self.split[part]),
            self.batch_size,
            shuffle_rows=4 * self.batch_size if shuffle else 0,
            seed=self.seed,
        )
        if self.trainer is not None:
            stream.rank, stream.world_size = self.trainer.global_rank, self.trainer.world_size
        return DataLoader(
            stream,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("heldout", shuffle=False)
