"""Evaluation metrics in plain numpy: AP/mAP, top-k accuracy, per-label precision/recall, recall@K."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

CHUNK = 1024  # query rows per block, so a Q×N score matrix is never held whole


def row_chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def average_precision(scores: np.ndarray, target: np.ndarray) -> float:
    """AP of one label: precision averaged over the recall steps of the ranking by score.
    Tied scores form one threshold (as scikit-learn does), so a constant score gets AP equal
    to the positive rate instead of a value that depends on row order. NaN without positives."""
    scores, target = np.asarray(scores, np.float64), np.asarray(target, bool)
    n_pos = int(target.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], target[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last row of each tie group
    tp = np.cumsum(t)[last]
    precision = tp / (last + 1)
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float((recall_step * precision).sum())


def per_label_ap(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """AP of each column of an N×V score matrix; NaN for labels with no positive row."""
    return np.array(
        [average_precision(scores[:, j], targets[:, j]) for j in range(targets.shape[1])]
    )


def mean_ap(ap: np.ndarray) -> tuple[float, int]:
    """(mean AP over the labels that have a positive, how many those are)."""
    known = ap[~np.isnan(ap)]
    return (float(known.mean()) if len(known) else float("nan")), len(known)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """The k best columns of each row, best first; ties go to the lower column index (the
    vocabulary is ordered most frequent first), so results never depend on sort internals."""
    k = min(k, scores.shape[1])
    out = np.empty((scores.shape[0], k), np.int64)
    for rows in row_chunks(scores.shape[0]):
        out[rows] = np.argsort(-scores[rows], axis=1, kind="stable")[:, :k]
    return out


def top_k_accuracy(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Share of rows with a positive among their k best-scored columns (top-1: the best column
    is a positive). Rows without any positive are left out."""
    keep = targets.any(axis=1)
    if not keep.any():
        return float("nan")
    top = top_k_indices(scores[keep], k)
    return float(np.take_along_axis(targets[keep], top, axis=1).any(axis=1).mean())


def predicted_mask(scores: np.ndarray, k: int = 1) -> np.ndarray:
    """The words predicted for each row: its k best-scored columns. A rank rule rather than a
    probability threshold, so it does not depend on calibration and applies unchanged to the
    frequency baseline, whose scores are counts."""
    mask = np.zeros(scores.shape, bool)
    np.put_along_axis(mask, top_k_indices(scores, k), True, axis=1)
    return mask


def label_precision_recall(
    scores: np.ndarray, targets: np.ndarray, k: int = 1
) -> dict[str, np.ndarray]:
    """Per label: precision (NaN if never predicted), recall (NaN without positives), support
    and how often predicted, with `predicted_mask(scores, k)` as the prediction."""
    pred = predicted_mask(scores, k)
    targets = targets.astype(bool)
    tp = (pred & targets).sum(axis=0)
    n_pred, support = pred.sum(axis=0), targets.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), np.nan)
        recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
    return {"precision": precision, "recall": recall, "support": support, "predicted": n_pred}


def frequency_scores(counts: np.ndarray | Sequence[float], n_rows: int) -> np.ndarray:
    """The frequency baseline: every row scored by the training label counts (a read-only
    broadcast view, not n_rows copies)."""
    return np.broadcast_to(np.asarray(counts, np.float32), (n_rows, len(counts)))


def micro_pr_curve(
    scores: np.ndarray, targets: np.ndarray, bins: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Micro-averaged precision and recall over every (row, label) pair at `bins` score
    thresholds spread over the score range; histograms, so no N·V sort is needed."""
    lo, hi = float(np.min(scores)), float(np.max(scores))
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    pos = targets.astype(bool)
    n_all = np.histogram(scores, edges)[0][::-1].cumsum()  # pairs at or above each threshold
    n_pos = np.histogram(np.asarray(scores)[pos], edges)[0][::-1].cumsum()
    total = max(int(pos.sum()), 1)
    keep = n_all > 0
    return n_pos[keep] / n_all[keep], n_pos[keep] / total


def first_relevant_rank(sim: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """For each query row, how many irrelevant items score at least as high as its best
    relevant item (ties count against the query); -1 for a query with no relevant item."""
    relevant = relevant.astype(bool)
    best = np.where(relevant, sim, -np.inf).max(axis=1)
    ahead = ((sim >= best[:, None]) & ~relevant).sum(axis=1)
    return np.where(relevant.any(axis=1), ahead, -1)


def recall_at_k(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Share of queries (with a relevant item) that find one in their top K."""
    ranks = ranks[ranks >= 0]
    return {k: float((ranks < k).mean()) if len(ranks) else float("nan") for k in ks}


def precision_at_k(sim: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Per query, the share of its k best-scored items that are relevant."""
    k = min(k, sim.shape[1])
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    return np.take_along_axis(relevant.astype(bool), top, axis=1).mean(axis=1)


def group_ranks(
    queries: np.ndarray,
    items: np.ndarray,
    query_group: np.ndarray,
    item_group: np.ndarray,
    chunk: int = CHUNK,
) -> np.ndarray:
    """`first_relevant_rank` for cosine retrieval where an item is relevant to a query of the
    same group, computed a block of queries at a time (memory chunk×N, not Q×N)."""
    out = np.empty(len(queries), np.int64)
    for rows in row_chunks(len(queries), chunk):
        sim = queries[rows] @ items.T
        out[rows] = first_relevant_rank(sim, query_group[rows, None] == item_group[None, :])
    return out


def chance_recall_at_k(n: int, relevant: np.ndarray | Sequence[int], k: int) -> float:
    """Mean recall@K under a random ranking of n items: 1 - C(n-r, K) / C(n, K) per query with
    r relevant items, computed as a product so large n does not overflow."""
    r = np.asarray(relevant, np.float64)
    if not len(r):
        return float("nan")
    k = min(k, n)
    i = np.arange(k, dtype=np.float64)
    miss = np.prod(np.clip((n - r[:, None] - i) / (n - i), 0.0, None), axis=1)
    return float((1.0 - miss).mean())
