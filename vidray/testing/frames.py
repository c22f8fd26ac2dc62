"""A small labelled frame dataset of coloured pictures, written as `vidray build` writes one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidray.config import OutputConfig
from vidray.sink import write_part
from vidray.stages.decode import encode_jpeg

# word → (RGB colour, shape): each video shows one word's picture, narrated with that word and
# a filler word that every video shares.
PICTURES = {
    "tomato": ((220, 40, 30), "disc"),
    "lemon": ((245, 230, 60), "square"),
    "boat": ((40, 90, 220), "bar"),
    "tree": ((30, 140, 40), "disc"),
}
FILLER = "look"


def picture(word: str, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """One frame of `word`'s picture: its shape in its colour on grey, at a random place."""
    color, shape = PICTURES[word]
    img = np.full((size, size, 3), 128, np.uint8) + rng.integers(0, 20, (size, size, 3), np.uint8)
    c = rng.integers(size // 3, 2 * size // 3, 2)
    yy, xx = np.mgrid[:size, :size]
    if shape == "disc":
        mask = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 < (size // 4) ** 2
    elif shape == "square":
        mask = (abs(yy - c[0]) < size // 4) & (abs(xx - c[1]) < size // 4)
    else:
        mask = abs(yy - c[0]) < size // 8
    img[mask] = color
    return img


def write_frames_dataset(
    root: str | Path,
    videos_per_word: int = 3,
    frames_per_video: int = 8,
    words: tuple[str, ...] = tuple(PICTURES),
    seed: int = 0,
) -> list[str]:
    """Write a dataset root with `frames/` and `videos/` tables; return the video ids."""
    rng = np.random.default_rng(seed)
    rows, ids = [], []
    for w in words:
        for v in range(videos_per_word):
            vid = f"{w}-{v}"
            frames = []
            for i in range(frames_per_video):
                t = 2.0 * i
                frames.append(
                    {
                        "frame_ts": t,
                        "span_start": t,
                        "span_end": t + 2.0,
                        "merged": 1,
                        "image": encode_jpeg(picture(w, rng), 90),
                        "width": 48,
                        "height": 48,
                        "phash": 0,
                        "labels": [w, FILLER],
                        "label_scores": [0.9, 0.5],
                        "words": ["look", "at", "the", w],
                    }
                )
            rows.append({"video_id": vid, "source": f"/videos/{vid}.mp4", "frames": frames})
            ids.append(vid)
    write_videos(root, rows)
    return ids


def write_videos(root: str | Path, rows: list[dict]) -> None:
    """Video rows (`video_id`, `source`, `frames`) → a committed dataset, by the sink's writer."""
    write_part(str(root), rows, OutputConfig())
