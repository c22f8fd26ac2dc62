"""Exact cosine search (`vidray search`) on a synthetic index, against a full sort in the same run.

    python bench/search.py [--rows 1000000] [--dim 128] [--queries 64] [--batch 64]

It builds `--rows` random unit float32 embeddings (the index matrix) and unit queries, writes
them as an index Parquet file (the columns `VidrayModel.build_index` writes) and times:

- load: `vidray.query.read_index`, Parquet → a C-contiguous float32 matrix (+ id columns);
- reference: one query at a time, every score sorted (`np.argsort`), top 10 kept;
- numpy / torch CPU, one query at a time and `--batch` queries per matmul:
  `vidray.query.cosine_top_k` (argpartition, or `torch.topk`), top 10. `VidrayModel.search`
  takes the torch path (a view of the same matrix) on CPU as on GPU.

Every method's top 10 is checked against the reference. Queries/second is queries over wall
seconds; torch uses its default thread count, numpy the BLAS default (all cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vidray.query import cosine_top_k, read_index

K = 10


def unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), np.float32)


def random_unit(n: int, dim: int, rng: np.random.Generator, chunk: int = 262_144) -> np.ndarray:
    """n unit rows, made in chunks so the float64 temporaries stay small."""
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        out[start : start + rows] = unit(rng.standard_normal((rows, dim), dtype=np.float32))
    return out


def write_index_file(path: Path, matrix: np.ndarray) -> None:
    n, dim = matrix.shape
    table = pa.table(
        {
            "video_id": pa.array([f"bench:{i // 500}" for i in range(n)]),
            "frame_ts": pa.array(np.arange(n, dtype=np.float64) % 500),
            "source": pa.array(["bench.mp4"] * n),
            "labels": pa.array([["word"]] * n, pa.list_(pa.string())),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), dim),
        }
    )
    pq.write_table(table, path, row_group_size=131_072)


def reference(matrix: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return np.stack([np.argsort(-(matrix @ q), kind="stable")[:K] for q in queries])


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """(result, best wall seconds of `repeat` runs)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=64, help="queries per batched method")
    p.add_argument("--batch", type=int, default=64, help="queries per matmul (batched)")
    p.add_argument("--single", type=int, default=16, help="queries for one-at-a-time methods")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    import torch

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    matrix = random_unit(args.rows, args.dim, rng)
    queries = random_unit(args.queries, args.dim, rng)
    made = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.parquet"
        _, write_s = timed(lambda: write_index_file(path, matrix))
        size_mb = path.stat().st_size / 2**20
        (table, loaded), load_s = timed(lambda: read_index(path), 2)
    assert loaded.flags.c_contiguous and loaded.dtype == np.float32
    assert np.array_equal(loaded, matrix) and table.num_rows == args.rows
    del loaded, table

    single = queries[: args.single]
    ref, ref_s = timed(lambda: reference(matrix, single))
    ref_all = np.concatenate([ref, reference(matrix, queries[len(single) :])])
    tensor = torch.from_numpy(matrix)  # shares the numpy buffer
    methods: list[tuple[str, Any, np.ndarray, int]] = [
        ("numpy, 1 query per matmul", matrix, single, 1),
        (f"numpy, {args.batch} per matmul", matrix, queries, args.batch),
        ("torch CPU, 1 query per matmul", tensor, single, 1),
        (f"torch CPU, {args.batch} per matmul", tensor, queries, args.batch),
    ]
    rows = [("reference: full argsort, 1 query", len(single), ref_s, True)]
    for name, m, q, batch in methods:
        cosine_top_k(m, q[:batch], K, batch)  # warm-up (BLAS threads, torch kernels)
        (idx, _), secs = timed(partial(cosine_top_k, m, q, K, batch), 2)
        want = ref_all[: len(q)]
        same = all(set(a) == set(b) for a, b in zip(idx.tolist(), want.tolist(), strict=True))
        rows.append((name, len(q), secs, same))

    print(
        f"exact cosine search, top {K}: {args.rows:,} rows x {args.dim} float32 "
        f"({matrix.nbytes / 2**20:.0f} MiB); {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}; synthetic data made in {made:.1f}s"
    )
    print(
        f"index Parquet: {size_mb:.0f} MiB written in {write_s:.1f}s, "
        f"loaded (read_index, best of 2) in {load_s:.2f}s"
    )
    print(
        f"{'method':<36} {'queries':>7} {'seconds':>8} {'queries/s':>10} {'ms/query':>9}  top-10 = reference"
    )
    for name, n, secs, same in rows:
        print(f"{name:<36} {n:>7} {secs:>8.3f} {n / secs:>10.1f} {1000 * secs / n:>9.2f}  {same}")
    print(f"command: python bench/search.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    return 0 if all(same for *_, same in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
