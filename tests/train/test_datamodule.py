from pathlib import Path

import numpy as np
import torch

from vidray.testing.frames import write_frames_dataset
from vidray.train.data import split_videos
from vidray.train.datamodule import FrameDataModule, shuffled_batches


def test_shuffled_batches_keep_every_row_once() -> None:
    chunks = [{"image": np.arange(i, i + 5)} for i in range(0, 20, 5)]
    out = list(shuffled_batches(iter(chunks), 4, 8, np.random.default_rng(0)))
    rows = np.concatenate([b["image"] for b in out])
    assert sorted(rows.tolist()) == list(range(20)) and rows.tolist() != list(range(20))
    assert [len(b["image"]) for b in out] == [4] * 5
    ordered = list(shuffled_batches(iter(chunks), 6, 0, None))
    assert np.concatenate([b["image"] for b in ordered]).tolist() == list(range(20))


def test_datamodule_streams_each_split_from_parquet(tmp_path: Path) -> None:
    ids = write_frames_dataset(tmp_path / "ds", videos_per_word=2, frames_per_video=5)
    train, held = split_videos(ids, 0.25, 0)
    dm = FrameDataModule(
        str(tmp_path / "ds"),
        ["tomato", "lemon"],
        {"train": train, "heldout": held},
        image_size=16,
        batch_size=4,
        neighbours=1,
        window_s=3.0,
    )
    batches = list(dm.train_dataloader())
    assert all(b["image"].dtype == torch.uint8 and b["bags"].shape[1:] == (2, 16) for b in batches)
    # Only frames of training videos with a vocabulary label: tomato and lemon videos.
    expected = sum(5 for v in train if v.split("-")[0] in ("tomato", "lemon"))
    assert sum(len(b["image"]) for b in batches) == expected
    held_rows = sum(len(b["target"]) for b in dm.val_dataloader())
    assert held_rows == sum(5 for v in held if v.split("-")[0] in ("tomato", "lemon"))
