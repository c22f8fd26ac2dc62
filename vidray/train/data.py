"""Training data: label vocabulary, split by video, and frame rows → model-ready arrays."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def split_videos(
    video_ids: Iterable[str], holdout: float, seed: int
) -> tuple[list[str], list[str]]:
    """A deterministic split by video: no frame of a held-out video is ever trained on."""
    ids = sorted(set(video_ids), key=lambda v: hashlib.sha1(f"{seed}:{v}".encode()).hexdigest())
    # Any holdout above 0 keeps at least one video back, and at least one for training.
    n_held = (
        0 if len(ids) < 2 or holdout <= 0 else min(len(ids) - 1, max(1, round(holdout * len(ids))))
    )
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
    """JPEG bytes, a path, a PIL image or an HxWx3 array → uint8 RGB [3, size, size] (centre
    crop to square, then resize). Normalisation is the model's: it runs on the model's device."""
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
    arr = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), np.uint8)
    return arr.transpose(2, 0, 1).copy()


def label_bag(
    labels: Sequence[str], scores: Sequence[float], index: dict[str, int], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """A frame's vocabulary labels as a padded bag: (word ids, -1 padded; their scores)."""
    ids = np.full(size, -1, np.int64)
    weights = np.zeros(size, np.float32)
    n = 0
    for lab, score in zip(labels, scores, strict=True):
        if lab in index and n < size:
            ids[n], weights[n] = index[lab], float(score)
            n += 1
    return ids, weights


def neighbour_rows(
    video_ids: Sequence[str], frame_ts: Sequence[float], n: int, window_s: float
) -> list[list[int]]:
    """For each row, up to `n` other rows of the same video within `window_s` seconds, nearest
    first: the frames whose narration may be the one that describes this frame (MIL-NCE)."""
    by_video: dict[str, list[int]] = {}
    for i, vid in enumerate(video_ids):
        by_video.setdefault(vid, []).append(i)
    out: list[list[int]] = [[] for _ in video_ids]
    if n <= 0:
        return out
    for rows in by_video.values():
        rows.sort(key=lambda r: frame_ts[r])
        for pos, r in enumerate(rows):
            near = rows[max(0, pos - n) : pos] + rows[pos + 1 : pos + 1 + n]
            near = [q for q in near if abs(frame_ts[q] - frame_ts[r]) <= window_s]
            out[r] = sorted(near, key=lambda q: (abs(frame_ts[q] - frame_ts[r]), q))[:n]
    return out


def prepare_batch(
    batch: dict[str, Any],
    vocab: list[str],
    video_ids: list[str],
    image_size: int,
    neighbours: int = 0,
    window_s: float = 0.0,
    bag_size: int = 16,
) -> dict[str, np.ndarray]:
    """Frame rows → model-ready arrays, keeping frames of `video_ids` with at least one
    vocabulary label:

    - `image` uint8 [B, 3, S, S];
    - `target` float32 [B, V]: label scores as soft targets;
    - `bags` int64 [B, 1 + neighbours, bag_size] and `bag_weights`: the frame's own labels,
      then the labels of its nearest frames of the same video in the batch (-1 padded).

    Rows arrive in dataset order, where a video's frames are stored together, so neighbours
    are found within the batch; a frame at a batch edge has fewer of them.
    """
    index = {w: i for i, w in enumerate(vocab)}
    wanted = set(video_ids)
    labels = [list(x) for x in batch["labels"]]
    scores = [list(x) for x in batch["label_scores"]]
    bags = [label_bag(lab, sc, index, bag_size) for lab, sc in zip(labels, scores, strict=True)]
    keep = [
        i
        for i, (vid, img) in enumerate(zip(batch["video_id"], batch["image"], strict=True))
        if vid in wanted and img is not None and bags[i][0][0] >= 0
    ]
    labelled = set(keep)
    near = neighbour_rows(
        [batch["video_id"][i] if i in labelled else f"\0{i}" for i in range(len(labels))],
        [float(t) for t in batch["frame_ts"]],
        neighbours,
        window_s,
    )
    k = 1 + neighbours
    out_bags = np.full((len(keep), k, bag_size), -1, np.int64)
    out_weights = np.zeros((len(keep), k, bag_size), np.float32)
    for row, i in enumerate(keep):
        for slot, j in enumerate([i, *near[i]]):
            out_bags[row, slot], out_weights[row, slot] = bags[j]
    return {
        "image": np.stack([load_image(batch["image"][i], image_size) for i in keep])
        if keep
        else np.zeros((0, 3, image_size, image_size), np.uint8),
        "target": np.stack([soft_targets(labels[i], scores[i], index) for i in keep])
        if keep
        else np.zeros((0, len(vocab)), np.float32),
        "bags": out_bags,
        "bag_weights": out_weights,
    }
