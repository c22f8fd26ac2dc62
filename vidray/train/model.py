"""The image<->word model: a plain-torch CNN, a multi-label word head, and a word embedding."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn


class ImageEncoder(nn.Module):
    """A small ResNet-style CNN trained from scratch: image → embedding."""

    def __init__(self, widths: list[int], embed_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for w in widths:
            layers += [
                nn.Conv2d(cin, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            cin = w
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(cin, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(x).mean(dim=(2, 3)))


class ImageWordModel(pl.LightningModule):
    """Image → word probabilities (multi-label head) and a shared image/word embedding space
    (CLIP-style contrastive loss), so words can also find images."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 128,
        widths: list[int] | None = None,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        contrastive_weight: float = 0.5,
        temperature: float = 0.07,
        epochs: int = 10,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = ImageEncoder(widths or [32, 64, 128, 192], embed_dim)
        self.head = nn.Linear(embed_dim, vocab_size)
        self.word_embedding = nn.Parameter(torch.randn(vocab_size, embed_dim) * 0.02)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised image embeddings, label logits)."""
        z = self.encoder(images)
        return F.normalize(z, dim=-1), self.head(F.relu(z))

    def embed_words(self, weights: torch.Tensor) -> torch.Tensor:
        """A bag of words (a weight per vocabulary entry) → a normalised embedding."""
        bag = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-6)
        return F.normalize(bag @ self.word_embedding, dim=-1)

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, target = batch["image"], batch["target"]
        img, logits = self(images)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        txt = self.embed_words(target)
        sim = img @ txt.T / self.hparams["temperature"]
        # Frames that share labels are not negatives of each other: narration repeats itself.
        shared = ((target > 0).float() @ (target > 0).float().T > 0).float()
        soft = shared / shared.sum(dim=1, keepdim=True)
        nce = (
            -(soft * F.log_softmax(sim, dim=1)).sum(1).mean()
            - (soft.T * F.log_softmax(sim.T, dim=1)).sum(1).mean()
        )
        loss = bce + self.hparams["contrastive_weight"] * nce / 2
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit = (target.gather(1, top5) > 0).any(dim=1).float().mean()
        return {"loss": loss, "bce": bce, "nce": nce, "top5_hit": hit}

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """Random horizontal flip, brightness and a small random shift (cheap, on tensors)."""
        n = images.shape[0]
        flip = torch.rand(n, device=images.device) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        images = images * (1 + 0.2 * (torch.rand(n, 1, 1, 1, device=images.device) - 0.5))
        dx, dy = (int(v) for v in torch.randint(-4, 5, (2,)))
        return torch.roll(images, shifts=(dy, dx), dims=(2, 3))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.losses({**batch, "image": self.augment(batch["image"])})
        self.log_dict(
            {f"train_{k}": v for k, v in out.items()},
            prog_bar=False,
            sync_dist=True,
            batch_size=len(batch["image"]),
        )
        return out["loss"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.losses(batch)
        self.log_dict(
            {f"val_{k}": v for k, v in out.items()}, sync_dist=True, batch_size=len(batch["image"])
        )

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(1, self.hparams["epochs"])
        )
        return {"optimizer": opt, "lr_scheduler": sched}
