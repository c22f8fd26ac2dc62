"""Ask a trained model: images → likely words (`predict`), words → matching frames (`search`)."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"  # as vidray.train.ray_train writes it; not imported: that pulls in Ray
INDEX_DIR = "index"
INDEX_FILE = "frames.parquet"
INDEX_META = "index.json"  # written after the Parquet file: its presence commits the index
INDEX_FORMAT = 3  # bump when the index columns change
INDEX_COLUMNS = ["video_id", "frame_ts", "source", "labels"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
URL_TIMEOUT_S = 30


# --- inputs -----------------------------------------------------------------------------------


def is_url(item: Any) -> bool:
    return isinstance(item, str) and item.startswith(("http://", "https://"))


def expand_images(items: Iterable[Any]) -> list[tuple[str, Any]]:
    """Inputs → (name, image) pairs: a folder becomes its image files (sorted), URLs and paths
    stay as they are (read when their batch runs), anything else is an in-memory image."""
    out: list[tuple[str, Any]] = []
    for i, item in enumerate(items):
        if is_url(item) or not isinstance(item, (str, os.PathLike)):
            out.append((item if is_url(item) else f"image {i}", item))
            continue
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
            out += [(str(p), p) for p in files]
        elif path.is_file():
            out.append((str(path), path))
        else:
            raise FileNotFoundError(f"no such image file or folder: {path}")
    return out


def fetch(url: str, timeout: float = URL_TIMEOUT_S) -> bytes:
    """The bytes at an http(s) URL, or an OSError that names the URL."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bytes(response.read())
    except OSError as exc:  # URLError, HTTPError and timeouts are all OSErrors
        raise OSError(f"could not fetch {url}: {exc}") from exc


def read_image(item: Any, size: int) -> np.ndarray:
    from vidray.train.data import load_image

    data = fetch(item) if is_url(item) else item
    try:
        return load_image(data, size)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {str(item)[:200]} as an image: {exc}") from exc


