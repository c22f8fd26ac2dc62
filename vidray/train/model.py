"""The image<->word model: an image encoder, a multi-label word head and a word embedding bag.

The LightningModule is thin: encoders, losses and augmentation live in their own modules, and
nothing here knows about Ray. Mixed precision and gradient accumulation are Trainer settings;
the losses are computed in float32, so they are safe under autocast.
"""

from __future__ import annotations

import copy
import math
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from vidray.train.augment import augment
from vidray.train.encoders import PretrainedEncoder, make_encoder
from vidray.train.losses import check_loss, mil_nce, multilabel_loss, shared_words, top_k_hit

DEFAULT_WIDTHS = [32, 64, 128, 192]

Batch = dict[str, torch.Tensor]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """The LR multiplier at optimizer step `step`: linear warmup to 1 over `warmup_steps`, then
    cosine decay to 0 at `total_steps` (and 0 after)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class ImageWordModel(pl.LightningModule):
    """Image -> word probabilities (multi-label head) and a shared image/word embedding space
    (MIL-NCE contrastive loss against the frame's and its neighbours' word bags)."""

    def __init__(
        self,
        *,
        vocab_size: int,
        encoder: str = "cnn",
        widths: list[int] | None = None,
        freeze_encoder: bool = False,
        encoder_config: dict[str, Any] | None = None,
        embed_dim: int = 128,
        loss: str = "bce",
        asl_gamma_neg: float = 4.0,
        asl_gamma_pos: float = 0.0,
        asl_clip: float = 0.05,
        contrastive_weight: float = 0.5,
        temperature: float = 0.07,
        lr: float = 3e-3,
        encoder_lr_scale: float = 0.1,
        weight_decay: float = 1e-4,
        warmup_steps: int = 0,
        total_steps: int = 1000,
        augment: bool = True,
    ) -> None:
        super().__init__()
        check_loss(loss)
        widths = list(widths or DEFAULT_WIDTHS)
        self.save_hyperparameters()
        self.hparams["widths"] = widths
        self.encoder, found = make_encoder(
            encoder, widths, embed_dim, freeze_encoder, encoder_config
        )
        # Stored, the tower's config makes Lightning's own checkpoints rebuild offline too.
        self.hparams["encoder_config"] = found
        self.head = nn.Linear(embed_dim, vocab_size)
        # Row `vocab_size` is padding (index -1 in bags): it embeds to nothing.
        self.words = nn.EmbeddingBag(vocab_size + 1, embed_dim, mode="sum", padding_idx=vocab_size)
        nn.init.normal_(self.words.weight[:vocab_size], std=0.02)

    @property
    def pretrained(self) -> bool:
        return isinstance(self.encoder, PretrainedEncoder)

    def export_args(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this architecture offline (a pretrained tower from its
        stored config, with random weights until `load_state_dict`)."""
        return copy.deepcopy(dict(self.hparams))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (or float in [0, 255]) images [B, 3, S, S] -> (unit-length embeddings [B, D],
        label logits [B, V]), both float32."""
        z = self.encoder(images.float() / 255)
        return F.normalize(z.float(), dim=-1), self.head(z).float()

    def embed_bags(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Bags of vocabulary ids [N, L] (-1 padded) with a weight each -> unit-length [N, D]:
        the weighted mean of word vectors. An empty bag gives a zero vector."""
        pad = self.hparams["vocab_size"]
        idx = torch.where(ids < 0, pad, ids)
        w = torch.where(ids < 0, 0, weights).to(self.words.weight.dtype)
        total = self.words(idx, per_sample_weights=w)
        return F.normalize(total / w.sum(-1, keepdim=True).clamp_min(1e-6), dim=-1)

    def embed_words(self, weights: torch.Tensor) -> torch.Tensor:
        """A dense weight per vocabulary word [N, V] -> unit-length [N, D], as `embed_bags`."""
        w = weights.to(self.words.weight.dtype)
        total = w @ self.words.weight[: w.shape[-1]]
        return F.normalize(total / w.sum(-1, keepdim=True).clamp_min(1e-6), dim=-1)

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Multi-label loss + weighted MIL-NCE, and the top-5 hit rate, for one batch."""
        hp = self.hparams
        emb, logits = self(batch["image"])
        target = batch["target"].float()
        multilabel = multilabel_loss(
            logits, target, hp["loss"], hp["asl_gamma_neg"], hp["asl_gamma_pos"], hp["asl_clip"]
        )
        bags, bag_weights = batch["bags"].long(), batch["bag_weights"]
        b, k, n = bags.shape
        flat = bags.reshape(b * k, n)
        bag_emb = self.embed_bags(flat, bag_weights.reshape(b * k, n)).view(b, k, -1)
        # Narration repeats itself: a bag sharing a word with a frame's own labels is one of
        # its positives, never a negative pushed away.
        shared = shared_words(bags[:, 0], flat, hp["vocab_size"]).view(b, b, k)
        mask = (bags >= 0).any(dim=-1)
        contrastive = mil_nce(emb, bag_emb, mask, hp["temperature"], shared)
        return {
            "loss": multilabel + hp["contrastive_weight"] * contrastive,
            "multilabel": multilabel,
            "contrastive": contrastive,
            "top5_hit": top_k_hit(logits.detach(), target),
        }

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        if self.hparams["augment"]:
            batch = {**batch, "image": augment(batch["image"].float() / 255) * 255}
        out = self.losses(batch)
        self._log("train", out, len(batch["image"]))
        return out["loss"]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._log("val", self.losses(batch), len(batch["image"]))

    def _log(self, split: str, out: dict[str, torch.Tensor], size: int) -> None:
        metrics = {f"{split}_{k}": v.detach() for k, v in out.items()}
        self.log_dict(metrics, sync_dist=True, batch_size=size)

    def param_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters in AdamW groups: a fine-tuned pretrained tower at
        lr * encoder_lr_scale; biases and norm scales without weight decay."""
        hp = self.hparams
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for name, p in self.named_parameters():
            if p.requires_grad:
                tower = self.pretrained and name.startswith("encoder.backbone.")
                groups.setdefault((tower, p.ndim >= 2), []).append(p)
        return [
            {
                "params": params,
                "lr": hp["lr"] * (hp["encoder_lr_scale"] if tower else 1.0),
                "weight_decay": hp["weight_decay"] if decay else 0.0,
            }
            for (tower, decay), params in sorted(groups.items())
        ]

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = torch.optim.AdamW(self.param_groups(), lr=hp["lr"])
        schedule = partial(
            warmup_cosine, warmup_steps=hp["warmup_steps"], total_steps=hp["total_steps"]
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
