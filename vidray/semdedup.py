"""Corpus-wide near-duplicate frames, SemDeDup style: k-means on embeddings, pairs within clusters.

`run_dedup(root, cfg)` (the `vidray dedup ROOT` command) follows Abbas et al. 2023, "SemDeDup":

1. Stream `frame_id` and `embedding` of `ROOT/frames/` (no other column); frames without an
   embedding (null, empty or not finite) are skipped and counted. Rows are sorted by
   `frame_id`, so the result does not depend on how the table is split into files. The
   driver holds the float16 embeddings: n · dim · 2 bytes (200 MB for 200k x 512).
2. Spherical (cosine) k-means in numpy on a seeded sample of `cfg.fit_sample` frames:
   k-means++ seeding, `cfg.iterations` Lloyd steps; `cfg.clusters` defaults to sqrt(n / 2).
3. Ray tasks of `cfg.batch_size` frames assign every frame to its nearest centroid (the
   centroids are put in the object store once).
4. Within each cluster (one Ray task per cluster) frames are ranked by similarity to their
   centroid, least similar first as SemDeDup keeps them (rounded to 1e-4 so that arithmetic
   noise cannot reorder equal frames), ties by `frame_id`. Greedily in that order, a frame is
   dropped when a frame kept before it has cosine similarity >= 1 - eps; it names the most
   similar such frame (the earliest on ties). So every dropped frame has a kept stand-in
   within eps. Similarities are computed in blocks of `BLOCK` frames: memory stays bounded
   in a large cluster. Pairs that k-means puts in different clusters are not compared (the
   price SemDeDup pays for near-linear cost).
5. `ROOT/duplicates/part-NNNNN.parquet` (DUPLICATES_SCHEMA, sorted by `dropped_id`) replaces
   the previous run's files, each atomically (a reader during a rerun may see new and old
   files side by side until the old ones are deleted); `frames/` is never rewritten.

The deduplicated view is `frames/` minus the dropped ids: `read_unique_frames(root)`,
`iter_unique_frames(root)`, or `unique_filter(root)` as a pyarrow filter. In DuckDB (`**`
also reaches Hive partition folders):

    SELECT * FROM 'ROOT/frames/**/*.parquet'
    WHERE frame_id NOT IN (SELECT dropped_id FROM 'ROOT/duplicates/*.parquet')
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from vidray.config import ConfigError, CorpusDedupConfig
from vidray.schema import DUPLICATES_SCHEMA, FRAMES_SCHEMA
from vidray.sink import iter_batches, open_root, read_table, table_files, write_table

log = logging.getLogger(__name__)

BLOCK = 2048  # frames per block of pairwise similarities (a 16 MB float32 block)
RANK_DECIMALS = 4  # centroid similarity is rounded this far before ranking
TOLERANCE = 1e-6  # float32 rounding: identical unit vectors may score 0.99999994


class Embeddings(NamedTuple):
    """The frames that have an embedding, sorted by frame_id, and how many had none."""

    ids: pa.StringArray
    vectors: np.ndarray  # (n, d) float16, as stored
    frames: int  # rows read
    skipped: int  # rows without a (finite, non-empty) embedding or without a frame_id


def run_dedup(root: str, cfg: CorpusDedupConfig, ray_address: str | None = None) -> dict[str, Any]:
    """Find near-duplicate frames across the dataset at `root` and write `ROOT/duplicates/`.
    Returns a summary: frame counts, clusters, duplicates, seconds (and per step)."""
    start = time.time()
    check_config(cfg)
    timings: dict[str, float] = {}
    with stopwatch(timings, "read"):
        emb = load_embeddings(root, cfg.batch_size)
    n = len(emb.ids)
    summary: dict[str, Any] = {
        "frames": emb.frames,
        "with_embeddings": n,
        "without_embeddings": emb.skipped,
        "clusters": 0,
        "duplicates": 0,
        "assign_tasks": 0,
        "message": None,
    }
    if n == 0:
        summary["message"] = (
            f"none of the {emb.frames} frames under {root} has an embedding, so nothing was "
            "deduplicated: build with build.embed.enabled=true to embed frames"
        )
        log.warning(summary["message"])
        write_duplicates(root, DUPLICATES_SCHEMA.empty_table())
        return {**summary, "timings": timings, "seconds": time.time() - start}

    import ray

    if not ray.is_initialized():
        ray.init(address=ray_address, log_to_driver=False)
    in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    with stopwatch(timings, "fit"):
        sample = fit_sample(n, cfg.fit_sample, cfg.seed)
        k = cluster_count(n, cfg.clusters, len(sample))
        centroids = fit_centroids(emb.vectors[sample], k, cfg.iterations, cfg.seed)
    with stopwatch(timings, "assign"):
        centroids_ref = ray.put(centroids)  # once, shared by every task
        chunks = ((emb.vectors[i : i + cfg.batch_size], centroids_ref) for i in range(0, n, cfg.batch_size))  # fmt: skip
        results = list(bounded(ray.remote(_assign_task), chunks, in_flight))
        labels = np.concatenate([r[0] for r in results])
        sims = np.concatenate([r[1] for r in results])
    with stopwatch(timings, "pairs"):
        clusters = cluster_members(labels, sims, k)
        args = ((emb.vectors[rows], 1.0 - cfg.eps) for rows in clusters)
        found = bounded(ray.remote(cluster_duplicates), args, in_flight)
        pairs = [(rows[d], rows[kp], s) for rows, (d, kp, s) in zip(clusters, found, strict=True)]
        table = duplicates_table(emb.ids, labels, pairs)
    with stopwatch(timings, "write"):
        write_duplicates(root, table)
    summary.update(clusters=k, duplicates=table.num_rows, assign_tasks=len(results))
    log.info("dedup %s: %d of %d frames are near-duplicates", root, table.num_rows, n)
    return {**summary, "timings": timings, "seconds": time.time() - start}


@contextmanager
def stopwatch(timings: dict[str, float], name: str) -> Iterator[None]:
    tick = time.time()
    yield
    timings[name] = time.time() - tick


def check_config(cfg: CorpusDedupConfig) -> None:
    if not 0.0 <= cfg.eps < 1.0:
        raise ConfigError(f"dedup.eps must be in [0, 1), got {cfg.eps}")
    if cfg.clusters is not None and cfg.clusters < 1:
        raise ConfigError(f"dedup.clusters must be at least 1 (or null), got {cfg.clusters}")
    for name in ("fit_sample", "batch_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"dedup.{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.iterations < 0:
        raise ConfigError(f"dedup.iterations must be >= 0, got {cfg.iterations}")


def load_embeddings(root: str, batch_size: int = 4096) -> Embeddings:
    """Stream `frame_id` + `embedding` of ROOT/frames/; fail clearly when there is no table."""
    fs, files = table_files(root, "frames")
    if not files:
        _, path = open_root(root)
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"dataset root not found: {root}")
        raise FileNotFoundError(
            f"no frames table under {root} (frames/*.parquet): run a build first"
        )
    ids: list[pa.Array] = []
    vectors: list[np.ndarray] = []
    frames = 0
    dim: int | None = None
    for batch in iter_batches(root, "frames", ["frame_id", "embedding"], batch_size):
        frames += batch.num_rows
        column = batch.column("embedding")
        ok = pc.and_(pc.is_valid(batch.column("frame_id")), pc.is_valid(column))
        ok = pc.and_(ok, pc.greater(pc.fill_null(pc.list_value_length(column), 0), 0))
        column, batch_ids = column.filter(ok), batch.column("frame_id").filter(ok)
        if len(column) == 0:
            continue
        lengths = pc.list_value_length(column)
        extent = pc.min_max(lengths)
        low, high = extent["min"].as_py(), extent["max"].as_py()
        dim = dim or low
        if low != dim or high != dim:
            raise ValueError(
                f"{root}/frames: embeddings of different lengths ({dim}, {low}, {high})"
            )
        values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), dim)
        finite = np.isfinite(values).all(axis=1)  # one NaN would poison a centroid
        vectors.append(values[finite])
        ids.append(batch_ids.filter(pa.array(finite)))
    if not ids:
        return Embeddings(pa.array([], pa.string()), np.zeros((0, 0), np.float16), frames, frames)
    all_ids = pa.concat_arrays(ids)
    order = pc.sort_indices(all_ids).to_numpy()
    all_ids = all_ids.take(order)
    stacked = np.concatenate(vectors)[order]
    repeated = pc.equal(all_ids[1:], all_ids[:-1]).to_numpy(zero_copy_only=False)
    if repeated.any():  # a frame_id twice would make the view drop every copy: keep the first
        log.warning("%s/frames: %d repeated frame_ids, first kept", root, int(repeated.sum()))
        first = np.concatenate([[True], ~repeated])
        all_ids, stacked = all_ids.filter(pa.array(first)), stacked[first]
    return Embeddings(all_ids, stacked, frames, frames - len(all_ids))


def fit_sample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded sample of at most `size` of `n` rows."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def cluster_count(n: int, clusters: int | None, sample: int) -> int:
    """`clusters`, or about sqrt(n / 2); never more than the frames the centroids are fitted on."""
    k = clusters if clusters is not None else round(math.sqrt(n / 2))
    return max(1, min(k, n, sample))


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows as float32 unit vectors (a zero row stays zero and matches nothing)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def assign(
    x: np.ndarray, centroids: np.ndarray, normalized: bool = False, chunk: int = 16384
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid by cosine, and that similarity (int32, float32)."""
    labels = np.empty(len(x), np.int32)
    sims = np.empty(len(x), np.float32)
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk] if normalized else normalize(x[i : i + chunk])
        s = part @ centroids.T
        labels[i : i + chunk] = s.argmax(axis=1)
        sims[i : i + chunk] = s[np.arange(len(s)), labels[i : i + chunk]]
    return labels, sims


