"""Image encoders for training: a ResNet-style CNN from scratch, or a transformers vision tower.

Both take float pixels in [0, 1] ([B, 3, H, W]) and normalise them themselves, so images
travel to the device as uint8. A pretrained tower (CLIP, SigLIP, DINOv2 or ViT, by hub name or
local folder) is loaded with the frame embedder's loader; what rebuilds it offline (its
config, the processor's mean, std and input size) is kept as a JSON-able `encoder_config`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidray.stages.embed import FAMILIES, _load_tower, affine, pixel_recipe

CNN = "cnn"
VIT = "vit"
SUPPORTED = (*FAMILIES, VIT)
INSTALL_HINT = (
    "a pretrained train.encoder needs transformers: `pip install -c constraints.txt '.[embed]'`"
)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a residual shortcut (ResNet-18's block)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        # Each block starts as the identity: deep from-scratch nets train more steadily.
        nn.init.zeros_(self.bn2.weight)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """A small ResNet trained from scratch: a 3x3 stem, then per width a stride-2 block and a
    plain block, global average pooling and a linear map to `embed_dim`."""

    def __init__(self, widths: list[int], embed_dim: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        cin = widths[0]
        for w in widths:
            blocks += [BasicBlock(cin, w, stride=2), BasicBlock(w, w)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.proj = nn.Linear(cin, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - 0.5) / 0.25
        return self.proj(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def family(model_type: str | None) -> str:
    """`clip`, `siglip`, `dinov2` or `vit` for a checkpoint's `model_type`."""
    if model_type == VIT:
        return VIT
    if model_type not in FAMILIES:
        raise ValueError(
            f"train.encoder has model_type {model_type!r}, which training does not support; "
            f"supported: {', '.join(SUPPORTED)}"
        )
    return FAMILIES[model_type]


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ValueError(INSTALL_HINT) from exc
    return transformers


def _hw(size: Any) -> list[int] | None:
    if isinstance(size, dict):
        if "height" in size and "width" in size:
            return [int(size["height"]), int(size["width"])]
        if "shortest_edge" in size:
            return [int(size["shortest_edge"])] * 2
    return None


def pixel_stats(processor: Any, image_size: int) -> dict[str, Any]:
    """The processor's normalisation as mean and std on [0, 1] pixels, and the (height, width)
    the tower takes; `image_size` (the tower config's) when the processor does not say."""
    recipe = pixel_recipe(processor)
    if recipe is not None:
        gain, offset = affine(recipe)  # pixel = uint8 * gain - offset
        std = [1 / (255 * g) for g in gain]
        mean = [o * s for o, s in zip(offset, std, strict=True)]
        short = recipe.shortest_edge
        size = recipe.crop or recipe.size or ((short, short) if short else None)
        return {"mean": mean, "std": std, "size": list(size or (image_size, image_size))}
    p = processor
    k = 255 * (p.rescale_factor if getattr(p, "do_rescale", True) else 1.0)
    normalise = getattr(p, "do_normalize", True)
    crop = _hw(p.crop_size) if getattr(p, "do_center_crop", False) else None
    return {
        "mean": [m / k for m in p.image_mean] if normalise else [0.0] * 3,
        "std": [s / k for s in p.image_std] if normalise else [1 / k] * 3,
        "size": crop or _hw(getattr(p, "size", None)) or [image_size, image_size],
    }


def _load_vit(transformers: Any, name: str) -> Any:
    quiet = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # a classifier's unused head: expected
    try:
        tower, info = transformers.ViTModel.from_pretrained(
            name, add_pooling_layer=False, output_loading_info=True
        )
    finally:
        transformers.logging.set_verbosity(quiet)
    missing = [k for k in info["missing_keys"] if "mask_token" not in k]
    if missing:
        raise ValueError(f"train.encoder {name!r} lacks ViT weights ({', '.join(missing[:5])})")
    return tower


def load_backbone(name: str) -> tuple[nn.Module, dict[str, Any]]:
    """A pretrained vision tower by hub name or folder, and the `encoder_config` that rebuilds
    it offline. An unloadable or unsupported model raises ValueError naming `train.encoder`."""
    transformers = _transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(name)
        kind = family(getattr(config, "model_type", None))
        processor = transformers.AutoImageProcessor.from_pretrained(name, use_fast=False)
        if kind == VIT:
            tower = _load_vit(transformers, name)
        else:
            tower = _load_tower(transformers, name, config, kind)
    except (OSError, ValueError, RuntimeError) as exc:  # ConfigError is a ValueError
        raise ValueError(f"cannot load train.encoder {name!r}: {exc}") from exc
    stats = pixel_stats(processor, int(tower.config.image_size))
    return tower.float(), {"model_config": tower.config.to_dict(), **stats}


def build_backbone(encoder_config: dict[str, Any]) -> nn.Module:
    """The tower that `encoder_config` describes, with random weights, built without the hub
    (load a state dict into it)."""
    transformers = _transformers()
    config = transformers.AutoConfig.for_model(**encoder_config["model_config"])
    kind = family(config.model_type)
    if kind == "clip":
        tower = transformers.CLIPVisionModelWithProjection._from_config(config)
    elif kind == "siglip":
        tower = transformers.SiglipVisionModel._from_config(config)
    elif kind == "dinov2":
        tower = transformers.Dinov2Model._from_config(config)
    else:
        tower = transformers.ViTModel._from_config(config, add_pooling_layer=False)
    return tower.float()


def _width(config: Any) -> int:
    if config.model_type.startswith("clip"):
        return int(config.projection_dim)
    return int(config.hidden_size)


class PretrainedEncoder(nn.Module):
    """A transformers vision tower, its pooled output projected to `embed_dim`. A frozen tower
    takes no gradient and stays in eval mode (its dropout and norms never change)."""

    backbone: Any  # a transformers PreTrainedModel: it has a `config`
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, backbone: Any, encoder_config: dict[str, Any], embed_dim: int, freeze: bool
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.family = family(backbone.config.model_type)
        self.frozen = freeze
        self.size = (int(encoder_config["size"][0]), int(encoder_config["size"][1]))
        mean = torch.tensor(encoder_config["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(encoder_config["std"], dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.proj = nn.Linear(_width(backbone.config), embed_dim)
        if freeze:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> PretrainedEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True)
        x = (x - self.mean) / self.std
        out = self.backbone(pixel_values=x)
        if self.family == "clip":
            pooled = out.image_embeds
        elif self.family == VIT:
            pooled = out.last_hidden_state[:, 0]  # the CLS token, after the final layer norm
        else:
            pooled = out.pooler_output
        return self.proj(pooled)


def make_encoder(
    encoder: str,
    widths: list[int],
    embed_dim: int,
    freeze: bool = False,
    encoder_config: dict[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any] | None]:
    """(encoder, its `encoder_config`): the CNN for `cnn` (config None), else a pretrained
    tower, rebuilt from `encoder_config` when given (offline) or loaded from `encoder`."""
    if encoder == CNN:
        if freeze:
            raise ValueError("train.freeze_encoder needs a pretrained train.encoder, not 'cnn'")
        return ResNetEncoder(widths, embed_dim), None
    if encoder_config is not None:
        backbone = build_backbone(encoder_config)
    else:
        backbone, encoder_config = load_backbone(encoder)
    return PretrainedEncoder(backbone, encoder_config, embed_dim, freeze), encoder_config
