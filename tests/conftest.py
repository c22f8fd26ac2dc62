"""Shared fixtures: generated narrated videos (espeak-ng + PyAV), broken media, a local Ray."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vidray.testing.media import corrupt_copy, strip_audio
from vidray.testing.sample import load_truth, make_samples

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 40-second narrated videos with ground truth."""
    out = tmp_path_factory.mktemp("samples")
    make_samples(out, videos=2, minutes=40 / 60, seed=7, subjects=4)
    return out


@pytest.fixture(scope="session")
def sample_video(samples: Path) -> Path:
    return samples / "sample_000.mp4"


@pytest.fixture(scope="session")
def sample_truth(sample_video: Path):  # type: ignore[no-untyped-def]
    return load_truth(sample_video.with_suffix(".json"))


@pytest.fixture(scope="session")
def broken(tmp_path_factory: pytest.TempPathFactory, sample_video: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("broken")
    return {
        "no_audio": strip_audio(sample_video, out / "no_audio.mp4"),
        "corrupt": corrupt_copy(sample_video, out / "corrupt.mp4"),
    }


@pytest.fixture(scope="session")
def local_ray():  # type: ignore[no-untyped-def]
    """A real local Ray with two CPUs, shut down when the session ends."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: one torch thread is many times faster than several on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    """A model directory trained in seconds on coloured frames (the last video held out)."""
    from vidray.testing.tiny_model import train_model_dir, write_dataset

    base = tmp_path_factory.mktemp("tiny_model")
    ids = write_dataset(base / "data", videos=4)
    return train_model_dir(base / "model", base / "data", heldout=ids[-1:], steps=40)
