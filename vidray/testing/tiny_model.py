"""A tiny dataset of coloured frames and a model directory trained on it in seconds, for tests."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

# A frame's colour says its subject; "kitchen" rides along on every other frame.
COLOURS = {
    "tomato": (220, 30, 30),
    "lettuce": (30, 200, 40),
    "blueberry": (40, 40, 210),
    "lemon": (230, 220, 40),
}
SHARED = "kitchen"


def jpeg(rgb: tuple[int, int, int], seed: int, size: int = 32) -> bytes:
    """A noisy solid-colour JPEG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(rgb) + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def frame_rows(video: int, per_subject: int = 2) -> list[dict[str, Any]]:
    """Frames of one video: `per_subject` of each colour, a second apart."""
    rows = []
    for s, (subject, rgb) in enumerate(COLOURS.items()):
        for j in range(per_subject):
            n = s * per_subject + j
            labels = [subject, SHARED] if n % 2 else [subject]
            rows.append(
                {
                    "frame_ts": float(n),
                    "image": jpeg(rgb, seed=video * 1000 + n),
                    "labels": labels,
                    "label_scores": [1.0] * len(labels),
                    "words": labels,
                }
            )
    return rows


def write_dataset(root: str | Path, videos: int = 4, per_subject: int = 2) -> list[str]:
    """A committed `frames/` + `videos/` dataset; returns the video ids."""
    from vidray.testing.frames import write_videos

    ids = [f"test:v{v}" for v in range(videos)]
    write_videos(
        root,
        [
            {"video_id": vid, "source": f"/videos/v{v}.mp4", "frames": frame_rows(v, per_subject)}
            for v, vid in enumerate(ids)
        ],
    )
    return ids


def train_model_dir(
    model_dir: str | Path,
    root: str | Path,
    heldout: list[str],
    steps: int = 60,
    image_size: int = 16,
    seed: int = 0,
) -> Path:
    """Train `ImageWordModel` in this process on the non-held-out videos of `root`, with the
    model's own losses on `prepare_batch`'s arrays, and save it as `vidray train` does."""
    import torch

    from vidray.sink import read_table
    from vidray.train.data import build_vocab, prepare_batch
    from vidray.train.model import ImageWordModel

    columns = ["video_id", "frame_ts", "image", "labels", "label_scores"]
    table = read_table(str(root), "frames", columns).to_pydict()
    train_ids = sorted(set(table["video_id"]) - set(heldout))
    train_labels = [
        lab for v, lab in zip(table["video_id"], table["labels"], strict=True) if v in train_ids
    ]
    vocab, counts = build_vocab(train_labels, min_count=1, max_size=100)
    arrays = prepare_batch(table, vocab, train_ids, image_size, neighbours=1, window_s=2.0)
    batch = {k: torch.from_numpy(v) for k, v in arrays.items()}

    # One thread: for tensors this small, OpenMP's spin-up costs more than it saves (30x on a
    # busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net = ImageWordModel(vocab_size=len(vocab), widths=[8, 16], embed_dim=16, augment=False)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(steps):
        loss = net.losses(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    torch.set_num_threads(threads)

    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {
        "state_dict": net.state_dict(),
        "model_args": net.export_args(),
        "image_size": image_size,
    }
    torch.save(state, out / "model.pt")
    (out / "vocab.json").write_text(
        json.dumps({"words": vocab, "counts": {w: counts[w] for w in vocab}})
    )
    (out / "split.json").write_text(
        json.dumps({"train": train_ids, "heldout": sorted(heldout), "root": str(root)})
    )
    return out
