"""Batched image augmentation on the batch's device: random resized crop, flip, colour jitter.

Every function takes float images in [0, 1], shape [B, 3, H, W], and draws one set of random
parameters per image, from `generator` when given (its draws are made on the generator's device
and moved over: a few numbers per image) or from torch's global RNG.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(
    n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float32)
    return (low + (high - low) * u).to(like.device)


def random_resized_crop(
    x: torch.Tensor,
    scale: tuple[float, float] = (0.6, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random crop of each image (area share in `scale`, aspect ratio in `ratio`, log-uniform)
    resized back to the input size, bilinearly."""
    n = x.shape[0]
    area = _uniform(n, scale[0], scale[1], x, generator)
    aspect = torch.exp(_uniform(n, math.log(ratio[0]), math.log(ratio[1]), x, generator))
    # Crop width and height as shares of the side; clamped, a crop never leaves the image.
    w = torch.sqrt(area * aspect).clamp(max=1.0)
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (2 * _uniform(n, 0, 1, x, generator) - 1) * (1 - w)
    cy = (2 * _uniform(n, 0, 1, x, generator) - 1) * (1 - h)
    zero = torch.zeros_like(w)
    theta = torch.stack([torch.stack([w, zero, cx], 1), torch.stack([zero, h, cy], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def horizontal_flip(
    x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Each image mirrored left-right with probability `p`."""
    flip = _uniform(x.shape[0], 0, 1, x, generator) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(dim=1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def color_jitter(
    x: torch.Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Brightness, contrast and saturation each scaled by a factor in [1 - s, 1 + s] per image,
    clamped back to [0, 1]."""
    n = x.shape[0]

    def factor(s: float) -> torch.Tensor:
        return _uniform(n, max(0.0, 1 - s), 1 + s, x, generator).to(x.dtype).view(n, 1, 1, 1)

    x = (x * factor(brightness)).clamp(0, 1)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * factor(contrast) + mean).clamp(0, 1)
    gray = _gray(x)
    return ((x - gray) * factor(saturation) + gray).clamp(0, 1)


def augment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The training augmentation: random resized crop, horizontal flip, colour jitter."""
    x = random_resized_crop(images, generator=generator)
    x = horizontal_flip(x, generator=generator)
    return color_jitter(x, generator=generator)
