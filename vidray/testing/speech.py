"""Real speech with per-word times from libespeak-ng (through ctypes), for generated sample videos."""

from __future__ import annotations

import ctypes
import ctypes.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

INSTALL_HINT = (
    "espeak-ng is needed to make narrated sample videos: install it with "
    "`sudo apt-get install espeak-ng` (Debian/Ubuntu), `sudo dnf install espeak-ng` (Fedora) "
    "or `brew install espeak-ng` (macOS)"
)

_OUTPUT_SYNCHRONOUS = 2
_RATE, _VOLUME, _PITCH = 1, 2, 3
_EVENT_WORD, _EVENT_LIST_TERMINATED = 1, 0
_CHARS_UTF8 = 1


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Voice:
    name: str  # an espeak-ng voice, optionally with a variant: "en-us+f3"
    rate: int  # words per minute
    pitch: int = 50


@dataclass
class Utterance:
    """Synthesised speech: mono int16 samples and, for each word of the text, (word, start, end)."""

    samples: np.ndarray
    sample_rate: int
    words: list[tuple[str, float, float]]


class Speaker:
    """One loaded libespeak-ng, synthesising text to samples with word timings."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng")
        if path is None:
            raise RuntimeError(INSTALL_HINT)
        self._lib = ctypes.CDLL(path)
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self.sample_rate = int(self._lib.espeak_Initialize(_OUTPUT_SYNCHRONOUS, 0, None, 0))
        if self.sample_rate <= 0:
            raise RuntimeError(f"libespeak-ng failed to initialise; {INSTALL_HINT}")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int]] = []  # (text_position, length, audio_ms)
        self._callback = _CALLBACK(self._on_audio)  # kept on self: C holds only a raw pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, n: int, events: Any) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_WORD:
                self._events.append((e.text_position, e.length, e.audio_position))
            i += 1
        return 0

    def say(self, text: str, voice: Voice) -> Utterance:
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice.name!r} (see `espeak-ng --voices`)")
        self._lib.espeak_SetParameter(_RATE, voice.rate, 0)
        self._lib.espeak_SetParameter(_PITCH, voice.pitch, 0)
        self._chunks, self._events = [], []
        data = text.encode() + b"\0"
        self._lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return Utterance(
            samples, self.sample_rate, word_times(text, self._events, samples, self.sample_rate)
        )


def word_times(
    text: str, events: list[tuple[int, int, int]], samples: np.ndarray, sample_rate: int
) -> list[tuple[str, float, float]]:
    """Map espeak's WORD events onto the text's own words.

    espeak-ng sometimes emits one event for a group of words ("I am"); words without an event
    share their group's span, split evenly. A word ends where the next starts, less the
    trailing silence found in the samples.
    """
    spans = [(m.start(), m.group()) for m in re.finditer(r"[A-Za-z']+", text)]
    if not spans:
        return []
    starts_ms: list[float | None] = [None] * len(spans)
    for pos, _length, audio_ms in events:
        char = pos - 1  # espeak's text positions are 1-based
        idx = max((i for i, (s, _) in enumerate(spans) if s <= char), default=0)
        if starts_ms[idx] is None:
            starts_ms[idx] = float(audio_ms)
    total_ms = 1000.0 * len(samples) / sample_rate
    known = [(i, s) for i, s in enumerate(starts_ms) if s is not None] or [(0, 0.0)]
    filled: list[float] = []
    for i in range(len(spans)):
        prev = max(((j, s) for j, s in known if j <= i), default=known[0])
        nxt = min(((j, s) for j, s in known if j > i), default=(len(spans), total_ms))
        frac = (i - prev[0]) / (nxt[0] - prev[0])
        filled.append(prev[1] + frac * (nxt[1] - prev[1]))
    voiced = _last_voiced_ms(samples, sample_rate)
    out = []
    for i, (_, word) in enumerate(spans):
        end = filled[i + 1] if i + 1 < len(spans) else total_ms
        end = min(end, max(voiced(filled[i], end), filled[i] + 1.0))
        out.append((word, round(filled[i] / 1000.0, 3), round(float(end) / 1000.0, 3)))
    return out


def _last_voiced_ms(samples: np.ndarray, sample_rate: int) -> Callable[[float, float], float]:
    """A function (start_ms, end_ms) → the end of sound in that range, ignoring trailing silence."""
    hop = sample_rate // 100
    n = len(samples) // hop
    energy = (
        np.abs(samples[: n * hop].astype(np.int32)).reshape(n, hop).max(axis=1)
        if n
        else np.zeros(0)
    )

    def last(start_ms: float, end_ms: float) -> float:
        a, b = int(start_ms / 10), min(int(end_ms / 10), n)
        loud = np.nonzero(energy[a:b] > 300)[0]
        return end_ms if len(loud) == 0 else float(a + loud[-1] + 1) * 10.0

    return last
