"""Training losses: BCE or asymmetric multi-label loss, and MIL-NCE over candidate word bags."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("bce", "asl")
# A finite "minus infinity": a row with nothing left after masking must not give NaN gradients.
_MASKED = -1e9


def asymmetric_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float = 0.05,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al. 2021), mean over all entries like BCE. Soft targets weigh
    the positive term by `target` and the negative term by `1 - target`. With both gammas and
    `clip` at 0 it is BCE."""
    x, y = logits.float(), target.float()
    p = torch.sigmoid(x)
    log_pos = F.logsigmoid(x)
    if clip > 0:
        # Probability shifting: negatives predicted below `clip` cost nothing at all.
        p_neg = (p - clip).clamp_min(0)
        log_neg = torch.log((1 - p_neg).clamp_min(eps))
    else:
        p_neg, log_neg = p, F.logsigmoid(-x)
    pos = y * (1 - p).pow(gamma_pos) * log_pos
    neg = (1 - y) * p_neg.pow(gamma_neg) * log_neg
    return -(pos + neg).mean()


def multilabel_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    kind: str = "bce",
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float = 0.05,
) -> torch.Tensor:
    """The multi-label head's loss, `bce` or `asl`, in float32 (safe under autocast)."""
    check_loss(kind)
    if kind == "asl":
        return asymmetric_loss(logits, target, gamma_neg, gamma_pos, clip)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def check_loss(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"train.loss must be one of {', '.join(LOSSES)}, not {kind!r}")


def shared_words(
    own_ids: torch.Tensor, bag_ids: torch.Tensor, vocab_size: int, min_jaccard: float = 0.5
) -> torch.Tensor:
    """[B, C] bool: is bag c (`bag_ids` [C, L'], -1 padded) about the same thing as frame b's
    own label set (`own_ids` [B, L])? Yes when the two sets overlap by at least `min_jaccard`;
    one shared common word ("look", "now") is not enough, or every frame would be everyone's
    positive."""

    def hot(ids: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(ids.shape[0], vocab_size + 1, device=ids.device)
        out.scatter_(1, torch.where(ids < 0, vocab_size, ids), 1.0)
        out[:, vocab_size] = 0
        return out

    own, bags = hot(own_ids), hot(bag_ids)
    inter = own @ bags.T
    union = own.sum(1, keepdim=True) + bags.sum(1) - inter
    return (inter > 0) & (inter >= min_jaccard * union)


def _nce(logits: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over rows with a positive of -log(sum_pos exp / sum_valid exp)."""
    every = logits.masked_fill(~valid, _MASKED).logsumexp(dim=1)
    good = logits.masked_fill(~pos, _MASKED).logsumexp(dim=1)
    rows = pos.any(dim=1)
    if not bool(rows.any()):
        return logits.sum() * 0
    return (every - good)[rows].mean()


def mil_nce(
    image_emb: torch.Tensor,
    bag_emb: torch.Tensor,
    bag_mask: torch.Tensor,
    temperature: float,
    shared: torch.Tensor | None = None,
) -> torch.Tensor:
    """MIL-NCE (Miech et al. 2020) between images [B, D] and their K candidate word bags
    [B, K, D]; `bag_mask` [B, K] marks the bags present. Image i's positives are its own bags,
    and bags of other rows where `shared` [B, B, K] is true; every other present bag is a
    negative. The text->image direction takes each row's bag 0 against all images. With K=1 and
    no `shared` this is CLIP's symmetric InfoNCE. Embeddings are expected unit-length."""
    img, bags = image_emb.float(), bag_emb.float()
    b, k, d = bags.shape
    # Autocast would run the matmul in half precision: logits / temperature need float32.
    with torch.autocast(device_type=img.device.type, enabled=False):
        sim = img @ bags.reshape(b * k, d).T / temperature  # [B images, B*K bags]
    mask = bag_mask.bool()
    valid = mask.reshape(1, b * k).expand(b, -1)
    pos = torch.eye(b, dtype=torch.bool, device=sim.device).repeat_interleave(k, dim=1)
    if shared is not None:
        pos = pos | shared.reshape(b, b * k).bool()
    pos = pos & valid
    i2t = _nce(sim, pos, valid)
    sim0 = sim.view(b, b, k)[:, :, 0].T  # [B bags, B images]
    pos0 = pos.view(b, b, k)[:, :, 0].T
    t2i = _nce(sim0, pos0 & mask[:, :1], torch.ones_like(pos0))
    return (i2t + t2i) / 2


def top_k_hit(logits: torch.Tensor, target: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Share of rows whose top-k logits include a positive target."""
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (target.gather(1, top) > 0).any(dim=1).float().mean()