def fit_centroids(sample: np.ndarray, k: int, iterations: int, seed: int) -> np.ndarray:
    """Spherical k-means: k-means++ seeding on at most 32·k rows, then at most `iterations`
    Lloyd steps on all rows (fewer when no row changes cluster)."""
    x = normalize(sample)
    rng = np.random.default_rng(seed)
    seeding = x if len(x) <= 32 * k else x[np.sort(rng.choice(len(x), 32 * k, replace=False))]
    centroids = kmeans_pp(seeding, k, rng)
    previous = None
    for _ in range(iterations):
        labels, sims = assign(x, centroids, normalized=True)
        if previous is not None and np.array_equal(labels, previous):
            break
        previous = labels
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=k)
        for c, rows in enumerate(np.split(order, np.cumsum(counts)[:-1])):
            if len(rows):
                centroids[c] = x[rows].sum(axis=0)
        centroids[counts > 0] = normalize(centroids[counts > 0])
        empty = np.flatnonzero(counts == 0)
        if len(empty):  # re-seed on the rows worst served by their centroid
            centroids[empty] = x[np.argsort(sims, kind="stable")[: len(empty)]]
    return centroids


def kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding with cosine distance 1 - cos."""
    chosen = [int(rng.integers(len(x)))]
    dist = np.maximum(1.0 - x @ x[chosen[0]], 0.0).astype(np.float64)
    for _ in range(1, k):
        cumulative = np.cumsum(dist)
        if cumulative[-1] > 0:
            i = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        else:  # every row coincides with a centre already
            i = int(rng.integers(len(x)))
        chosen.append(min(i, len(x) - 1))
        dist = np.minimum(dist, np.maximum(1.0 - x @ x[chosen[-1]], 0.0))
    return x[chosen].copy()


def cluster_members(labels: np.ndarray, sims: np.ndarray, k: int) -> list[np.ndarray]:
    """Row indices of each cluster with two or more rows, in keeping order: least similar to
    the centroid first, ties by row (rows are sorted by frame_id)."""
    rank = np.round(sims.astype(np.float64), RANK_DECIMALS)
    order = np.lexsort((np.arange(len(labels)), rank, labels))
    bounds = np.cumsum(np.bincount(labels, minlength=k))
    groups = np.split(order, bounds[:-1])
    return [g for g in groups if len(g) > 1]


def cluster_duplicates(
    x: np.ndarray, threshold: float, block: int = BLOCK
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of one cluster in keeping order → (dropped, kept, similarity): a row is dropped when
    a row kept before it has cosine >= threshold; it names the most similar one (earliest on
    ties). Compares block against block, so memory is O(block² + rows · dim)."""
    x = normalize(x)
    threshold -= TOLERANCE
    kept_blocks: list[np.ndarray] = []  # row indices kept in earlier blocks
    dropped, kept_for, similarity = [], [], []
    for start in range(0, len(x), block):
        xb = x[start : start + block]
        best = np.full(len(xb), -np.inf, np.float32)
        best_row = np.full(len(xb), -1, np.int64)
        earlier = np.concatenate(kept_blocks) if kept_blocks else np.zeros(0, np.int64)
        for i in range(0, len(earlier), block):
            rows = earlier[i : i + block]
            s = xb @ x[rows].T
            j = s.argmax(axis=1)
            v = s[np.arange(len(xb)), j]
            better = v > best
            best[better], best_row[better] = v[better], rows[j[better]]
        s = xb @ xb.T
        near = np.triu(s >= threshold, 1)  # near[i, j]: row i ranks before row j and is close
        keep = best < threshold
        waiting = np.flatnonzero(near.any(axis=0))
        keep[waiting] = False
        for j in waiting:  # in order, so every row before j is settled
            cands = np.flatnonzero(near[:j, j] & keep[:j])
            if len(cands):
                t = int(s[cands, j].argmax())
                if s[cands[t], j] > best[j]:
                    best[j], best_row[j] = s[cands[t], j], start + cands[t]
            keep[j] = best[j] < threshold
        kept_blocks.append(start + np.flatnonzero(keep))
        gone = np.flatnonzero(~keep)
        dropped.append(start + gone)
        kept_for.append(best_row[gone])
        similarity.append(best[gone])
    return np.concatenate(dropped), np.concatenate(kept_for), np.concatenate(similarity)


