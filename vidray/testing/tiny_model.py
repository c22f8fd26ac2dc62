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
    """A committed `frames/` + `videos/` dataset (the sink's own writer); returns video ids."""
    from vidray.config import OutputConfig
    from vidray.sink import write_part

    ids = [f"test:v{v}" for v in range(videos)]
    rows = [
        {
            "video_id": vid,
            "source": f"/videos/v{v}.mp4",
            "frames": frame_rows(v, per_subject),
        }
        for v, vid in enumerate(ids)
    ]
    write_part(str(root), rows, OutputConfig())
    return ids


def train_model_dir(
    model_dir: str | Path,
    root: str | Path,
    heldout: list[str],
    steps: int = 60,
    image_size: int = 16,
    seed: int = 0,
) -> Path:
    """Train `ImageWordModel` on the non-held-out videos of `root` (BCE on the word head plus a
    contrastive term tying images to their label bags) and save it as `vidray train` does."""
    import torch
    import torch.nn.functional as F

    from vidray.sink import read_table
    from vidray.train.data import build_vocab, load_image
    from vidray.train.model import ImageWordModel

    rows = read_table(str(root), "frames", ["video_id", "image", "labels"]).to_pylist()
    train = [r for r in rows if r["video_id"] not in set(heldout)]
    vocab, counts = build_vocab((r["labels"] for r in train), min_count=1, max_size=100)
    index = {w: i for i, w in enumerate(vocab)}
    images = torch.from_numpy(np.stack([load_image(r["image"], image_size) for r in train]))
    targets = torch.zeros(len(train), len(vocab))
    for i, r in enumerate(train):
        targets[i, [index[w] for w in r["labels"]]] = 1.0

    torch.manual_seed(seed)
    args = {"vocab_size": len(vocab), "widths": [8, 16], "embed_dim": 16}
    net = ImageWordModel(**args)  # type: ignore[arg-type]
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    same = (targets @ targets.T > 0).float()
    soft = same / same.sum(1, keepdim=True)
    net.train()
    for _ in range(steps):
        emb, logits = net(images)
        sim = emb @ net.embed_words(targets).T / 0.1
        loss = F.binary_cross_entropy_with_logits(logits, targets) - (
            soft * F.log_softmax(sim, 1)
        ).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()

    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {"state_dict": net.state_dict(), "model_args": args, "image_size": image_size}
    torch.save(state, out / "model.pt")
    (out / "vocab.json").write_text(
        json.dumps({"words": vocab, "counts": {w: counts[w] for w in vocab}})
    )
    train_ids = sorted({r["video_id"] for r in train})
    (out / "split.json").write_text(
        json.dumps({"train": train_ids, "heldout": sorted(heldout), "root": str(root)})
    )
    return out


