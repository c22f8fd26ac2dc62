"""Tiny, randomly initialised image encoders in the real Hugging Face formats, built offline.

Each builder saves a model with `save_pretrained` (config.json + safetensors) and its image
processor (preprocessor_config.json) into a folder, so the frame embedder's real loading code
runs on it. Outputs are meaningless; tests assert shapes and plumbing. A folder that already
holds a model is reused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# Tiny sizes shared by every builder: 32x32 images in 8x8 patches, width 32, two layers.
_TINY: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}
_TINY_TEXT: dict[str, Any] = {
    "vocab_size": 99,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_position_embeddings": 16,
}


def _build(folder: str | Path, seed: int, make: Callable[[], tuple[Any, Any]]) -> Path:
    """`make()` → (model, image processor), saved into `folder` unless a model is there."""
    import torch

    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(seed)
    model, processor = make()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _clip_processor(size: int) -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )


def _siglip_processor(size: int) -> Any:
    from transformers import SiglipImageProcessor

    return SiglipImageProcessor(size={"height": size, "width": size})


def tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """A full `CLIPModel` (text and image towers, projection 16) with its `CLIPImageProcessor`."""
    from transformers import CLIPConfig, CLIPModel

    def make() -> tuple[Any, Any]:
        # The tower's own projection_dim stays at its default (512), as in some real
        # checkpoints: the loader must take the joint space's width from the top level.
        config = CLIPConfig(text_config=_TINY_TEXT, vision_config=_TINY, projection_dim=16)
        return CLIPModel(config), _clip_processor(32)

    return _build(folder, seed, make)


def tiny_clip_vision(folder: str | Path, seed: int = 0) -> Path:
    """A `CLIPVisionModelWithProjection` alone (model_type clip_vision_model), projection 16."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    def make() -> tuple[Any, Any]:
        config = CLIPVisionConfig(**_TINY, projection_dim=16)
        return CLIPVisionModelWithProjection(config), _clip_processor(32)

    return _build(folder, seed, make)


def tiny_siglip(folder: str | Path, seed: int = 0) -> Path:
    """A full `SiglipModel` with its `SiglipImageProcessor` (32x32, no crop)."""
    from transformers import SiglipConfig, SiglipModel

    def make() -> tuple[Any, Any]:
        config = SiglipConfig(text_config=_TINY_TEXT, vision_config=_TINY)
        return SiglipModel(config), _siglip_processor(32)

    return _build(folder, seed, make)


def tiny_siglip_vision(folder: str | Path, seed: int = 0) -> Path:
    """A `SiglipVisionModel` alone (model_type siglip_vision_model)."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    def make() -> tuple[Any, Any]:
        return SiglipVisionModel(SiglipVisionConfig(**_TINY)), _siglip_processor(32)

    return _build(folder, seed, make)


def tiny_dinov2(folder: str | Path, seed: int = 0) -> Path:
    """A `Dinov2Model` with DINOv2's `BitImageProcessor` layout (shortest edge, centre crop,
    bicubic, ImageNet mean and std), at 32x32."""
    from PIL import Image
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    def make() -> tuple[Any, Any]:
        sizes = {k: v for k, v in _TINY.items() if k != "intermediate_size"}
        processor = BitImageProcessor(
            size={"shortest_edge": 32},
            crop_size={"height": 32, "width": 32},
            resample=Image.Resampling.BICUBIC,
            image_mean=IMAGENET_MEAN,
            image_std=IMAGENET_STD,
        )
        return Dinov2Model(Dinov2Config(**sizes, mlp_ratio=2)), processor

    return _build(folder, seed, make)


def clip_vit_b16_vision(folder: str | Path, seed: int = 0) -> Path:
    """The image tower of openai/clip-vit-base-patch16 (ViT-B/16 at 224 px, 86M parameters,
    projection 512) with random weights and CLIP's preprocessing: a mid-size model for
    benchmarks (~350 MB on disk)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    def make() -> tuple[Any, Any]:
        config = CLIPVisionConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=224,
            patch_size=16,
            projection_dim=512,
            hidden_act="quick_gelu",
        )
        return CLIPVisionModelWithProjection(config), _clip_processor(224)

    return _build(folder, seed, make)


# model_type → builder of a tiny model of that type
TINY_MODELS: dict[str, Callable[..., Path]] = {
    "clip": tiny_clip,
    "clip_vision_model": tiny_clip_vision,
    "siglip": tiny_siglip,
    "siglip_vision_model": tiny_siglip_vision,
    "dinov2": tiny_dinov2,
}
