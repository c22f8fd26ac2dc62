import pytest
import torch
import torch.nn.functional as F

from vidray.train.losses import (
    asymmetric_loss,
    mil_nce,
    multilabel_loss,
    shared_words,
    top_k_hit,
)


def _unit(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


def test_asl_without_focusing_or_clip_is_bce() -> None:
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)) * 3
    target = torch.rand(6, 5, generator=torch.Generator().manual_seed(1))  # soft targets
    asl = asymmetric_loss(logits, target, gamma_neg=0, gamma_pos=0, clip=0)
    torch.testing.assert_close(asl, F.binary_cross_entropy_with_logits(logits, target))
    torch.testing.assert_close(multilabel_loss(logits, target, "bce"), asl)


def test_asl_down_weights_easy_negatives() -> None:
    easy, hard = torch.tensor([[-3.0]]), torch.tensor([[2.0]])
    zero = torch.zeros(1, 1)
    bce_ratio = F.binary_cross_entropy_with_logits(easy, zero) / F.binary_cross_entropy_with_logits(
        hard, zero
    )
    asl_ratio = asymmetric_loss(easy, zero, 4, 0, 0) / asymmetric_loss(hard, zero, 4, 0, 0)
    assert asl_ratio < bce_ratio / 10
    # Probability shifting: a negative below the clip costs nothing at all.
    assert asymmetric_loss(torch.tensor([[-5.0]]), zero, 4, 0, 0.05) == 0
    # Positives are not down-weighted with gamma_pos = 0.
    one = torch.ones(1, 1)
    torch.testing.assert_close(
        asymmetric_loss(easy, one, 4, 0, 0.05), F.binary_cross_entropy_with_logits(easy, one)
    )


def test_asl_soft_targets_mix_both_terms() -> None:
    x, half = torch.tensor([[0.7]]), torch.full((1, 1), 0.5)
    pos = asymmetric_loss(x, torch.ones(1, 1), 2, 1, 0.05)
    neg = asymmetric_loss(x, torch.zeros(1, 1), 2, 1, 0.05)
    torch.testing.assert_close(asymmetric_loss(x, half, 2, 1, 0.05), (pos + neg) / 2)


def test_unknown_loss_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"train\.loss"):
        multilabel_loss(torch.zeros(1, 2), torch.zeros(1, 2), "focal")


def test_mil_nce_with_one_bag_is_infonce() -> None:
    img, txt = _unit(4, 8), _unit(4, 8, seed=1)
    t = 0.1
    sim = img @ txt.T / t
    labels = torch.arange(4)
    by_hand = (F.cross_entropy(sim, labels) + F.cross_entropy(sim.T, labels)) / 2
    got = mil_nce(img, txt[:, None], torch.ones(4, 1, dtype=torch.bool), t)
    torch.testing.assert_close(got, by_hand)


def test_mil_nce_rewards_a_matching_candidate() -> None:
    img = _unit(4, 64)
    own = _unit(4, 64, seed=1)
    unrelated = _unit(4, 2, 64, seed=2)
    mask = torch.ones(4, 3, dtype=torch.bool)
    none = mil_nce(img, torch.cat([own[:, None], unrelated], 1), mask, 0.1)
    matching = torch.cat([own[:, None], img[:, None], unrelated[:, :1]], 1)
    assert mil_nce(img, matching, mask, 0.1) < none - 0.4


def test_mil_nce_ignores_absent_bags() -> None:
    img, bags = _unit(4, 8), _unit(4, 3, 8, seed=1)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 1]], dtype=torch.bool)
    base = mil_nce(img, bags, mask, 0.1)
    noise = _unit(4, 3, 8, seed=9)
    changed = torch.where(mask[..., None], bags, noise)
    torch.testing.assert_close(mil_nce(img, changed, mask, 0.1), base)
    zeros = torch.where(mask[..., None], bags, torch.zeros_like(bags))
    torch.testing.assert_close(mil_nce(img, zeros, mask, 0.1), base)


def test_mil_nce_no_nan_gradient_for_a_frame_without_bags() -> None:
    img = _unit(3, 8).requires_grad_()
    bags = _unit(3, 2, 8, seed=1)
    mask = torch.tensor([[1, 1], [0, 0], [1, 0]], dtype=torch.bool)
    loss = mil_nce(img, bags, mask, 0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(img.grad).all()  # type: ignore[arg-type]


def test_bags_about_the_same_thing_are_positives_not_negatives() -> None:
    own = torch.tensor([[0, 1, -1], [0, 1, 2], [2, 3, -1]])
    bags = torch.tensor([[0, 1, -1], [1, 2, 3], [3, -1, -1], [-1, -1, -1]])
    hit = shared_words(own, bags, vocab_size=4)
    # Jaccard: {0,1}~{0,1} = 1; {0,1,2}~{0,1} = 2/3, ~{1,2,3} = 1/2; {2,3}~{1,2,3} = 2/3,
    # ~{3} = 1/2; one common word alone ({0,1}~{1,2,3} = 1/4) is not enough.
    assert hit.tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [False, True, True, False],
    ]
    # Rows 0 and 1 overlap enough: with that marked, they stop pushing each other apart.
    img, txt = _unit(2, 8), _unit(2, 8, seed=1)
    mask = torch.ones(2, 1, dtype=torch.bool)
    shared = shared_words(own[:2], own[:2], 4).view(2, 2, 1)
    assert shared.all()
    assert mil_nce(img, txt[:, None], mask, 0.1, shared) < mil_nce(img, txt[:, None], mask, 0.1)


def test_top_k_hit() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    target = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.5, 0.0]])
    assert top_k_hit(logits, target, k=1) == 0
    assert top_k_hit(logits, target, k=2) == 0.5
