"""The build as a Ray job on a real two-node cluster (`ray start --head` plus a second node on
this machine, jobs sent with `ray job submit`), and the faults a cluster has: a node lost
mid-job, a job stopped part-way and resumed, a stage that raises and a worker that dies."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from vidray.sink import read_table
from vidray.testing.raycluster import LocalCluster
from vidray.testing.sample import make_samples

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[1]
VIDEOS = 5


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cluster_videos")
    make_samples(out, videos=VIDEOS, minutes=0.4, seed=11, subjects=4)
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A head with 2 CPUs (enough to finish alone) and a worker node with 2 CPUs."""
    with LocalCluster(tmp_path_factory.mktemp("ray"), head_cpus=2) as c:
        c.add_node(2)
        yield c


def build_args(videos: Path, out: Path, *extra: str) -> list[str]:
    return [
        str(videos),
        "--output",
        str(out),
        f"asr.pocketsphinx.vocabulary={videos}/vocabulary.txt",
        *extra,
    ]


def submit(
    cluster: LocalCluster,
    job_id: str,
    entry: list[str],
    working_dir: Path = REPO,
    wait: bool = True,
) -> str:
    """`ray job submit`; with `wait`, the job's logs once it has ended (asserting success)."""
    args = ["job", "submit", f"--submission-id={job_id}", f"--working-dir={working_dir}"]
    result = cluster.ray(
        *args, *([] if wait else ["--no-wait"]), "--", "python", *entry, timeout=600
    )
    logs = result.stdout + result.stderr
    assert result.returncode == 0, logs[-4000:]
    if wait:
        assert cluster.job_status(job_id) == "SUCCEEDED", logs[-4000:]
    return logs


def job_file(tmp_path: Path, name: str, text: str) -> Path:
    """A job script in its own folder, sent as the job's working directory."""
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / name).write_text(text)
    return folder


def committed(out: Path) -> int:
    """Videos in the batches committed so far (each manifest lists its videos)."""
    manifests = (out / "_parts").glob("part-*.json")
    return sum(len(json.loads(m.read_text())["video_ids"]) for m in manifests)


