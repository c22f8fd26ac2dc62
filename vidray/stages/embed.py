"""Embed: every frame → a unit-length image embedding from a CLIP, SigLIP or DINOv2 vision model.

`embed.model` is a transformers hub name or a local folder holding a checkpoint and its image
processor. The class comes from the checkpoint's `model_type`; a full CLIP or SigLIP checkpoint
loads its image tower only. The embedding is CLIP's projected `image_embeds`, SigLIP's
attention-pooled `pooler_output`, or DINOv2's CLS token (`pooler_output`), L2-normalised and
stored on each frame as `embedding` (float16).

Frames of all the videos in a Ray batch go through the model together, `embed.batch_size` at a
time; JPEGs are decoded one pass at a time, so memory holds one pass of pixels, not a whole
video. An undecodable frame fails its video; a failing pass is retried video by video, so only
the video that breaks it fails.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vidray import devices
from vidray.config import ConfigError, EmbedConfig
from vidray.stages.base import Batch, Row, Stage, VideoError, failed, rows_to_table, to_rows

log = logging.getLogger(__name__)

# model_type → family: which class loads it and which output is the embedding.
FAMILIES = {
    "clip": "clip",
    "clip_vision_model": "clip",
    "siglip": "siglip",
    "siglip_vision_model": "siglip",
    "dinov2": "dinov2",
}
DTYPES = ("auto", "float16", "bfloat16", "float32")
INSTALL_HINT = (
    "the frame embedder (build.embed) needs transformers: "
    "`pip install -c constraints.txt '.[embed]'`"
)
# owner/name or name: what a Hugging Face repo id looks like (a path has more slashes or a dot
# or tilde at its start).
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")

Images = Sequence[Any]  # PIL images
EmbedFn = Callable[[Images], np.ndarray]


def model_family(model_type: str | None) -> str:
    """`clip`, `siglip` or `dinov2` for a checkpoint's `model_type`; anything else is a job
    error that names the supported types."""
    if model_type not in FAMILIES:
        raise ConfigError(
            f"embed.model has model_type {model_type!r}, which the frame embedder does not "
            f"support; supported: {', '.join(FAMILIES)}"
        )
    return FAMILIES[model_type]


def resolve_device(device: str, dtype: str, cuda_available: bool) -> tuple[str, str]:
    """`auto` settings → (device, dtype): CUDA with float16 when there is one, else CPU with
    float32."""
    if dtype not in DTYPES:
        raise ConfigError(f"embed.dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    return devices.resolve_device(
        device, dtype, cuda_available, key="embed", cpu_precision="float32"
    )


def _offline() -> bool:
    flags = (os.environ.get(k, "") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _config_file(model: str) -> Path | None:
    """The checkpoint's config.json if it can be found without the network: in a local folder
    or the Hugging Face cache. None for a hub name that is not cached (it may download)."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ConfigError(f"embed.model folder {model!r} holds no config.json")
        return folder / "config.json"
    if folder.exists() or not _HUB_NAME.fullmatch(model):
        raise ConfigError(f"embed.model {model!r} is neither a model folder nor a hub name")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    cached = try_to_load_from_cache(model, "config.json")
    if isinstance(cached, str):
        return Path(cached)
    if _offline():
        raise ConfigError(
            f"embed.model {model!r} is not a folder, and the hub is offline (HF_HUB_OFFLINE / "
            "TRANSFORMERS_OFFLINE) with no cached copy: give a local folder or go online"
        )
    return None


def check_config(cfg: EmbedConfig) -> None:
    """Settings that can never work are job errors, found on the driver without loading the
    model: no or a missing model, an unsupported model type, bad device/dtype/batch size."""
    if not cfg.enabled:
        return
    if not cfg.model:
        raise ConfigError("embed.enabled is true but embed.model is not set")
    resolve_device(cfg.device, cfg.dtype, cuda_available=True)  # the device is checked at load
    if cfg.batch_size < 1:
        raise ConfigError(f"embed.batch_size must be >= 1, got {cfg.batch_size}")
    if importlib.util.find_spec("transformers") is None:
        raise ConfigError(INSTALL_HINT)
    found = _config_file(cfg.model)
    if found is not None:
        try:
            model_type = json.loads(found.read_text()).get("model_type")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"embed.model {cfg.model!r}: unreadable config.json: {exc}") from exc
        model_family(model_type)


