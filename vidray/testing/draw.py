"""Draw a subject's picture into an RGB frame with numpy: flat shapes on a shaded background."""

from __future__ import annotations

import numpy as np


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of `shape` with radius `r`, given pixel offsets from its centre."""
    ax, ay = np.abs(dx), np.abs(dy)
    box = (ax <= 0.85 * r) & (ay <= 0.85 * r)
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if shape == "square":
        return box
    if shape == "triangle":
        return (dy >= -r) & (dy <= 0.8 * r) & (ax <= 0.6 * (dy + r))
    if shape == "diamond":
        return ax + ay <= r
    if shape == "cross":
        return ((ax <= 0.3 * r) & (ay <= r)) | ((ay <= 0.3 * r) & (ax <= r))
    if shape == "hstripes":
        return box & (np.floor(dy / (r / 3)) % 2 == 0)
    if shape == "vstripes":
        return box & (np.floor(dx / (r / 3)) % 2 == 0)
    raise ValueError(f"unknown shape {shape!r}")


class Canvas:
    """A reusable pixel grid of one frame size."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.yy, self.xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self.shade = (1.0 - 0.25 * self.yy / height)[
            ..., None
        ]  # a soft top-to-bottom light fall-off

    def draw(
        self,
        shape: str,
        color: np.ndarray,
        background: np.ndarray,
        cx: float,
        cy: float,
        r: float,
    ) -> np.ndarray:
        img = background[None, None, :] * self.shade
        mask = shape_mask(shape, self.xx - cx, self.yy - cy, r)
        img = np.where(mask[..., None], color[None, None, :], img)
        return np.clip(img, 0, 255).astype(np.uint8)
