"""Corpus dedup (`run_dedup`) on synthetic embeddings, against references measured in the same run.

    python bench/semdedup.py [--frames 200000] [--dim 512] [--cpus 2] [--subsample 20000]

It writes a frames/ table of `--frames` unit float16 embeddings with known duplicates (the
noise model of tests/test_semdedup.py: scenes around 50 topics; 20% of scenes recur 2-4
times, copies = scene + Gaussian noise of relative size U(0, 0.2), a third of the groups
exact; 20% of the other scenes have a distinct retake at cos ~0.91), then times:

- vidray: `run_dedup` on a local Ray of `--cpus` CPUs (Ray already started; wall seconds);
- one process: the same functions (read, k-means, assignment, pairs) without Ray;
- all pairs: exact brute-force cosine over a `--subsample` of the frames, in blocks,
  extrapolated to all frames by (frames / subsample)^2.

It reports wall seconds, vidray's stage times, and vidray's quality against the ground truth:
recall (share of droppable copies dropped) and the share of distinct frames dropped.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from vidray import semdedup
from vidray.config import CorpusDedupConfig
from vidray.schema import FRAMES_SCHEMA, frame_id
from vidray.sink import open_root, read_table, write_table


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_corpus(n: int, dim: int, seed: int = 0, topics: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 unit vectors and each frame's duplicate group (-1: a distinct frame)."""
    rng = np.random.default_rng(seed)
    scenes = n  # more than enough; the frames are cut at n
    dup = rng.random(scenes) < 0.2
    copies = np.where(dup, rng.integers(2, 5, size=scenes), 1)
    retake = ~dup & (rng.random(scenes) < 0.2)
    per_scene = copies + retake
    scenes = int(np.searchsorted(np.cumsum(per_scene), n)) + 1
    scene = np.repeat(np.arange(scenes), per_scene[:scenes])[:n]
    first = np.r_[True, scene[1:] != scene[:-1]]
    is_copy = dup[scene]
    exact = is_copy & (scene % 3 == 0)
    scale = np.where(is_copy, rng.uniform(0, 0.2, size=n), np.where(first, 0.0, 0.45))
    scale[exact] = 0.0
    centres = unit(rng.standard_normal((topics, dim)).astype(np.float32))
    base = unit(centres[rng.integers(topics, size=scenes)] + rng.standard_normal((scenes, dim)).astype(np.float32) / math.sqrt(dim))  # fmt: skip
    x = np.empty((n, dim), np.float32)
    for i in range(0, n, 50_000):  # in pieces: the noise of all frames at once is large
        noise = rng.standard_normal((min(n - i, 50_000), dim)).astype(np.float32)
        x[i : i + 50_000] = unit(base[scene[i : i + 50_000]] + scale[i : i + 50_000, None] * noise / math.sqrt(dim))  # fmt: skip
    group = np.where(is_copy, scene, -1)
    order = rng.permutation(n)  # copies spread over the table, as across videos
    return x[order], group[order]


