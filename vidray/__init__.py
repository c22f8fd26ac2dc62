"""vidray: narrated web video → labelled image–word dataset → image↔word model, on Ray."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_model(model_dir: str, device: str = "auto") -> Any:
    """Load a trained model once: `.predict(images, k=5)` → [(word, probability)] per image,
    `.search(words, k=10)` → the best matching frames (see `vidray.query.VidrayModel`)."""
    from vidray.query import load_model as _load

    return _load(model_dir, device=device)


def open_dataset(root: str, **kwargs: Any) -> Any:
    """A table of a built dataset as a Ray Dataset or pandas frame (see `vidray.dataset`)."""
    from vidray.dataset import open_dataset as _open

    return _open(root, **kwargs)
