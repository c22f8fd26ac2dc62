"""Corpus dedup (vidray/semdedup.py) on synthetic embeddings with known duplicates."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vidray import semdedup
from vidray.config import ConfigError, CorpusDedupConfig
from vidray.schema import DUPLICATES_SCHEMA, FRAMES_SCHEMA, frame_id, to_table
from vidray.sink import open_root, read_table, write_table


class Corpus(NamedTuple):
    rows: list[dict[str, Any]]
    groups: list[set[str]]  # frame_ids that are duplicates of each other (ground truth)
    exact: list[set[str]]  # the groups whose copies are identical
    distinct: set[str]  # frames with an embedding and no duplicate
    missing: set[str]  # frames without an embedding


def corpus(
    seed: int = 0,
    scenes: int = 150,
    dim: int = 128,
    topics: int = 6,
    videos: int = 12,
    dup_share: float = 0.25,
    max_noise: float = 0.2,
    retake_share: float = 0.2,
    retake_noise: float = 0.7,
    null_share: float = 0.03,
) -> Corpus:
    """The noise model: scenes scatter around a few topics (cos ~0.5 within a topic); a
    `dup_share` of scenes recur in 2-4 different videos, each copy the scene plus Gaussian
    noise of relative size U(0, max_noise) (cos between copies >= ~0.96; a third of the
    groups exact copies); a `retake_share` of the other scenes have a distinct second take
    (noise `retake_noise`: 0.7 gives cos ~0.82, 0.45 ~0.91); a `null_share` of frames have
    no embedding."""
    rng = np.random.default_rng(seed)

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    def noise(scale: float) -> np.ndarray:
        return scale * rng.standard_normal(dim) / math.sqrt(dim)

    centres = unit(rng.standard_normal((topics, dim)))
    clock: dict[str, float] = {}
    rows: list[dict[str, Any]] = []

    def add(video: int, vector: np.ndarray | None) -> str:
        vid = f"yt:v{video:03d}"
        ts = clock[vid] = clock.get(vid, -3.0) + 3.0
        fid = frame_id(vid, ts)
        emb = None if vector is None else vector.astype(np.float16)
        rows.append({"frame_id": fid, "video_id": vid, "frame_ts": ts, "embedding": emb})
        return fid

    out = Corpus(rows, [], [], set(), set())
    for s in range(scenes):
        scene = unit(centres[rng.integers(topics)] + noise(1.0))
        if rng.random() < dup_share:
            exact = len(out.groups) % 3 == 0
            copies = rng.choice(videos, size=int(rng.integers(2, 5)), replace=False)
            group = {
                add(int(v), scene if exact else unit(scene + noise(rng.uniform(0, max_noise))))
                for v in copies
            }
            out.groups.append(group)
            if exact:
                out.exact.append(group)
        else:
            out.distinct.add(add(s % videos, scene))
            if rng.random() < retake_share:
                out.distinct.add(add(int(rng.integers(videos)), unit(scene + noise(retake_noise))))
        if rng.random() < null_share:
            out.missing.add(add(int(rng.integers(videos)), None))
    return out


def write_root(root: Path, rows: list[dict[str, Any]], files: int = 4, hive: bool = False) -> str:
    """frames/ as a build writes it: Parquet files with the frames schema (with `hive`, in
    `lang=<..>/` partition folders, as `output.partition_by: [lang]` lays them out)."""
    fs, base = open_root(str(root))
    for i in range(files):
        part = [r for j, r in enumerate(rows) if j % files == i]
        folder = f"frames/lang={'en' if i % 2 else 'fr'}" if hive else "frames"
        write_table(fs, f"{base}/{folder}/part-{i:04d}.parquet", to_table(part, FRAMES_SCHEMA))
    return str(root)


def file_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def duplicates(root: str) -> list[dict[str, Any]]:
    return read_table(root, "duplicates").to_pylist()


def quality(found: list[dict[str, Any]], data: Corpus) -> tuple[float, float]:
    """(recall: share of droppable copies dropped, share of distinct frames dropped)."""
    dropped = {d["dropped_id"] for d in found}
    caught = sum(min(len(g & dropped), len(g) - 1) for g in data.groups)
    recall = caught / sum(len(g) - 1 for g in data.groups)
    return recall, len(data.distinct & dropped) / len(data.distinct)


@pytest.fixture(scope="module")
def small() -> Corpus:
    return corpus()


def test_the_synthetic_corpus_has_a_clear_margin(small: Corpus) -> None:
    """Every true pair is above 1 - eps = 0.95, every other pair well below: a clear eps."""
    rows = [r for r in small.rows if r["embedding"] is not None]
    ids = [r["frame_id"] for r in rows]
    x = semdedup.normalize(np.stack([r["embedding"] for r in rows]))
    sims = x @ x.T
    group_of = {fid: i for i, g in enumerate(small.groups) for fid in g}
    labels = np.array([group_of.get(fid, -1 - i) for i, fid in enumerate(ids)])
    same = labels[:, None] == labels[None, :]
    off = ~same
    np.fill_diagonal(same, False)
    assert sims[same].min() > 0.955 and sims[off].max() < 0.93
    assert len(small.groups) >= 20 and small.exact and small.missing


def test_finds_exactly_the_true_duplicates(local_ray: Any, tmp_path: Path, small: Corpus) -> None:
    root = write_root(tmp_path, small.rows)
    summary = semdedup.run_dedup(root, CorpusDedupConfig(eps=0.05))
    found = duplicates(root)

    assert summary["frames"] == len(small.rows)
    assert summary["without_embeddings"] == len(small.missing)
    assert summary["with_embeddings"] == len(small.rows) - len(small.missing)
    assert summary["clusters"] == round(math.sqrt(summary["with_embeddings"] / 2))
    assert summary["duplicates"] == len(found) == sum(len(g) - 1 for g in small.groups)
    by_dropped = {d["dropped_id"]: d for d in found}
    for group in small.groups:
        kept = group - set(by_dropped)
        assert len(kept) == 1  # each group keeps exactly one frame...
        for fid in group - kept:  # ...and the others name it
            assert by_dropped[fid]["kept_id"] in kept
            assert by_dropped[fid]["similarity"] >= 0.95
    for group in small.exact:  # equal vectors rank equal: the smallest frame_id stays
        assert group - set(by_dropped) == {min(group)}
    assert [d["dropped_id"] for d in found] == sorted(by_dropped)
    assert pq.read_schema(next((tmp_path / "duplicates").iterdir())).equals(DUPLICATES_SCHEMA)


def test_reruns_agree_replace_their_output_and_never_touch_frames(
    local_ray: Any, tmp_path: Path, small: Corpus
) -> None:
    root = write_root(tmp_path / "a", small.rows)
    before = file_digests(tmp_path / "a" / "frames")
    first = semdedup.run_dedup(root, CorpusDedupConfig())
    fs, base = open_root(root)  # an earlier run's leftover file must go
    write_table(fs, f"{base}/duplicates/part-00007.parquet", read_table(root, "duplicates"))
    again = semdedup.run_dedup(root, CorpusDedupConfig())
    assert file_digests(tmp_path / "a" / "frames") == before
    assert sorted(p.name for p in (tmp_path / "a" / "duplicates").iterdir()) == [
        "part-00000.parquet"
    ]
    assert again["duplicates"] == first["duplicates"] == len(duplicates(root))

    # Another split into (partitioned) files and another task size give the same answer.
    other = write_root(tmp_path / "b", small.rows[::-1], files=3, hive=True)
    semdedup.run_dedup(other, CorpusDedupConfig(batch_size=7))
    assert duplicates(other) == duplicates(root)
    view = semdedup.read_unique_frames(other, ["frame_id", "lang"])
    assert view.num_rows == len(small.rows) - again["duplicates"]
    assert set(view["lang"].to_pylist()) == {"en", "fr"}


def test_the_assignment_runs_in_ray_workers(
    local_ray: Any, tmp_path: Path, small: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_root(tmp_path / "root", small.rows)
    marks = tmp_path / "marks"
    marks.mkdir()
    assign_task = semdedup._assign_task

    def spy(x: np.ndarray, centroids: Any) -> Any:  # pickled by value into the Ray worker
        (marks / f"{os.getpid()}-{os.urandom(4).hex()}").touch()
        return assign_task(x, centroids)

    monkeypatch.setattr(semdedup, "_assign_task", spy)
    summary = semdedup.run_dedup(root, CorpusDedupConfig(batch_size=32))
    tasks = math.ceil(summary["with_embeddings"] / 32)
    pids = {int(p.name.split("-")[0]) for p in marks.iterdir()}
    assert summary["assign_tasks"] == tasks == len(list(marks.iterdir()))
    assert os.getpid() not in pids
    assert summary["duplicates"] == sum(len(g) - 1 for g in small.groups)


def test_the_view_leaves_out_exactly_the_dropped_frames(
    local_ray: Any, tmp_path: Path, small: Corpus
) -> None:
    root = write_root(tmp_path, small.rows)
    every = {r["frame_id"] for r in small.rows}
    assert set(semdedup.read_unique_frames(root, ["frame_id"])["frame_id"].to_pylist()) == every

    semdedup.run_dedup(root, CorpusDedupConfig())
    dropped = {d["dropped_id"] for d in duplicates(root)}
    expect = every - dropped
    view = semdedup.read_unique_frames(root)
    assert view.schema.equals(FRAMES_SCHEMA)
    assert sorted(view["frame_id"].to_pylist()) == sorted(expect)
    narrow = semdedup.read_unique_frames(root, ["video_id", "frame_ts"])
    assert narrow.column_names == ["video_id", "frame_ts"] and narrow.num_rows == len(expect)
    filtered = read_table(root, "frames", ["frame_id"], filters=semdedup.unique_filter(root))
    assert set(filtered["frame_id"].to_pylist()) == expect

    duckdb = pytest.importorskip("duckdb")
    sql = (
        f"SELECT frame_id FROM '{root}/frames/**/*.parquet' WHERE frame_id NOT IN "
        f"(SELECT dropped_id FROM '{root}/duplicates/*.parquet')"
    )
    assert {r[0] for r in duckdb.sql(sql).fetchall()} == expect


def test_a_root_without_embeddings_gives_an_empty_table_and_says_why(tmp_path: Path) -> None:
    rows = [{**r, "embedding": None} for r in corpus(scenes=10).rows]
    rows[0]["embedding"] = [float("nan")] * 8  # not finite: skipped like a missing one
    rows[1]["embedding"] = []
    root = write_root(tmp_path, rows, files=2)
    summary = semdedup.run_dedup(root, CorpusDedupConfig())
    assert summary["duplicates"] == summary["with_embeddings"] == 0
    assert summary["without_embeddings"] == len(rows)
    assert "embedding" in summary["message"]
    assert read_table(root, "duplicates").num_rows == 0
    assert (tmp_path / "duplicates" / "part-00000.parquet").is_file()  # globs still match
    assert semdedup.read_unique_frames(root, ["frame_id"]).num_rows == len(rows)


def test_a_bad_root_or_config_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        semdedup.run_dedup(str(tmp_path / "nowhere"), CorpusDedupConfig())
    with pytest.raises(FileNotFoundError, match="no frames table"):
        semdedup.run_dedup(str(tmp_path), CorpusDedupConfig())
    with pytest.raises(ConfigError, match="eps"):
        semdedup.run_dedup(str(tmp_path), CorpusDedupConfig(eps=1.5))
    assert not (tmp_path / "duplicates").exists()


def test_greedy_keeping_in_blocks() -> None:
    """a~b and b~c but not a~c: b goes (a stays), c stays, as no kept frame is near it.
    Blocks of 2 give what one block gives."""
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([math.cos(0.25), math.sin(0.25), 0.0])
    c = np.array([math.cos(0.5), math.sin(0.5), 0.0])
    d = np.array([0.0, 0.0, 1.0])
    x = np.stack([a, b, c, d, a, d])
    threshold = math.cos(0.3)
    dropped, kept, sims = semdedup.cluster_duplicates(x, threshold)
    assert dropped.tolist() == [1, 4, 5] and kept.tolist() == [0, 0, 3]
    assert np.allclose(sims, [math.cos(0.25), 1.0, 1.0])
    for block in (1, 2, 4):
        found = semdedup.cluster_duplicates(x, threshold, block=block)
        assert all(np.array_equal(u, v) for u, v in zip(found, (dropped, kept, sims), strict=True))


def test_kmeans_is_seeded_and_clusters_are_bounded() -> None:
    x = semdedup.normalize(np.random.default_rng(1).standard_normal((300, 16)))
    one, two = (semdedup.fit_centroids(x, 12, 10, seed=5) for _ in range(2))
    assert np.array_equal(one, two)
    assert np.allclose(np.linalg.norm(one, axis=1), 1.0, atol=1e-5)
    assert semdedup.cluster_count(20_000, None, 20_000) == 100
    assert semdedup.cluster_count(5, 50, 5) == 5
    assert semdedup.cluster_count(1, None, 1) == 1


def test_recall_and_false_drops_on_a_larger_corpus(local_ray: Any, tmp_path: Path) -> None:
    """The goal: >= 95% of true copies dropped, <= 2% of distinct frames dropped, with copies
    down to cos ~0.95 and distinct retakes up to ~0.93 on either side of the 0.95 threshold."""
    data = corpus(
        seed=3, scenes=4000, dim=256, topics=20, videos=40, max_noise=0.22, retake_noise=0.45
    )
    root = write_root(tmp_path, data.rows)
    summary = semdedup.run_dedup(root, CorpusDedupConfig(batch_size=1024))
    recall, false_drops = quality(duplicates(root), data)
    print(f"\nsemdedup quality: {summary['with_embeddings']} frames, {summary['clusters']} clusters, "
          f"recall {recall:.4f}, distinct frames dropped {false_drops:.4f}")  # fmt: skip
    assert recall >= 0.95
    assert false_drops <= 0.02


def test_id_set_membership() -> None:
    ids = semdedup.IdSet(pa.array(["yt:b@3000", "file:é@0", "yt:a@0", "yt:a@0"]))
    query = pa.array(["yt:a@0", None, "file:é@0", "file:e@0", "", "yt:b@300", "yt:b@3000"])
    assert ids.contains(query).tolist() == [True, False, True, False, False, False, True]
    assert not semdedup.IdSet(pa.array([], pa.string())).contains(query).any()