def write_frames(root: str, x: np.ndarray, videos: int = 2000, per_file: int = 25_000) -> list[str]:
    fs, base = open_root(root)
    ids = []
    for start in range(0, len(x), per_file):
        rows = range(start, min(start + per_file, len(x)))
        vids = [f"bench:v{i % videos:05d}" for i in rows]
        ts = [3.0 * (i // videos) for i in rows]
        part = x[start : start + per_file].astype(np.float16)
        columns = {f.name: pa.nulls(len(part), f.type) for f in FRAMES_SCHEMA}
        columns["frame_id"] = pa.array([frame_id(v, t) for v, t in zip(vids, ts, strict=True)])
        columns["video_id"] = pa.array(vids)
        columns["frame_ts"] = pa.array(ts, pa.float64())
        flat = pa.array(part.ravel())
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, x.shape[1]).cast(
            FRAMES_SCHEMA.field("embedding").type
        )
        ids.extend(columns["frame_id"].to_pylist())
        write_table(fs, f"{base}/frames/part-{start // per_file:05d}.parquet", pa.table(columns, schema=FRAMES_SCHEMA))  # fmt: skip
    return ids


def one_process(root: str, cfg: CorpusDedupConfig) -> int:
    """The same steps as run_dedup, in this process, without Ray."""
    emb = semdedup.load_embeddings(root, cfg.batch_size)
    n = len(emb.ids)
    sample = semdedup.fit_sample(n, cfg.fit_sample, cfg.seed)
    k = semdedup.cluster_count(n, cfg.clusters, len(sample))
    centroids = semdedup.fit_centroids(emb.vectors[sample], k, cfg.iterations, cfg.seed)
    labels, sims = semdedup.assign(emb.vectors, centroids)
    found = 0
    for rows in semdedup.cluster_members(labels, sims, k):
        found += len(semdedup.cluster_duplicates(emb.vectors[rows], 1.0 - cfg.eps)[0])
    return found


def all_pairs(x: np.ndarray, threshold: float, block: int = 4096) -> int:
    """Pairs with cosine >= threshold, counted over every pair (upper triangle, in blocks)."""
    x = semdedup.normalize(x)
    pairs = 0
    for i in range(0, len(x), block):
        for j in range(i, len(x), block):
            s = x[i : i + block] @ x[j : j + block].T
            if i == j:
                s = np.triu(s, 1)
            pairs += int((s >= threshold).sum())
    return pairs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "vidray-bench-semdedup"))
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--subsample", type=int, default=20_000)
    args = p.parse_args(argv)
    import ray

    root = str(Path(args.work) / "root")
    shutil.rmtree(root, ignore_errors=True)
    x, group = make_corpus(args.frames, args.dim)
    ids = np.array(write_frames(root, x))
    cfg = CorpusDedupConfig()

    tick = time.time()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray_start = time.time() - tick
    summary = semdedup.run_dedup(root, cfg)
    ray.shutdown()

    tick = time.time()
    local_found = one_process(root, cfg)
    local = time.time() - tick

    rng = np.random.default_rng(1)
    sub = np.sort(rng.choice(args.frames, size=min(args.subsample, args.frames), replace=False))
    tick = time.time()
    all_pairs(x[sub].astype(np.float16), 1.0 - cfg.eps)
    brute = (time.time() - tick) * (args.frames / len(sub)) ** 2

    dropped = set(read_table(root, "duplicates", ["dropped_id"])["dropped_id"].to_pylist())
    is_dropped = np.isin(ids, np.array(sorted(dropped)))
    copies = group >= 0
    sizes = np.bincount(group[copies])
    caught = np.bincount(group[copies & is_dropped], minlength=len(sizes))
    recall = np.minimum(caught, np.maximum(sizes - 1, 0)).sum() / np.maximum(sizes - 1, 0).sum()
    false_drops = is_dropped[~copies].mean()

    ours = summary["seconds"]
    t = summary["timings"]
    print(f"\n{args.frames} frames x {args.dim} dims, {summary['clusters']} clusters, "
          f"local Ray of {args.cpus} CPUs (started in {ray_start:.1f} s, not counted)\n")  # fmt: skip
    print("| method | wall s | vs vidray |")
    print("| --- | --- | --- |")
    print(f"| vidray run_dedup (Ray) | {ours:.1f} | 1.00x |")
    print(f"| same steps, one process, no Ray | {local:.1f} | {local / ours:.2f}x |")
    print(
        f"| exact all pairs ({len(sub)} frames, extrapolated) | {brute:.0f} | {brute / ours:.1f}x |"
    )
    print("\nvidray stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()))
    print(f"duplicates written: {summary['duplicates']} (one process found {local_found})")
    print(f"recall of true copies: {recall:.4f}; distinct frames dropped: {false_drops:.4f}")
    print(f"\ncommand: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