def chunks(items: Any, size: int) -> Iterator[Any]:
    """Consecutive slices of a sequence or array."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- exact cosine search ----------------------------------------------------------------------


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, scores) of the k best columns of each row, best first: argpartition, then a
    sort of only those k."""
    k = min(k, scores.shape[1])
    if k == 0:
        empty = np.zeros((scores.shape[0], 0))
        return empty.astype(np.int64), empty
    n = scores.shape[1]
    part = np.argpartition(scores, n - k, axis=1)[:, n - k :]  # no negated copy of the scores
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def cosine_top_k(
    matrix: Any, queries: np.ndarray, k: int, batch: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Exact search of unit-length `queries` [Q, D] in unit-length rows of `matrix` (a float32
    numpy array, or a torch tensor, searched where it lives), `batch` queries per matmul."""
    queries = np.ascontiguousarray(queries, np.float32)
    idx, val = [], []
    if isinstance(matrix, np.ndarray):
        for q in chunks(queries, batch):
            i, v = top_k(q @ matrix.T, k)
            idx.append(i)
            val.append(v)
    else:
        import torch

        with torch.no_grad():
            for q in chunks(queries, batch):
                scores = torch.from_numpy(np.asarray(q)).to(matrix.device) @ matrix.T
                v, i = scores.topk(min(k, matrix.shape[0]), dim=1)
                idx.append(i.cpu().numpy())
                val.append(v.float().cpu().numpy())
    if not idx:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(idx), np.concatenate(val)


def as_tensor(matrix: Any) -> Any:
    """The index as a torch tensor (a view: no copy of a numpy matrix). `torch.topk` is much
    faster than numpy's argpartition on CPU too (bench/search.py), and torch is loaded anyway."""
    import warnings

    import torch

    if not isinstance(matrix, np.ndarray):
        return matrix
    with warnings.catch_warnings():
        # A matrix read from Parquet is a read-only view of Arrow's buffer; search never
        # writes to it, and a writable copy would double the index's memory.
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(matrix)


def embedding_matrix(column: Any) -> np.ndarray:
    """A fixed-size-list (or list) column of float32 → a C-contiguous [N, D] float32 array,
    without a Python object per row."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    values = array.flatten().to_numpy(zero_copy_only=False)
    dim = len(values) // n if n else 0
    return np.ascontiguousarray(values.reshape(n, dim), dtype=np.float32)


def read_index(path: str | Path) -> tuple[Any, np.ndarray]:
    """An index file → (the frame columns as a pyarrow table, the embedding matrix)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return table.select(INDEX_COLUMNS), embedding_matrix(table.column("embedding"))


# --- the model --------------------------------------------------------------------------------


class VidrayModel:
    """A trained image↔word model with its vocabulary; load it once, ask it many times."""

    def __init__(self, model_dir: str | Path, device: str = "auto", batch_size: int = 64) -> None:
        import torch

        from vidray.train.model import ImageWordModel

        self.dir = Path(model_dir)
        missing = [
            n for n in (MODEL_FILE, "vocab.json", "split.json") if not (self.dir / n).is_file()
        ]
        if missing:
            raise FileNotFoundError(
                f"{self.dir} is not a trained model (no {', '.join(missing)}): run "
                f"`vidray train ROOT --model-dir {self.dir}` first"
            )
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        saved = torch.load(self.dir / MODEL_FILE, map_location="cpu", weights_only=False)
        self.net = ImageWordModel(**saved["model_args"])
        self.net.load_state_dict(saved["state_dict"])
        self.net.to(self.device).eval()
        self.image_size = int(saved["image_size"])
        vocab = json.loads((self.dir / "vocab.json").read_text())
        self.vocab: list[str] = vocab["words"]
        self.label_counts: dict[str, int] = vocab["counts"]
        self.word_index = {w: i for i, w in enumerate(self.vocab)}
        self.split: dict[str, Any] = json.loads((self.dir / "split.json").read_text())
        self.batch_size = batch_size
        self._index: tuple[Any, Any] | None = None  # (frame columns, embedding matrix)
        self._index_root: str | None = None
        self._nlp: Any = None

    # images → words

    def encode(
        self, images: Sequence[Any], batch_size: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Images → (unit-length embeddings [N, D], word probabilities [N, V]), in batches."""
        import torch

        embs, probs = [], []
        with torch.no_grad():
            for chunk in chunks(images, batch_size or self.batch_size):
                arr = np.stack([read_image(im, self.image_size) for im in chunk])
                emb, logits = self.net(torch.from_numpy(arr).to(self.device))
                embs.append(emb.float().cpu().numpy())
                probs.append(torch.sigmoid(logits.float()).cpu().numpy())
        if not embs:
            dim = int(self.net.embed_words(torch.zeros(1, len(self.vocab))).shape[1])
            return np.zeros((0, dim), np.float32), np.zeros((0, len(self.vocab)), np.float32)
        return np.concatenate(embs), np.concatenate(probs)

    def predict(
        self, images: Any, k: int = 5, batch_size: int | None = None
    ) -> list[list[tuple[str, float]]]:
        """For each image (path, folder of images, http(s) URL, JPEG bytes, PIL image or HxWx3
        array) its k most likely (word, probability), best first. A folder stands for its
        image files in sorted order; `expand_images` gives their names."""
        if not isinstance(images, (list, tuple)):
            images = [images]  # one image (or one folder) on its own
        items = [im for _, im in expand_images(images)]
        if not items:
            return []
        _, probs = self.encode(items, batch_size)
        top, val = top_k(probs, k)
        return [
            [(self.vocab[j], float(p)) for j, p in zip(row, ps, strict=True)]
            for row, ps in zip(top, val, strict=True)
        ]

    # words → embedding

    def word_weights(self, words: Sequence[str]) -> np.ndarray:
        """Words (any inflection: "tomatoes", "sliced"; multi-word terms too) → a 0/1 weight per
        vocabulary entry. Unknown words raise a ValueError that lists them."""
        from vidray.stages.keywords import load_nlp

        if isinstance(words, str):
            words = words.split()
        if self._nlp is None:
            self._nlp = load_nlp("blank:en")
        weights = np.zeros(len(self.vocab), np.float32)
        unknown = []
        for word in words:
            tokens = list(self._nlp(word.lower()))
            lemmas = [(t.lemma_ or t.text).lower() for t in tokens]
            whole = next(
                (f for f in (word.lower(), " ".join(lemmas)) if f in self.word_index), None
            )
            if whole is not None:
                weights[self.word_index[whole]] = 1.0
                continue
            for t, lemma in zip(tokens, lemmas, strict=True):
                form = next((f for f in (t.text, lemma) if f in self.word_index), None)
                if form is None:
                    unknown.append(t.text)
                else:
                    weights[self.word_index[form]] = 1.0
        if unknown or not weights.any():
            known = ", ".join(self.vocab[:20])
            raise ValueError(
                f"not in the model's vocabulary of {len(self.vocab)} words: "
                f"{', '.join(unknown) or list(words)} (the most common are: {known})"
            )
        return weights

    def embed_weights(self, weights: np.ndarray) -> np.ndarray:
        """Word bags [N, V] → unit-length embeddings [N, D] in the images' space."""
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.asarray(weights, np.float32)).to(self.device)
            return self.net.embed_words(x).float().cpu().numpy()

    def embed_words(self, words: Sequence[str]) -> np.ndarray:
        return self.embed_weights(self.word_weights(words)[None])[0]

    # the frame index

    @property
    def index_dir(self) -> Path:
        return self.dir / INDEX_DIR

    def index_info(self) -> dict[str, Any] | None:
        """The committed index's manifest, or None if there is none or it predates the model."""
        meta = self.index_dir / INDEX_META
        if not meta.is_file() or not (self.index_dir / INDEX_FILE).is_file():
            return None
        info: dict[str, Any] = json.loads(meta.read_text())
        if info.get("format") != INDEX_FORMAT:
            return None
        if info.get("model_mtime") != (self.dir / MODEL_FILE).stat().st_mtime:
            return None
        return info

    def build_index(self, root: str | None = None, batch_size: int = 256) -> dict[str, Any]:
        """Stream every frame of a dataset (default: the one trained on) through the model and
        write its embedding with the frame's id columns to `DIR/index/` as Parquet."""
        root = root or self.split["root"]
        info = write_index(self, root, batch_size)
        self._index = None
        return info

    def load_index(self) -> tuple[Any, Any]:
        """The index (built first if missing or stale), loaded once: (frame columns as a
        pyarrow table, embeddings as a float32 torch tensor on the model's device; on CPU a
        view of the numpy matrix, searched with `torch.topk`, measured faster than argpartition)."""
        if self._index is None:
            info = self.index_info()
            if info is None:
                log.warning("no current index in %s: building it", self.index_dir)
                info = self.build_index()
            table, array = read_index(self.index_dir / INDEX_FILE)
            matrix = as_tensor(array).to(self.device)
            self._index, self._index_root = (table, matrix), info["root"]
        return self._index

    def search(
        self, words: Sequence[str], k: int = 10, with_images: bool = False
    ) -> list[dict[str, Any]]:
        """The k indexed frames whose image embeddings are closest (cosine) to the words'."""
        return self.search_many([words], k, with_images)[0]

    def search_many(
        self, queries: Sequence[Sequence[str]], k: int = 10, with_images: bool = False
    ) -> list[list[dict[str, Any]]]:
        """`search` for many word lists at once: one matmul per batch of queries."""
        weights = np.stack([self.word_weights(q) for q in queries]) if queries else None
        if weights is None:
            return []
        table, matrix = self.load_index()
        idx, val = cosine_top_k(matrix, self.embed_weights(weights), k)
        rows = table.take(idx.ravel()).to_pylist() if idx.size else []
        hits = [
            [{**rows[q * idx.shape[1] + j], "score": float(val[q, j])} for j in range(idx.shape[1])]
            for q in range(len(queries))
        ]
        if with_images:
            attach_images(str(self._index_root), [h for hs in hits for h in hs])
        return hits


def attach_images(root: str, hits: list[dict[str, Any]]) -> None:
    """Add each hit's JPEG bytes, reading only the hits' videos (images are most of a dataset)."""
    import pyarrow.dataset as pads

    from vidray.sink import read_table

    if not hits:
        return
    wanted = pads.field("video_id").isin(sorted({h["video_id"] for h in hits}))
    frames = read_table(root, "frames", ["video_id", "frame_ts", "image"], wanted)
    lookup = {(r["video_id"], r["frame_ts"]): r["image"] for r in frames.to_pylist()}
    for h in hits:
        h["image"] = lookup.get((h["video_id"], h["frame_ts"]))


def write_index(model: VidrayModel, root: str, batch_size: int = 256) -> dict[str, Any]:
    """Frames of `root` in batches → `index/frames.parquet` (id columns + float32 embedding),
    written under a temporary name and committed by `index.json`; returns that manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vidray.sink import table_dataset

    start = time.perf_counter()
    out = model.index_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX_META).unlink(missing_ok=True)  # uncommit first: never a stale manifest
    tmp = out / f".tmp-{os.getpid()}-{INDEX_FILE}"
    dataset = table_dataset(root, "frames")
    batches = (
        dataset.to_batches(columns=[*INDEX_COLUMNS, "image"], batch_size=batch_size)
        if dataset is not None
        else iter(())
    )
    writer, rows, skipped, dim = None, 0, 0, 0
    try:
        for batch in batches:
            has_image = batch.column("image").is_valid()
            skipped += len(batch) - has_image.true_count
            batch = batch.filter(has_image)
            if not len(batch):
                continue
            emb, _ = model.encode(batch.column("image").to_pylist(), batch_size)
            vectors = pa.FixedSizeListArray.from_arrays(
                pa.array(emb.astype(np.float32).ravel()), emb.shape[1]
            )
            table = pa.Table.from_batches([batch.select(INDEX_COLUMNS)]).append_column(
                "embedding", vectors
            )
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            rows, dim = rows + len(table), emb.shape[1]
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if writer is None:
        raise ValueError(f"no frames with images under {root}/frames: nothing to index")
    writer.close()
    os.replace(tmp, out / INDEX_FILE)
    info = {
        "format": INDEX_FORMAT,
        "root": root,
        "rows": rows,
        "skipped_without_image": skipped,
        "dim": int(dim),
        "model_mtime": (model.dir / MODEL_FILE).stat().st_mtime,
        "seconds": round(time.perf_counter() - start, 2),
    }
    (out / INDEX_META).write_text(json.dumps(info, indent=1))
    log.info("indexed %d frames of %s in %.1fs", rows, root, info["seconds"])
    return info


def load_model(model_dir: str | Path, device: str = "auto") -> VidrayModel:
    """Load a model trained by `vidray train`: `.predict(images, k)` and `.search(words, k)`."""
    return VidrayModel(model_dir, device=device)
