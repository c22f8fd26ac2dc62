"""The recognizer contract, and the pure functions every backend shares: chunk seams, missing times."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from vidray.schema import Word

SAMPLE_RATE = 16_000


class Recognition(NamedTuple):
    """What a recognizer heard in one clip: words with times relative to the clip's start."""

    words: list[Word]
    language: str | None


class Recognizer(Protocol):
    """A speech backend loaded once per actor.

    `recognize` takes several clips at once (float32 samples in [-1, 1], 16 kHz mono), from one
    video or several, so a GPU backend can fill its batches across videos. Clips are at most
    `asr.chunk_s` long; the caller cuts long audio and stitches the words back together.
    """

    backend: str
    model: str

    def recognize(self, clips: Sequence[np.ndarray]) -> list[Recognition]: ...


def stitch(pieces: Iterable[tuple[float, float, list[Word]]]) -> list[Word]:
    """Words of overlapping chunks, given as (chunk start s, chunk end s, words in absolute
    time) in order → one transcript.

    In the overlap between two chunks the earlier one keeps the words whose midpoint lies
    before the overlap's middle, and the later one adds only words that start after the last
    word kept: a word both chunks heard, with times a little apart, is kept once, and a word
    cut by one chunk's edge comes from the chunk that heard it whole.
    """
    out: list[Word] = []
    prev_end: float | None = None
    for start, end, words in pieces:
        if prev_end is not None and start < prev_end:
            seam = (start + prev_end) / 2
            out = [w for w in out if (w.start + w.end) / 2 < seam]
            kept_end = max([start, *(w.end for w in out)])
            words = [w for w in words if (w.start + w.end) / 2 >= kept_end]
        out += words
        prev_end = end
    return out


def shift(words: Iterable[Word], offset: float) -> list[Word]:
    return [w._replace(start=w.start + offset, end=w.end + offset) for w in words]


def fill_missing_times(
    words: Sequence[tuple[str, float | None, float | None, float | None]],
    clip_start: float = 0.0,
    clip_end: float | None = None,
) -> list[Word]:
    """(word, start, end, score) with some times missing → Words whose missing times are
    interpolated between the neighbours that have them, and flagged `interpolated`.

    A run of k untimed words between a word ending at `a` and one starting at `b` shares
    [a, b] evenly; at the clip's edges the run is spread over `clip_start`/`clip_end` (or given
    a nominal 0.3 s per word when the edge is unknown). A missing score becomes 0.
    """
    n = len(words)
    out: list[Word] = []
    i = 0
    while i < n:
        text, start, end, score = words[i]
        if finite(start) is not None and finite(end) is not None:
            out.append(Word(text, float(start), float(end), _score(score)))  # type: ignore[arg-type]
            i += 1
            continue
        j = i
        while j < n and (finite(words[j][1]) is None or finite(words[j][2]) is None):
            j += 1
        left = out[-1].end if out else clip_start
        right = float(words[j][1]) if j < n else clip_end  # type: ignore[arg-type]
        if right is None or right < left:
            right = left + 0.3 * (j - i)
        step = (right - left) / (j - i)
        for k in range(i, j):
            a = left + (k - i) * step
            out.append(Word(words[k][0], a, a + step, _score(words[k][3]), True))
        i = j
    return out


def finite(x: Any) -> float | None:
    """`x` as a float, or None when it is missing, not a number, NaN or infinite."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _score(x: Any) -> float:
    value = finite(x)
    return 0.0 if value is None else min(1.0, max(0.0, value))


def to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 samples → float32 in [-1, 1]."""
    return pcm.astype(np.float32) / 32768.0


def to_int16(clip: np.ndarray) -> np.ndarray:
    """float32 samples in [-1, 1] → int16 (PocketSphinx takes raw 16-bit PCM); exact inverse of
    `to_float`, so decoded 16-bit audio reaches PocketSphinx unchanged."""
    return np.clip(np.round(clip * 32768.0), -32768, 32767).astype(np.int16)