def batches(counts: Sequence[int], size: int) -> Iterator[list[tuple[int, int]]]:
    """(row, frame) index pairs of rows with `counts[row]` frames, in runs of `size` that
    cross row boundaries (the last run may be shorter)."""
    run: list[tuple[int, int]] = []
    for i, n in enumerate(counts):
        for j in range(n):
            run.append((i, j))
            if len(run) == size:
                yield run
                run = []
    if run:
        yield run


def unit_rows(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Each row scaled to unit L2 length (a zero row stays zero), as float16. Non-finite
    values (e.g. a float16 overflow on the GPU) raise, so the frames' videos fail rather than
    carry vectors that match nothing."""
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("the model returned non-finite embeddings")
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, eps)).astype(np.float16)


def decode_image(jpeg: bytes | None, what: str = "a frame") -> Any:
    """JPEG bytes → an RGB PIL image, fully decoded (a truncated file fails here)."""
    from PIL import Image

    if not jpeg:
        raise VideoError("corrupt_frame", f"{what} has no image bytes")
    try:
        with Image.open(io.BytesIO(jpeg)) as img:
            return img.convert("RGB")
    except Exception as exc:
        reason = str(exc).split(" <_io.")[0]  # PIL names the BytesIO object: noise in a table
        raise VideoError("corrupt_frame", f"cannot decode {what}: {reason}") from exc


def embed_rows(rows: list[Row], embed: EmbedFn, batch_size: int, stage: str = "embed") -> list[Row]:
    """Rows whose frames carry an `embedding`; their frames are embedded across rows in passes
    of `batch_size`. A row that fails (bad JPEG, a pass that fails on its frames alone) comes
    back marked failed at `stage`; rows already failed pass through."""
    counts = [0 if row.get("error") else len(row.get("frames") or []) for row in rows]
    vectors: list[list[np.ndarray | None]] = [[None] * n for n in counts]
    errors: dict[int, Exception] = {}
    for run in batches(counts, batch_size):
        items = []
        for i, j in run:
            if i not in errors:
                try:
                    frame = rows[i]["frames"][j]
                    what = f"the frame at {frame.get('frame_ts', j)} s"
                    items.append(((i, j), decode_image(frame.get("image"), what)))
                except Exception as exc:
                    errors[i] = exc
        items = [item for item in items if item[0][0] not in errors]
        for (i, j), vec in _embed_isolated(embed, items, errors):
            vectors[i][j] = vec
    out = []
    for i, row in enumerate(rows):
        if i in errors:
            out.append(failed(row, stage, errors[i]))
        elif counts[i]:
            frames = [{**f, "embedding": v} for f, v in zip(row["frames"], vectors[i], strict=True)]
            out.append({**row, "frames": frames})
        else:
            out.append(row)
    return out


def _embed_isolated(
    embed: EmbedFn, items: list[tuple[tuple[int, int], Any]], errors: dict[int, Exception]
) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """Embed all items in one pass; if that fails, row by row, so a row that breaks the pass
    fails alone (recorded in `errors`)."""
    if not items:
        return
    try:
        found = unit_rows(embed([img for _, img in items]))
        yield from zip((k for k, _ in items), found, strict=True)
        return
    except Exception as exc:
        if len({i for (i, _), _ in items}) == 1:
            errors[items[0][0][0]] = exc
            return
        log.warning("embedding %d frames failed (%s); retrying video by video", len(items), exc)
    for row in dict.fromkeys(i for (i, _), _ in items):
        mine = [(k, img) for k, img in items if k[0] == row]
        try:
            yield from zip(
                (k for k, _ in mine), unit_rows(embed([img for _, img in mine])), strict=True
            )
        except Exception as exc:
            errors[row] = exc


@dataclass(frozen=True)
class PixelRecipe:
    """What a CLIP, SigLIP or DINOv2 image processor does to a picture: resize (PIL, the same
    filter on the same uint8 pixels, so identical), centre crop, rescale and normalise."""

    shortest_edge: int | None = None  # resize so the short side is this...
    size: tuple[int, int] | None = None  # ...or to exactly (height, width)
    crop: tuple[int, int] | None = None  # (height, width) from the centre
    resample: int = 3
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


_RECIPE_PROCESSORS = ("CLIPImageProcessor", "SiglipImageProcessor", "BitImageProcessor")


def pixel_recipe(processor: Any) -> PixelRecipe | None:
    """The recipe of an image processor whose steps are known; None for anything else (then
    the processor itself runs)."""
    if type(processor).__name__ not in _RECIPE_PROCESSORS:
        return None
    p = processor
    shortest = size = crop = None
    if p.do_resize:
        if set(p.size) == {"shortest_edge"}:
            shortest = int(p.size["shortest_edge"])
        elif set(p.size) == {"height", "width"}:
            size = (int(p.size["height"]), int(p.size["width"]))
        else:
            return None
    if getattr(p, "do_center_crop", False):
        crop = (int(p.crop_size["height"]), int(p.crop_size["width"]))
        room = (shortest, shortest) if shortest else size
        if room is None or crop[0] > room[0] or crop[1] > room[1]:
            return None  # the processor would pad: leave it to the processor
    return PixelRecipe(
        shortest_edge=shortest,
        size=size,
        crop=crop,
        resample=int(p.resample),
        scale=float(p.rescale_factor) if p.do_rescale else None,
        mean=tuple(p.image_mean) if p.do_normalize else None,
        std=tuple(p.image_std) if p.do_normalize else None,
    )


def resized(width: int, height: int, recipe: PixelRecipe) -> tuple[int, int]:
    """(width, height) after the recipe's resize, rounded as transformers rounds it."""
    if recipe.size:
        return recipe.size[1], recipe.size[0]
    if recipe.shortest_edge:
        s = recipe.shortest_edge
        if width <= height:
            return s, int(s * height / width)
        return int(s * width / height), s
    return width, height


def prepare(image: Any, recipe: PixelRecipe) -> np.ndarray:
    """An RGB PIL image → resized, centre-cropped uint8 pixels (height, width, 3)."""
    size = resized(image.width, image.height, recipe)
    if size != image.size:
        image = image.resize(size, resample=recipe.resample)
    pixels = np.asarray(image)
    if recipe.crop:
        (ch, cw), (h, w) = recipe.crop, pixels.shape[:2]
        top, left = (h - ch) // 2, (w - cw) // 2
        pixels = pixels[top : top + ch, left : left + cw]
    return pixels


def affine(recipe: PixelRecipe) -> tuple[list[float], list[float]]:
    """Per-channel (gain, offset) with pixel_value = uint8 * gain - offset: rescale and
    normalise folded together."""
    scale = recipe.scale if recipe.scale is not None else 1.0
    mean = recipe.mean if recipe.mean is not None else (0.0, 0.0, 0.0)
    std = recipe.std if recipe.std is not None else (1.0, 1.0, 1.0)
    return [scale / s for s in std], [m / s for m, s in zip(mean, std, strict=True)]


class VisionEncoder:
    """A transformers image encoder and its image processor: PIL images → embeddings."""

    def __init__(self, cfg: EmbedConfig) -> None:
        try:
            import torch
            import transformers
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(INSTALL_HINT) from exc
        check_config(cfg)
        assert cfg.model is not None
        self.torch = torch
        device, dtype = resolve_device(cfg.device, cfg.dtype, torch.cuda.is_available())
        self.device, self.dtype = torch.device(device), getattr(torch, dtype)
        try:
            config = transformers.AutoConfig.from_pretrained(cfg.model)
            self.family = model_family(getattr(config, "model_type", None))
            self.processor = transformers.AutoImageProcessor.from_pretrained(
                cfg.model, use_fast=False
            )
            model = _load_tower(transformers, cfg.model, config, self.family)
        except ConfigError:
            raise
        except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: weights of other shapes
            raise ConfigError(f"cannot load embed.model {cfg.model!r}: {exc}") from exc
        self.model = model.to(self.device, self.dtype).eval().requires_grad_(False)
        self.model_name = cfg.model
        self.recipe = pixel_recipe(self.processor)
        if self.recipe:
            gain, offset = affine(self.recipe)
            self.gain = torch.tensor(gain, device=self.device).view(1, -1, 1, 1)
            self.offset = torch.tensor(offset, device=self.device).view(1, -1, 1, 1)

    def pixels(self, images: Images) -> Any:
        """The model's `pixel_values` on its device: uint8 pixels go over, the arithmetic runs
        there (the processor's own numpy arithmetic costs more than a small model on a GPU)."""
        torch, recipe = self.torch, self.recipe
        if recipe is None:
            found = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
            return found.to(self.device, self.dtype)
        batch = torch.from_numpy(np.stack([prepare(im, recipe) for im in images]))
        x = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().contiguous()
        # (x * scale - mean) / std as one multiply and one subtract, in place
        x.mul_(self.gain).sub_(self.offset)
        return x.to(self.dtype)

    def __call__(self, images: Images) -> np.ndarray:
        """PIL images → (n, dim) float32 embeddings, not yet normalised."""
        with self.torch.inference_mode():
            out = self.model(pixel_values=self.pixels(images))
            emb = out.image_embeds if self.family == "clip" else out.pooler_output
            return emb.float().cpu().numpy()


def _load_tower(transformers: Any, model: str, config: Any, family: str) -> Any:
    """The image tower alone; text weights of a full CLIP/SigLIP checkpoint are never loaded."""
    if family == "clip":
        cls = transformers.CLIPVisionModelWithProjection
        if config.model_type == "clip":
            vision = config.vision_config
            vision.projection_dim = config.projection_dim  # the tower's own may be a default
            config = vision
    elif family == "siglip":
        cls = transformers.SiglipVisionModel
        if config.model_type == "siglip":
            config = config.vision_config
    else:
        cls = transformers.Dinov2Model
    quiet = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "unused text weights": expected, not news
    try:
        loaded, info = cls.from_pretrained(model, config=config, output_loading_info=True)
    finally:
        transformers.logging.set_verbosity(quiet)
    if family == "siglip" and not getattr(loaded.config, "vision_use_head", True):
        raise ConfigError(f"embed.model {model!r} has no pooling head (vision_use_head: false)")
    missing = [k for k in info["missing_keys"] if "mask_token" not in k]  # unused at inference
    if missing:
        raise ConfigError(
            f"embed.model {model!r} lacks weights of its image tower ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}): not a {family} checkpoint?"
        )
    return loaded


class EmbedStage(Stage):
    """Rows with `frames` (JPEG `image` each) → each frame with its `embedding` (unit-length
    float16). Disabled (`embed.enabled: false`), rows pass through untouched."""

    name = "embed"

    cfg: EmbedConfig

    def __init__(self, cfg: EmbedConfig) -> None:
        super().__init__(cfg)
        check_config(cfg)
        self.encoder: VisionEncoder | None = None

    def setup(self) -> None:
        if self.cfg.enabled:
            self.encoder = VisionEncoder(self.cfg)

    def __call__(self, batch: Batch) -> pa.Table:
        if not self.cfg.enabled:
            return batch if isinstance(batch, pa.Table) else rows_to_table(to_rows(batch))
        if not self._ready:
            self.setup()
            self._ready = True
        assert self.encoder is not None
        return rows_to_table(embed_rows(to_rows(batch), self.encoder, self.cfg.batch_size))
