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

INDEX_FORMAT = 2  # bump when the cached index columns change


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

    def word_weights(self, words: Sequence[str]) -> np.ndarray:
        """Words (any inflection: "tomatoes", "sliced") → a 0/1 weight per vocabulary entry."""
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
        return weights

    def embed_words(self, words: Sequence[str]) -> np.ndarray:
        """Words → a normalised embedding in the space the images are embedded in."""
        import torch

        with torch.no_grad():
            weights = torch.from_numpy(self.word_weights(words)[None])
            return self.net.embed_words(weights).numpy()[0]

    def index_dataset(self, root: str) -> None:
        """Run every frame of a dataset through the model once: its image embedding and its
        word probabilities, cached next to the model as Parquet."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from vidray.sink import read_table

        key = hashlib.sha1(f"{INDEX_FORMAT}:{root}".encode()).hexdigest()[:12]
        cache = self.dir / "index" / f"{key}.parquet"
        model_time = (self.dir / MODEL_FILE).stat().st_mtime
        if cache.is_file() and cache.stat().st_mtime >= model_time:
            table = pq.read_table(cache)
        else:
            frames = read_table(root, "frames", ["video_id", "source", "frame_ts", "image"])
            images = frames.column("image").to_pylist()
            emb, probs = self._forward(images) if images else (np.zeros((0, 1)), np.zeros((0, 1)))
            vectors = pa.list_(pa.float32())
            table = (
                frames.drop_columns(["image"])
                .append_column("embedding", pa.array(list(emb.astype(np.float32)), vectors))
                .append_column("word_probs", pa.array(list(probs.astype(np.float32)), vectors))
            )
            cache.parent.mkdir(exist_ok=True)
            pq.write_table(table, cache)
        meta = table.drop_columns(["embedding", "word_probs"]).to_pylist()

        def matrix(column: str) -> np.ndarray | None:
            return np.stack(table.column(column).to_numpy(zero_copy_only=False)) if meta else None

        self._index = {
            "root": root,
            "meta": meta,
            "embedding": matrix("embedding"),
            "word_probs": matrix("word_probs"),
        }

    def search(
        self, words: Sequence[str], k: int = 10, with_images: bool = True
    ) -> list[dict[str, Any]]:
        """The k indexed frames that best match the words: the mean probability the model
        gives the query words for each frame, ties broken by embedding cosine similarity."""
        if self._index is None:
            self.index_dataset(self.split["root"])
        assert self._index is not None
        if self._index["word_probs"] is None:
            return []
        weights = self.word_weights(words)
        probs = self._index["word_probs"] @ weights / weights.sum()
        cosine = self._index["embedding"] @ self.embed_words(words)
        scores = probs + 1e-3 * cosine
        top = np.argsort(-scores)[:k]
        hits = [{**self._index["meta"][i], "score": float(probs[i])} for i in top]
        if with_images:
            self._attach_images(hits)
        return hits

    def _attach_images(self, hits: list[dict[str, Any]]) -> None:
        import pyarrow.dataset as pads

        from vidray.sink import read_table

        assert self._index is not None
        # Only the hits' videos are read: image bytes are most of a dataset's size.
        wanted = pads.field("video_id").isin(sorted({h["video_id"] for h in hits}))
        frames = read_table(
            self._index["root"], "frames", ["video_id", "frame_ts", "image"], wanted
        )
        lookup = {(r["video_id"], r["frame_ts"]): r["image"] for r in frames.to_pylist()}
        for h in hits:
            h["image"] = lookup.get((h["video_id"], h["frame_ts"]))


def load_model(model_dir: str | Path) -> VidrayModel:
    """Load a model trained by `vidray train`: `.predict(images, k)` and `.search(words, k)`."""
    return VidrayModel(model_dir)