def wait_for(ready: Any, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def contents(out: Path) -> dict[str, list[Any]]:
    """What a build wrote, in a stable order: frames with their labels and words, videos with
    their transcripts, errors."""
    frames = read_table(str(out), "frames", ["frame_id", "video_id", "labels", "words"])
    videos = read_table(str(out), "videos", ["video_id", "transcript", "keywords"])
    errors = read_table(str(out), "errors", ["video_id", "stage", "reason", "message"])
    return {
        "frames": sorted(frames.to_pylist(), key=lambda r: r["frame_id"]),
        "videos": sorted(videos.to_pylist(), key=lambda r: r["video_id"]),
        "errors": sorted(errors.to_pylist(), key=lambda r: r["video_id"]),
    }


@pytest.fixture(scope="module")
def reference(
    cluster: LocalCluster, videos: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[Any]]:
    """A fault-free build submitted as a job to the two-node cluster."""
    out = tmp_path_factory.mktemp("reference") / "dataset"
    logs = submit(cluster, "reference", ["jobs/build_dataset.py", *build_args(videos, out)])
    assert f"{VIDEOS} videos, 0 errors" in logs
    return contents(out)


def test_a_submitted_job_builds_the_dataset_across_both_nodes(
    reference: dict[str, list[Any]],
) -> None:
    assert len(reference["videos"]) == VIDEOS and not reference["errors"]
    ids = [f["frame_id"] for f in reference["frames"]]
    assert len(ids) == len(set(ids)) > VIDEOS
    assert sum(bool(f["labels"]) for f in reference["frames"]) > len(ids) / 2


def test_losing_a_node_mid_job_loses_and_repeats_nothing(
    cluster: LocalCluster, videos: Path, reference: dict[str, list[Any]], tmp_path: Path
) -> None:
    node = cluster.nodes[-1]
    out = tmp_path / "dataset"
    submit(cluster, "lose-node", ["jobs/build_dataset.py", *build_args(videos, out)], wait=False)
    wait_for(lambda: committed(out) >= 1, "the first committed batch")
    assert cluster.job_status("lose-node") == "RUNNING" and committed(out) < VIDEOS
    # Ray Data's stage actors (MapWorker) are running on the node about to be lost.
    assert sum(cluster.actors_per_node("MapWorker").values()) > 0
    cluster.kill_node(node)  # the whole node at once: raylet, object store, its actors
    wait_for(
        lambda: cluster.job_status("lose-node") in ("SUCCEEDED", "FAILED", "STOPPED"), "the job"
    )
    assert cluster.job_status("lose-node") == "SUCCEEDED", cluster.job_logs("lose-node")[-4000:]
    assert contents(out) == reference
    cluster.add_node(2)  # back to two nodes for the tests that follow


HELD_JOB = '''
"""vidray's build job with a sink that holds every batch after the first committed one, so
the job is certain to be part-way when it is stopped."""
import sys
import time

from vidray import pipeline
from vidray.cli import main
from vidray.sink import ParquetSink, committed_videos


class HeldSink(ParquetSink):
    def __call__(self, batch):
        deadline = time.monotonic() + 300
        while committed_videos(self.root, self.cfg) and time.monotonic() < deadline:
            time.sleep(1)
        return super().__call__(batch)


pipeline.ParquetSink = HeldSink
sys.exit(main(["build", *sys.argv[1:]]))
'''


def test_a_stopped_job_resumes_to_the_same_dataset(
    cluster: LocalCluster, videos: Path, reference: dict[str, list[Any]], tmp_path: Path
) -> None:
    job_dir = job_file(tmp_path, "held_build.py", HELD_JOB)
    out = tmp_path / "dataset"
    # One sink actor, one video per batch: the held sink commits one video, then waits.
    held = ["build.ray.sink.max_actors=1", "build.ray.sink.batch_size=1"]
    args = ["held_build.py", *build_args(videos, out, *held)]
    submit(cluster, "stopped", args, job_dir, wait=False)
    wait_for(lambda: committed(out) >= 1, "the first committed batch")
    stop = cluster.ray("job", "stop", "stopped")
    assert stop.returncode == 0, stop.stderr
    wait_for(lambda: cluster.job_status("stopped") == "STOPPED", "the job to stop", timeout=60)
    assert committed(out) == 1
    logs = submit(
        cluster, "resumed", ["jobs/build_dataset.py", *build_args(videos, out), "--resume"]
    )
    assert "already built, skipped" in logs
    assert contents(out) == reference


FAULTY_JOB = '''
"""vidray's build job with two faulty stages: on one video the label stage's batch code
raises, on another the shots stage's worker process dies (as a crash in native code would)."""
import os
import sys

from vidray import pipeline
from vidray.cli import main
from vidray.stages.base import to_rows
from vidray.stages.label import LabelStage
from vidray.stages.shots import ShotsStage

RAISES, DIES = sys.argv[1], sys.argv[2]


class RaisingLabel(LabelStage):
    def __call__(self, batch):
        if any(RAISES in row["source"] for row in to_rows(batch)):
            raise RuntimeError("label batch code broke")
        return super().__call__(batch)


class DyingShots(ShotsStage):
    def process(self, row):
        if DIES in row["source"]:
            os._exit(3)
        return super().process(row)


pipeline.LabelStage, pipeline.ShotsStage = RaisingLabel, DyingShots
sys.exit(main(["build", *sys.argv[3:]]))
'''


def test_a_raising_stage_and_a_dying_worker_fail_only_their_videos(
    cluster: LocalCluster, videos: Path, reference: dict[str, list[Any]], tmp_path: Path
) -> None:
    job_dir = job_file(tmp_path, "faulty_build.py", FAULTY_JOB)
    out = tmp_path / "dataset"
    # The dying video shares its shots batch with others: they must survive it.
    args = build_args(videos, out, "build.ray.max_task_retries=1", "build.ray.shots.batch_size=3")
    logs = submit(
        cluster, "faulty", ["faulty_build.py", "sample_001", "sample_003", *args], job_dir
    )
    assert f"{VIDEOS - 2} videos, 2 errors" in logs
    # The dying video's whole batch was lost at first; the second pass, one by one, kept the rest.
    lost = re.search(r"pass 1 lost (\d+) video", logs)
    assert lost and int(lost.group(1)) >= 2 and "pass 2 lost 1 video(s)" in logs
    got = contents(out)
    by_stage = {e["stage"]: e for e in got["errors"]}
    assert sorted(by_stage) == ["label", "ray"]
    assert by_stage["label"]["message"] == "label batch code broke"
    assert by_stage["ray"]["reason"] == "worker_died"
    failed = {e["video_id"] for e in got["errors"]}
    assert got["videos"] == [v for v in reference["videos"] if v["video_id"] not in failed]
    assert got["frames"] == [f for f in reference["frames"] if f["video_id"] not in failed]
