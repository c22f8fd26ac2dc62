"""Output to `s3://` URLs on an S3-compatible server on loopback (moto): writing, reading back,
resuming a crashed build, endpoints from config or environment, failing fast, no leaked secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest

from tests.test_sink import BAD, video
from vidray.cli import main
from vidray.config import OutputConfig, load_config
from vidray.pipeline import run_build
from vidray.schema import frame_id
from vidray.sink import ParquetSink, check_output, part_name, prepare_output, read_table
from vidray.storage import list_files, s3_hint
from vidray.testing.s3 import free_port, s3_server
from vidray.testing.sample import make_samples

SECRET = f"vidray-secret-{uuid.uuid4().hex}"  # moto takes any key; this one must never leak
# Columns that do not depend on recognizer confidences (see test_build_to_s3_then_resume).
FRAME_COLUMNS = ["frame_id", "video_id", "source", "url", "frame_ts", "span_start", "span_end"]
FRAME_COLUMNS += ["merged", "image", "width", "height", "phash", "labels", "label_scores", "words"]
VIDEO_COLUMNS = ["video_id", "source", "duration_s", "width", "height", "fps", "has_audio"]
VIDEO_COLUMNS += ["speech_ratio", "frames_sampled", "frames_kept", "frames_dropped", "language"]
VIDEO_COLUMNS += ["transcript", "keywords", "n_labels"]


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    with s3_server(buckets=("vidray",)) as env, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        yield {**env, "AWS_SECRET_ACCESS_KEY": SECRET}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 15-second narrated videos."""
    out = tmp_path_factory.mktemp("clips")
    make_samples(out, videos=2, minutes=0.25, seed=3, subjects=3)
    return out


def bucket(s3: dict[str, str]) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=s3["AWS_ENDPOINT_URL"])


def test_sink_writes_a_partitioned_s3_root_and_resume_cleans_it(s3: dict[str, str]) -> None:
    root, cfg = "s3://vidray/unit", OutputConfig(partition_by=["language"])
    check_output(root, cfg)
    ParquetSink(root, cfg)([video(1, language="en"), BAD])
    ParquetSink(root, cfg)([video(5, language="fr")])
    fs = bucket(s3)
    fs.delete_file(f"vidray/unit/_parts/{part_name([video(5)]).replace('.parquet', '.json')}")
    with fs.open_output_stream("vidray/unit/frames/language=en/.tmp-half") as f:
        f.write(b"half")
    videos = read_table(root, "videos").to_pylist()
    assert [(v["video_id"], v["language"]) for v in videos] == [("file:1", "en")]
    frames = pads.dataset("vidray/unit/frames", filesystem=fs, partitioning="hive").to_table()
    assert frames.num_rows == 2  # other readers still see the uncommitted part until resume
    assert prepare_output(root, cfg, resume=True) == {"file:1", "file:2"}
    left = sorted(p.removeprefix("vidray/unit/") for p in list_files(fs, "vidray/unit"))
    name = part_name([video(1), BAD]).removesuffix(".parquet")
    assert left == [
        f"_parts/{name}.json",
        f"errors/{name}.parquet",
        f"frames/language=en/{name}.parquet",
        f"videos/language=en/{name}.parquet",
    ]