def duplicates_table(
    ids: pa.StringArray, labels: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> pa.Table:
    """(dropped rows, kept rows, similarity) per cluster → the duplicates table, by dropped_id."""
    if not pairs:
        return DUPLICATES_SCHEMA.empty_table()
    dropped, kept, similarity = (np.concatenate(p) for p in zip(*pairs, strict=True))
    table = pa.table(
        {
            "kept_id": ids.take(kept),
            "dropped_id": ids.take(dropped),
            "similarity": np.minimum(similarity, 1.0).astype(np.float32),
            "cluster": labels[dropped].astype(np.int32),
        },
        schema=DUPLICATES_SCHEMA,
    )
    return table.sort_by("dropped_id")


def write_duplicates(root: str, table: pa.Table) -> list[str]:
    """Write ROOT/duplicates/part-00000.parquet atomically (always one file, even empty, so
    a run replaces the last one whole and globs always match), then delete any other file
    left there."""
    fs, base = open_root(root)
    _, old = table_files(root, "duplicates")
    path = f"{base}/duplicates/part-00000.parquet"
    write_table(fs, path, table)
    for stale in set(old) - {path}:
        fs.delete_file(stale)
    return [path]


def dropped_ids(root: str) -> pa.Array:
    """The frame_ids that the last `vidray dedup` left out of the view (empty if never run)."""
    dropped = read_table(root, "duplicates", ["dropped_id"]).column("dropped_id")
    return dropped.combine_chunks() if dropped.num_chunks else pa.array([], pa.string())


def unique_filter(root: str) -> pc.Expression:
    """A pyarrow filter for the frames that are not dropped, e.g.
    `sink.read_table(root, "frames", columns, filters=unique_filter(root))`. Arrow rebuilds
    the set behind `isin` for every batch it filters: with many duplicates,
    `iter_unique_frames` is much faster."""
    return ~pc.field("frame_id").isin(dropped_ids(root))


class IdSet:
    """Frame ids as a sorted array of UTF-8 byte strings, built once; membership of a batch
    costs O(batch · log size) (pyarrow's is_in rebuilds its hash table on every call)."""

    def __init__(self, ids: pa.Array) -> None:
        self.sorted = np.unique(self._bytes(ids))

    @staticmethod
    def _bytes(ids: pa.Array) -> np.ndarray:
        binary = pc.fill_null(ids, "").cast(pa.binary())
        return np.asarray(binary.to_numpy(zero_copy_only=False), dtype=np.bytes_)

    def contains(self, ids: pa.Array) -> np.ndarray:
        query = self._bytes(ids)
        if not len(self.sorted) or not len(query):
            return np.zeros(len(query), bool)
        pos = np.minimum(np.searchsorted(self.sorted, query), len(self.sorted) - 1)
        return np.asarray(self.sorted[pos] == query)


def iter_unique_frames(
    root: str, columns: list[str] | None = None, batch_size: int = 1024
) -> Iterator[pa.RecordBatch]:
    """Record batches of ROOT/frames/ without the dropped frames (an anti-join, streamed)."""
    columns = list(columns or FRAMES_SCHEMA.names)
    read = columns if "frame_id" in columns else [*columns, "frame_id"]
    dropped = IdSet(dropped_ids(root))
    for batch in iter_batches(root, "frames", read, batch_size):
        keep = ~dropped.contains(batch.column("frame_id"))
        yield batch.filter(pa.array(keep)).select(columns)


def read_unique_frames(root: str, columns: list[str] | None = None) -> pa.Table:
    """ROOT/frames/ minus the dropped frames, as one table."""
    names = list(columns or FRAMES_SCHEMA.names)
    batches = list(iter_unique_frames(root, names))
    if batches:
        return pa.Table.from_batches(batches)
    fields = [FRAMES_SCHEMA.field(c) if c in FRAMES_SCHEMA.names else pa.field(c, pa.string()) for c in names]  # fmt: skip
    return pa.schema(fields).empty_table()


def bounded(remote: Any, args: Iterable[tuple[Any, ...]], max_in_flight: int) -> Iterator[Any]:
    """Run a Ray remote function over `args`, at most `max_in_flight` at a time, in order."""
    import ray

    todo = iter(args)
    flight = deque(remote.remote(*a) for a in islice(todo, max_in_flight))
    while flight:
        result = ray.get(flight.popleft())
        if (nxt := next(todo, None)) is not None:
            flight.append(remote.remote(*nxt))
        yield result


def _assign_task(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return assign(x, centroids)
