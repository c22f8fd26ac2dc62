"""Shared fixtures: generated narrated videos (espeak-ng + PyAV), broken media, a local Ray."""

from __future__ import annotations

import os
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
