"""Transcribe: 16 kHz mono audio → word-level transcript (word, start, end, score)."""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterable
from typing import Any

from vidray.audio import pcm_chunks
from vidray.config import TranscribeConfig
from vidray.schema import Word
from vidray.stages.base import Row, Stage

_NON_WORDS = {"<s>", "</s>", "<sil>", "[noise]", "<unk>"}
_VARIANT = re.compile(r"\(\d+\)$")  # PocketSphinx marks pronunciation variants: "the(2)"

INSTALL_HINT = "PocketSphinx is needed for the CPU speech backend: pip install 'pocketsphinx>=5'"


def words_from_segments(segments: Iterable[Any], frame_rate: int = 100) -> list[Word]:
    """PocketSphinx segments → words, dropping silences, noise and sentence markers."""
    words = []
    for seg in segments:
        text = _VARIANT.sub("", seg.word).lower()
        if text in _NON_WORDS or text.startswith("++") or text.startswith("["):
            continue
        words.append(
            Word(
                text,
                seg.start_frame / frame_rate,
                (seg.end_frame + 1) / frame_rate,
                min(1.0, max(0.0, float(seg.prob))),
            )
        )
    return words


def read_vocabulary(path: str) -> dict[str, float]:
    """A vocabulary file: one word per line, optionally followed by a count; `#` starts a comment."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read transcribe.vocabulary {path!r}: {exc}") from exc
    counts: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if parts:
            count = float(parts[1]) if len(parts) > 1 else 1.0
            counts[parts[0].lower()] = counts.get(parts[0].lower(), 0.0) + count
    return counts


def write_unigram_lm(counts: dict[str, float], folder: str) -> str:
    """An ARPA unigram language model over a domain's vocabulary, words weighted by count.

    Restricting the recognizer to a domain's vocabulary (cooking, travel, ...) raises the share
    of content words it gets right far above the general English model; see docs/benchmarks.md.
    """
    if not counts:
        raise ValueError("transcribe.vocabulary is empty")
    total = sum(counts.values()) + 1.0
    lines = ["\\data\\", f"ngram 1={len(counts) + 2}", "", "\\1-grams:", "-99 <s> 0"]
    lines += [f"{math.log10(1.0 / total):.4f} </s> 0"]
    lines += [f"{math.log10(c / total):.4f} {w} 0" for w, c in sorted(counts.items())]
    lines += ["", "\\end\\", ""]
    path = os.path.join(folder, "vocabulary.arpa")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


CHUNK_S = 600.0  # long tracks are recognised in utterances of this length


class PocketSphinxRecognizer:
    """The bundled English PocketSphinx model, decoding a whole track as one utterance.

    One utterance gives a lower word error rate than cutting speech into segments first.
    """

    def __init__(self, cfg: TranscribeConfig) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(INSTALL_HINT) from exc
        kwargs: dict[str, Any] = {"loglevel": "FATAL"}
        if cfg.model != "default":
            kwargs["hmm"] = cfg.model
        if cfg.vocabulary:
            self._lm_dir = tempfile.TemporaryDirectory(prefix="vidray-lm-")
            kwargs["lm"] = write_unigram_lm(read_vocabulary(cfg.vocabulary), self._lm_dir.name)
        self.decoder = Decoder(**kwargs)
        self.frame_rate = int(self.decoder.config["frate"])
        self.model = "pocketsphinx-en-us" if cfg.model == "default" else cfg.model
        if cfg.vocabulary:
            self.model += f"+vocabulary:{os.path.basename(cfg.vocabulary)}"

    def transcribe(self, audio: bytes) -> list[Word]:
        """Words of a FLAC track, decoded in pieces of at most ten minutes (bounded memory)."""
        words: list[Word] = []
        for offset, pcm in pcm_chunks(audio, chunk_s=CHUNK_S):
            self.decoder.start_utt()
            self.decoder.process_raw(pcm.tobytes(), full_utt=True)
            self.decoder.end_utt()
            if self.decoder.hyp() is None:
                continue
            words += [
                w._replace(start=w.start + offset, end=w.end + offset)
                for w in words_from_segments(self.decoder.seg(), self.frame_rate)
            ]
        return words


BACKENDS = {"pocketsphinx": PocketSphinxRecognizer}


class TranscribeStage(Stage):
    """FLAC audio → `transcript` (a list of words with times and scores); drops the audio."""

    name = "transcribe"

    def __init__(self, cfg: TranscribeConfig) -> None:
        super().__init__(cfg)
        if cfg.backend not in BACKENDS:
            raise ValueError(f"unknown asr backend {cfg.backend!r}; known: {', '.join(BACKENDS)}")

    def setup(self) -> None:
        self.recognizer = BACKENDS[self.cfg.backend](self.cfg)

    def process(self, row: Row) -> Row:
        audio = row.get("audio")
        words = self.recognizer.transcribe(audio) if audio else []
        out = {k: v for k, v in row.items() if k != "audio"}
        return {
            **out,
            "transcript": [w._asdict() for w in words],
            "asr_backend": self.cfg.backend,
            "asr_model": self.recognizer.model,
            "language": self.cfg.language,
        }
