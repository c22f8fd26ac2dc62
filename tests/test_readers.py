"""A built dataset opens unchanged in pandas, DuckDB, Hugging Face `datasets` and Ray Data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vidray.config import load_config
from vidray.dataset import FrameImage, open_dataset
from vidray.pipeline import run_build
from vidray.schema import DUPLICATES_SCHEMA, FRAMES_SCHEMA, frame_id, to_table
from vidray.sink import open_root, read_table, write_table
from vidray.testing.vision_models import tiny_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def root(samples: Path, tmp_path_factory: pytest.TempPathFactory, local_ray) -> Path:  # type: ignore[no-untyped-def]
    """Two narrated videos built with frame embeddings (a tiny random CLIP image tower)."""
    work = tmp_path_factory.mktemp("readers")
    cfg = load_config(
        overrides=[
            f"build.asr.pocketsphinx.vocabulary={samples / 'vocabulary.txt'}",
            "build.embed.enabled=true",
            f"build.embed.model={tiny_clip(work / 'clip')}",
        ]
    )
    videos = [str(samples / "sample_000.mp4"), str(samples / "sample_001.mp4")]
    result = run_build(videos, str(work / "dataset"), cfg.build)
    assert result.videos == 2
    return work / "dataset"


def _frames(root: Path) -> list[dict]:
    return read_table(
        str(root), "frames", ["frame_id", "video_id", "frame_ts", "labels"]
    ).to_pylist()


def test_pandas(root: Path) -> None:
    import pandas as pd

    frames = pd.read_parquet(root / "frames")
    videos = pd.read_parquet(root / "videos")
    assert len(frames) == len(_frames(root)) and len(videos) == 2
    assert set(frames.video_id) == set(videos.video_id)
    assert frames.image.map(lambda b: b[:2] == b"\xff\xd8").all()  # JPEG bytes


def test_duckdb(root: Path) -> None:
    import duckdb

    con = duckdb.connect()
    n, labelled = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE len(labels) > 0) FROM '{root}/frames/*.parquet'"
    ).fetchone()  # type: ignore[misc]
    assert n == len(_frames(root)) and labelled > 0
    (words,) = con.execute(f"SELECT sum(len(transcript)) FROM '{root}/videos/*.parquet'").fetchone()  # type: ignore[misc]
    assert words > 20


def test_hugging_face_datasets(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    ds = datasets.load_dataset(
        "parquet",
        data_files={"train": f"{root}/frames/*.parquet"},
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    assert len(ds) == len(_frames(root))
    assert ds.features["embedding"].feature.dtype == "float16"
    assert sorted(ds["frame_id"]) == sorted(f["frame_id"] for f in _frames(root))


def test_ray_read_parquet(root: Path) -> None:
    import ray.data

    ds = ray.data.read_parquet(str(root / "frames"))
    assert ds.count() == len(_frames(root))
    assert set(ds.schema().names) == set(FRAMES_SCHEMA.names)


def test_open_dataset_decodes_images_on_demand(root: Path) -> None:
    frame = open_dataset(str(root), format="pandas", columns=["frame_id", "image", "labels"])
    assert isinstance(frame.image[0], FrameImage)
    pixels = np.asarray(frame.image[0])
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    ds = open_dataset(str(root), columns=["frame_id", "image"])
    batch = ds.take_batch(3)
    assert batch["image"].shape[1:] == pixels.shape and batch["image"].dtype == np.uint8
    videos = open_dataset(str(root), table="videos", format="pandas")
    assert len(videos) == 2


def test_unique_view_leaves_out_dropped_frames(root: Path, tmp_path: Path) -> None:
    frames = _frames(root)
    dropped = {frames[1]["frame_id"], frames[-1]["frame_id"]}
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    fs, base = open_root(str(copy))
    rows = [
        {"kept_id": frames[0]["frame_id"], "dropped_id": d, "similarity": 0.99, "cluster": 0}
        for d in dropped
    ]
    write_table(fs, f"{base}/duplicates/part-0.parquet", to_table(rows, DUPLICATES_SCHEMA))
    pandas_ids = set(
        open_dataset(str(copy), format="pandas", columns=["frame_id"], unique=True).frame_id
    )
    ray_ids = {
        r["frame_id"] for r in open_dataset(str(copy), columns=["frame_id"], unique=True).take_all()
    }
    everything = {f["frame_id"] for f in frames}
    assert pandas_ids == ray_ids == everything - dropped


def test_frame_ids_are_unique_and_derived(root: Path) -> None:
    frames = _frames(root)
    assert len({f["frame_id"] for f in frames}) == len(frames)
    assert all(f["frame_id"] == frame_id(f["video_id"], f["frame_ts"]) for f in frames)
    meta = pq.read_schema(next((root / "frames").glob("*.parquet")))
    assert meta.field("embedding").type == FRAMES_SCHEMA.field("embedding").type


def test_vidray_dedup_lists_duplicates_and_leaves_frames_alone(root: Path, tmp_path: Path) -> None:
    from vidray.cli import main

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    before = {f.name: f.read_bytes() for f in (copy / "frames").rglob("*.parquet")}
    assert main(["dedup", str(copy), "dedup.eps=0.2"]) == 0
    assert before == {f.name: f.read_bytes() for f in (copy / "frames").rglob("*.parquet")}
    dropped = set(
        read_table(str(copy), "duplicates", ["dropped_id"]).column("dropped_id").to_pylist()
    )
    view = set(open_dataset(str(copy), format="pandas", columns=["frame_id"], unique=True).frame_id)
    assert view == {f["frame_id"] for f in _frames(root)} - dropped
    embeddings = read_table(str(copy), "frames", ["embedding"]).column("embedding").to_pylist()
    assert all(abs(np.linalg.norm(np.asarray(e, np.float32)) - 1) < 1e-2 for e in embeddings)
