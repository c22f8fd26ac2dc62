"""Ask a trained model: images → likely words (`predict`), words → matching frames (`search`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidray.train.data import load_image
from vidray.train.ray_train import MODEL_FILE


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class VidrayModel:
    """A trained image↔word model with its vocabulary; load it once, ask it many times."""

    def __init__(self, model_dir: str | Path, batch_size: int = 64) -> None:
        import torch

        from vidray.train.model import ImageWordModel

        self.dir = Path(model_dir)
        path = self.dir / MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no trained model at {path}: run `vidray train` first")
        saved = torch.load(path, map_location="cpu", weights_only=False)
        self.net = ImageWordModel(**saved["model_args"])
        self.net.load_state_dict(saved["state_dict"])
        self.net.eval()
        self.image_size = int(saved["image_size"])
        vocab = json.loads((self.dir / "vocab.json").read_text())
        self.vocab: list[str] = vocab["words"]
        self.label_counts: dict[str, int] = vocab["counts"]
        self.split: dict[str, Any] = json.loads((self.dir / "split.json").read_text())
        self.batch_size = batch_size
        self._index: dict[str, Any] | None = None
        self._nlp: Any = None

    def _forward(self, images: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        embs, probs = [], []
        with torch.no_grad():
            for chunk in _chunks(images, self.batch_size):
                x = torch.from_numpy(np.stack([load_image(im, self.image_size) for im in chunk]))
                emb, logits = self.net(x)
                embs.append(emb.numpy())
                probs.append(torch.sigmoid(logits).numpy())
        return np.concatenate(embs), np.concatenate(probs)

    def predict(self, images: Sequence[Any], k: int = 5) -> list[list[tuple[str, float]]]:
        """For each image (path, JPEG bytes, PIL image or HxWx3 array) its top-k (word, probability)."""
        if not images:
            return []
        _, probs = self._forward(images)
        top = np.argsort(-probs, axis=1)[:, :k]
        return [
            [(self.vocab[j], float(p[j])) for j in row] for p, row in zip(probs, top, strict=True)
        ]

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        return self._forward(images)[0]

    def embed_words(self, words: Sequence[str]) -> np.ndarray:
        """Words (any inflection: "tomatoes", "sliced") → a normalised query embedding."""
        import torch

        from vidray.stages.keywords import load_nlp

        if self._nlp is None:
            self._nlp = load_nlp("blank:en")
        index = {w: i for i, w in enumerate(self.vocab)}
        weights = np.zeros(len(self.vocab), np.float32)
        for token in self._nlp(" ".join(words)):
            for form in (token.text.lower(), (token.lemma_ or "").lower()):
                if form in index:
                    weights[index[form]] = 1.0
                    break
        if not weights.any():
            raise ValueError(
                f"none of {list(words)} is in the model's vocabulary of {len(self.vocab)} words"
            )
        with torch.no_grad():
            return self.net.embed_words(torch.from_numpy(weights[None])).numpy()[0]

    def index_dataset(self, root: str) -> None:
        """Embed every frame of a dataset once; cached next to the model as Parquet."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from vidray.sink import read_table

        key = hashlib.sha1(root.encode()).hexdigest()[:12]
        cache = self.dir / "index" / f"{key}.parquet"
        model_time = (self.dir / MODEL_FILE).stat().st_mtime
        if cache.is_file() and cache.stat().st_mtime >= model_time:
            table = pq.read_table(cache)
        else:
            frames = read_table(root, "frames", ["video_id", "source", "frame_ts", "image"])
            images = frames.column("image").to_pylist()
            emb = self.embed_images(images) if images else np.zeros((0, 1), np.float32)
            table = frames.drop_columns(["image"]).append_column(
                "embedding", pa.array(list(emb.astype(np.float32)), pa.list_(pa.float32()))
            )
            cache.parent.mkdir(exist_ok=True)
            pq.write_table(table, cache)
        meta = table.drop_columns(["embedding"]).to_pylist()
        matrix = (
            np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
            if len(meta)
            else None
        )
        self._index = {"root": root, "meta": meta, "matrix": matrix}

    def search(
        self, words: Sequence[str], k: int = 10, with_images: bool = True
    ) -> list[dict[str, Any]]:
        """The k indexed frames whose image embeddings best match the words (cosine)."""
        if self._index is None:
            self.index_dataset(self.split["root"])
        assert self._index is not None
        if self._index["matrix"] is None:
            return []
        scores = self._index["matrix"] @ self.embed_words(words)
        top = np.argsort(-scores)[:k]
        hits = [{**self._index["meta"][i], "score": float(scores[i])} for i in top]
        if with_images:
            self._attach_images(hits)
        return hits

    def _attach_images(self, hits: list[dict[str, Any]]) -> None:
        import pyarrow.compute as pc

        from vidray.sink import read_table

        assert self._index is not None
        frames = read_table(self._index["root"], "frames", ["video_id", "frame_ts", "image"])
        ids = frames.filter(
            pc.is_in(
                frames["video_id"],
                value_set=__import__("pyarrow").array([h["video_id"] for h in hits]),
            )
        )
        lookup = {(r["video_id"], r["frame_ts"]): r["image"] for r in ids.to_pylist()}
        for h in hits:
            h["image"] = lookup.get((h["video_id"], h["frame_ts"]))


def load_model(model_dir: str | Path) -> VidrayModel:
    """Load a model trained by `vidray train`: `.predict(images, k)` and `.search(words, k)`."""
    return VidrayModel(model_dir)
