"""Metrics on small cases computed by hand, and the chance formula against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from vidray.train import metrics as M


def test_average_precision_by_hand() -> None:
    # positives at ranks 1 and 3: (1/1 + 2/3) / 2
    assert M.average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])) == (
        pytest.approx((1 + 2 / 3) / 2)
    )
    assert M.average_precision(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    assert math.isnan(M.average_precision(np.array([0.1, 0.2]), np.array([0, 0])))


def test_tied_scores_are_one_threshold() -> None:
    # a constant score ranks nothing: AP is the positive rate, whatever the row order
    assert M.average_precision(np.full(4, 0.5), np.array([1, 0, 0, 1])) == 0.5
    assert M.average_precision(np.full(4, 0.5), np.array([0, 0, 1, 1])) == 0.5
    # a tie between a positive and a negative at the top: precision 1/2 at recall 1
    assert M.average_precision(np.array([0.9, 0.9, 0.1]), np.array([1, 0, 0])) == 0.5


def test_mean_ap_leaves_out_labels_without_positives() -> None:
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.5]])
    targets = np.array([[1, 0, 0], [0, 0, 0]], bool)
    ap = M.per_label_ap(scores, targets)
    assert ap[0] == 1.0 and np.isnan(ap[1]) and np.isnan(ap[2])
    assert M.mean_ap(ap) == (1.0, 1)


def test_top_k_accuracy() -> None:
    scores = np.array([[0.1, 0.9, 0.5], [0.8, 0.1, 0.3], [0.3, 0.2, 0.1]])
    targets = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0]], bool)  # last row has no label: left out
    assert M.top_k_accuracy(scores, targets, 1) == 0.5
    assert M.top_k_accuracy(scores, targets, 2) == 0.5
    assert M.top_k_accuracy(scores, targets, 3) == 1.0
    # ties go to the lower column (the vocabulary is most frequent first)
    assert M.top_k_indices(np.array([[1.0, 2.0, 2.0, 1.0]]), 3).tolist() == [[1, 2, 0]]


def test_label_precision_recall_top1_rule() -> None:
    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6]])
    targets = np.array([[1, 0], [0, 1], [0, 1]], bool)
    pr = M.label_precision_recall(scores, targets, k=1)
    # label 0 predicted on rows 0, 1 (right once); label 1 predicted on row 2 (right)
    assert pr["precision"].tolist() == [0.5, 1.0]
    assert pr["recall"].tolist() == [1.0, 0.5]
    assert pr["support"].tolist() == [1, 2] and pr["predicted"].tolist() == [2, 1]
    two = M.label_precision_recall(scores, targets, k=2)
    assert two["recall"].tolist() == [1.0, 1.0]


def test_frequency_baseline_is_a_view() -> None:
    base = M.frequency_scores([3, 1], 1000)
    assert base.shape == (1000, 2) and base.strides[0] == 0
    targets = np.zeros((1000, 2), bool)
    targets[:250, 1] = True
    targets[250:, 0] = True
    assert M.top_k_accuracy(base, targets, 1) == 0.75
    assert M.per_label_ap(base, targets).tolist() == [0.75, 0.25]


def test_micro_pr_curve_ends_at_full_recall() -> None:
    scores = np.array([[0.9, 0.2], [0.4, 0.6]])
    targets = np.array([[1, 0], [0, 1]], bool)
    precision, recall = M.micro_pr_curve(scores, targets, bins=10)
    assert recall[-1] == 1.0 and precision[-1] == 0.5  # lowest threshold: everything predicted
    assert precision[0] == 1.0 and np.all(np.diff(recall) >= 0)


def test_recall_at_k_and_ties() -> None:
    sim = np.array([[0.9, 0.5, 0.1], [0.2, 0.3, 0.9], [0.1, 0.2, 0.3]])
    relevant = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]], bool)
    ranks = M.first_relevant_rank(sim, relevant)
    assert ranks.tolist() == [1, 0, -1]
    assert M.recall_at_k(ranks, (1, 2)) == {1: 0.5, 2: 1.0}
    # an irrelevant item tied with the relevant one is counted ahead of it
    assert M.first_relevant_rank(np.array([[0.5, 0.5]]), np.array([[0, 1]], bool)).tolist() == [1]


def test_precision_at_k() -> None:
    sim = np.array([[0.9, 0.8, 0.1, 0.7]])
    relevant = np.array([[1, 0, 0, 1]], bool)
    assert M.precision_at_k(sim, relevant, 2).tolist() == [0.5]
    assert M.precision_at_k(sim, relevant, 3).tolist() == [pytest.approx(2 / 3)]


def test_group_ranks_in_chunks_match_the_full_matrix() -> None:
    rng = np.random.default_rng(0)
    items = rng.normal(size=(50, 8)).astype(np.float32)
    queries = rng.normal(size=(7, 8)).astype(np.float32)
    item_group, query_group = rng.integers(0, 4, 50), rng.integers(0, 4, 7)
    full = M.first_relevant_rank(queries @ items.T, query_group[:, None] == item_group[None])
    chunked = M.group_ranks(queries, items, query_group, item_group, chunk=3)
    assert chunked.tolist() == full.tolist()


@pytest.mark.parametrize(("n", "r", "k"), [(6, 2, 3), (7, 1, 1), (5, 3, 2), (4, 1, 4), (3, 2, 5)])
def test_chance_recall_matches_brute_force(n: int, r: int, k: int) -> None:
    tops = list(itertools.combinations(range(n), min(k, n)))
    brute = sum(any(i < r for i in top) for top in tops) / len(tops)  # items 0..r-1 relevant
    assert M.chance_recall_at_k(n, [r], k) == pytest.approx(brute)
    assert M.chance_recall_at_k(n, [r], k) == pytest.approx(
        1 - math.comb(n - r, min(k, n)) / math.comb(n, min(k, n))
    )


def test_chance_recall_averages_queries_and_scales() -> None:
    assert M.chance_recall_at_k(10, [1, 10], 1) == pytest.approx((0.1 + 1.0) / 2)
    assert 0 < M.chance_recall_at_k(5_000_000, [3], 10) < 1e-5  # no overflow