def test_endpoint_from_config_wins_over_the_environment(
    s3: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    cfg = OutputConfig(endpoint_url=s3["AWS_ENDPOINT_URL"])
    root = "s3://vidray/config-endpoint"
    check_output(root, cfg)
    ParquetSink(root, cfg)([video(1)])
    assert read_table(root, "frames", endpoint_url=cfg.endpoint_url).num_rows == 1
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert read_table(root, "videos", endpoint_url=cfg.endpoint_url).num_rows == 1


def test_missing_bucket_fails_at_once(
    s3: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded: the job stops before any work")
    start = time.monotonic()
    assert main(["build", str(clip), "--output", "s3://no-such-bucket/x"]) == 2
    err = capsys.readouterr().err
    assert "bucket 'no-such-bucket' does not exist" in err and "create the bucket" in err
    assert time.monotonic() - start < 15 and SECRET not in err


def test_unreachable_endpoint_fails_at_once(s3: dict[str, str]) -> None:
    cfg = OutputConfig(endpoint_url=f"http://127.0.0.1:{free_port()}")
    start = time.monotonic()
    with pytest.raises(OSError, match=r"cannot be reached: fix output.endpoint_url"):
        check_output("s3://vidray/x", cfg)
    assert time.monotonic() - start < 15


def test_denied_access_points_at_the_credentials() -> None:
    hint = s3_hint("AWS Error ACCESS_DENIED during PutObject operation", "AWS S3")
    assert "AWS credentials" in hint


def build(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], str]:
    """`vidray build` in its own process, whose local Ray inherits `env` (a Ray started by this
    test session would not: its workers keep the environment they started with)."""
    env = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, "-m", "vidray.cli", "-v", "build", *args, "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("{"))
    return json.loads(line), done.stdout + done.stderr


def rows(root: str, table: str, columns: list[str]) -> list[dict[str, Any]]:
    found = read_table(root, table, columns).to_pylist()
    return sorted(found, key=lambda r: (r["video_id"], r.get("frame_ts") or 0.0))


@pytest.fixture(scope="module")
def uninterrupted(clips: Path, tmp_path_factory: pytest.TempPathFactory, local_ray: Any) -> Path:
    """The reference: the same build in one go, on this session's local Ray, to a local folder."""
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    result = run_build([str(clips)], str(out), load_config().build)
    assert (result.videos, result.errors) == (2, 0)
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_build_to_s3_then_resume_after_a_crash(
    s3: dict[str, str], clips: Path, uninterrupted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = str(uninterrupted)
    frames = rows(reference, "frames", FRAME_COLUMNS)
    videos = rows(reference, "videos", VIDEO_COLUMNS)
    assert len(videos) == 2 and frames
    assert all(f["frame_id"] == frame_id(f["video_id"], f["frame_ts"]) for f in frames)
    assert all(f["image"][:2] == b"\xff\xd8" for f in frames)

    # A crashed run on S3: one batch committed, the other's files written but never
    # committed, and a half-written temporary file.
    fs = bucket(s3)
    pafs.copy_files(reference, "vidray/crash", pafs.LocalFileSystem(), fs)
    fs.delete_file(sorted(list_files(fs, "vidray/crash/_parts"))[0])
    with fs.open_output_stream("vidray/crash/frames/.tmp-half") as f:
        f.write(b"half")
    assert len(rows("s3://vidray/crash", "videos", ["video_id"])) == 1

    # Without --resume the non-empty root is refused, before Ray starts.
    assert main(["build", str(clips), "--output", "s3://vidray/crash"]) == 2
    assert "--resume" in capsys.readouterr().err

    # Resumed by a real build on its own local Ray, the endpoint given only by the config.
    endpoint = s3["AWS_ENDPOINT_URL"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    args = [str(clips), "--output", "s3://vidray/crash", "--resume"]
    result, log = build([*args, f"build.output.endpoint_url={endpoint}"], env)
    assert (result["videos"], result["errors"], result["skipped"]) == (1, 0, 1)
    # Exactly the rows of the uninterrupted run, transcripts and labels included, none twice.
    assert rows("s3://vidray/crash", "videos", VIDEO_COLUMNS) == videos
    assert rows("s3://vidray/crash", "frames", FRAME_COLUMNS) == frames
    by_pyarrow = pads.dataset("vidray/crash/frames", filesystem=fs, format="parquet")
    assert by_pyarrow.count_rows() == len(frames)
    left = sorted(p.removeprefix("vidray/crash/") for p in list_files(fs, "vidray/crash"))
    assert left == sorted(str(p.relative_to(reference)) for p in Path(reference).rglob("*.*"))
    with fs.open_input_stream("vidray/crash/README.md") as f:
        assert "| videos | 2 |" in f.read().decode()

    for path in list_files(fs, "vidray"):
        with fs.open_input_stream(path) as f:
            assert SECRET.encode() not in f.read(), path
    assert SECRET not in log
