"""Ray Train on a real local Ray: two CPU workers (gloo) stay in sync, checkpoints restore the
same model, a stopped run resumes, and checkpoints can live on S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
import torch

from vidray.config import ConfigError, load_config
from vidray.query import load_model
from vidray.sink import read_table
from vidray.testing.frames import write_frames_dataset
from vidray.testing.s3 import s3_server
from vidray.train.data import load_image
from vidray.train.model import ImageWordModel
from vidray.train.ray_train import check_train_config, train

pytestmark = pytest.mark.slow
TINY = ["train.widths=[8,16]", "train.embed_dim=32", "train.image_size=32", "train.batch_size=8"]


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("frames")
    write_frames_dataset(root, videos_per_word=3, frames_per_video=8)
    return root


def tiny(*overrides: str):  # type: ignore[no-untyped-def]
    return load_config(overrides=[*TINY, "train.index=false", *overrides]).train


@pytest.fixture(scope="module")
def trained(frames_root: Path, tmp_path_factory: pytest.TempPathFactory, local_ray) -> dict:  # type: ignore[no-untyped-def]
    model_dir = tmp_path_factory.mktemp("model")
    summary = train(str(frames_root), str(model_dir), tiny("train.epochs=3"))
    return {**summary, "dir": model_dir}


def test_two_workers_train_different_rows_and_end_with_identical_weights(trained: dict) -> None:
    assert trained["workers"] == 2 and trained["epochs_done"] == 3
    # Each rank trained on its own half of the frames (not all of them), every epoch...
    rows = trained["rows_per_rank"]
    assert len(rows) == 2 and rows[0] == rows[1] == trained["labelled_train_frames"] * 3 // 2
    # ...and yet both replicas hold the same weights: the gradients were all-reduced.
    digests = trained["replica_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]


def test_checkpoint_restores_the_same_predictions(trained: dict, frames_root: Path) -> None:
    model = load_model(trained["dir"])
    images = read_table(str(frames_root), "frames", ["image"]).column("image").to_pylist()[:6]
    before = model.predict(images, k=3)
    # The Ray checkpoint holds Lightning's checkpoint; rebuilt offline, it predicts the same.
    ckpt = torch.load(
        Path(trained["checkpoint"]) / "checkpoint.ckpt", map_location="cpu", weights_only=False
    )
    net = ImageWordModel(**ckpt["model_args"])
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    x = torch.from_numpy(np.stack([load_image(im, model.image_size) for im in images]))
    with torch.no_grad():
        probs = torch.sigmoid(net(x)[1]).numpy()
    for row, preds in zip(probs, before, strict=True):
        top = [model.vocab[j] for j in np.argsort(-row)[:3]]
        assert top == [w for w, _ in preds]
        np.testing.assert_allclose(
            [row[model.vocab.index(w)] for w, _ in preds], [p for _, p in preds], rtol=1e-5
        )
    # Loading twice gives the same answers: nothing random at inference.
    assert load_model(trained["dir"]).predict(images, k=3) == before


def test_a_run_resumes_from_its_last_checkpoint(
    frames_root: Path, tmp_path: Path, local_ray
) -> None:  # type: ignore[no-untyped-def]
    first = train(str(frames_root), str(tmp_path), tiny("train.epochs=2", "train.num_workers=1"))
    split = (tmp_path / "split.json").read_text()
    with pytest.raises(ValueError, match="--resume"):
        train(str(frames_root), str(tmp_path), tiny("train.epochs=2", "train.num_workers=1"))
    again = train(
        str(frames_root), str(tmp_path), tiny("train.epochs=3", "train.num_workers=1"), resume=True
    )
    assert (tmp_path / "split.json").read_text() == split  # the same videos, the same vocabulary
    # Only the third epoch ran: the first two came from the checkpoint.
    assert again["epochs_done"] == 3 and again["rows_per_rank"] == [first["labelled_train_frames"]]
    assert again["replica_digests"] != first["replica_digests"]


def test_bad_settings_fail_before_training() -> None:
    for bad, match in [
        ("train.loss=hinge", "bce or asl"),
        ("train.loggers=[csv, nope]", "choose from"),
        ("train.loggers=[wandb]", "wandb_project"),
        ("train.precision=8", "precision"),
    ]:
        with pytest.raises(ConfigError, match=match):
            check_train_config(tiny(bad))


def test_checkpoints_on_s3(frames_root: Path, tmp_path: Path) -> None:
    with s3_server(buckets=("ckpt",)) as env:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "vidray.cli",
                "train",
                str(frames_root),
                "--model-dir",
                str(tmp_path / "model"),
                *TINY,
                "train.epochs=2",
                "train.num_workers=1",
                "train.checkpoint_dir=s3://ckpt/runs/tiny",
            ],
            env={**os.environ, **env, "RAY_ADDRESS": "", "RAY_DEDUP_LOGS": "0"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        fs = pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"])
        found = fs.get_file_info(pafs.FileSelector("ckpt/runs/tiny/train", recursive=True))
        ckpts = [f.path for f in found if f.path.endswith("checkpoint.ckpt")]
        assert ckpts, [f.path for f in found]
    summary = json.loads((tmp_path / "model" / "train_summary.json").read_text())
    assert summary["checkpoint"].startswith("ckpt/runs/tiny/train/checkpoint_")
    assert load_model(tmp_path / "model").predict([np.zeros((40, 40, 3), np.uint8)], k=2)
