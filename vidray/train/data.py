"""Training data: label vocabulary, split by video, and frame rows → model-ready arrays."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

MEAN, STD = 0.5, 0.25


def split_videos(
    video_ids: Iterable[str], holdout: float, seed: int
) -> tuple[list[str], list[str]]:
    """A deterministic split by video: no frame of a held-out video is ever trained on."""
    ids = sorted(set(video_ids), key=lambda v: hashlib.sha1(f"{seed}:{v}".encode()).hexdigest())
    n_held = 0 if len(ids) < 2 else min(len(ids) - 1, max(1, round(holdout * len(ids))))
    return sorted(ids[n_held:]), sorted(ids[:n_held])


def build_vocab(
    label_lists: Iterable[Sequence[str]], min_count: int, max_size: int
) -> tuple[list[str], Counter[str]]:
    """Labels seen on at least `min_count` frames, most frequent first (ties by name)."""
    counts: Counter[str] = Counter(lab for labels in label_lists for lab in set(labels))
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return words[:max_size], counts


def soft_targets(
    labels: Sequence[str], scores: Sequence[float], index: dict[str, int]
) -> np.ndarray:
    """Label scores as soft multi-label targets over the vocabulary."""
    target = np.zeros(len(index), np.float32)
    for lab, score in zip(labels, scores, strict=True):
        if lab in index:
            target[index[lab]] = max(target[index[lab]], float(score))
    return target


def load_image(image: Any, size: int) -> np.ndarray:
    """JPEG bytes, a path, a PIL image or an HxWx3 array → normalised float32 [3, size, size]
    (centre crop to square, then resize)."""
    from PIL import Image

    img: Image.Image
    if isinstance(image, (bytes, bytearray, memoryview)):
        img = Image.open(io.BytesIO(bytes(image)))
    elif isinstance(image, np.ndarray):
        img = Image.fromarray(image.astype(np.uint8))
    elif isinstance(image, Image.Image):
        img = image
    else:
        img = Image.open(str(image))
    img = img.convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    arr = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255.0
    return ((arr - MEAN) / STD).transpose(2, 0, 1).copy()


def prepare_batch(
    batch: dict[str, Any], vocab: list[str], video_ids: list[str], image_size: int
) -> dict[str, np.ndarray]:
    """Frame rows → `image` and `target` arrays, keeping only frames of `video_ids` that carry
    at least one vocabulary label."""
    index = {w: i for i, w in enumerate(vocab)}
    wanted = set(video_ids)
    images, targets = [], []
    for vid, img, labels, scores in zip(
        batch["video_id"], batch["image"], batch["labels"], batch["label_scores"], strict=True
    ):
        if vid not in wanted or img is None:
            continue
        target = soft_targets(list(labels), list(scores), index)
        if target.any():
            images.append(load_image(img, image_size))
            targets.append(target)
    return {
        "image": np.stack(images)
        if images
        else np.zeros((0, 3, image_size, image_size), np.float32),
        "target": np.stack(targets) if targets else np.zeros((0, len(vocab)), np.float32),
    }
