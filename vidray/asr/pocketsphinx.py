"""PocketSphinx: the embedded CPU default, with its bundled English model (no download)."""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from vidray.asr.base import Recognition, to_int16
from vidray.config import AsrConfig, read_list_file
from vidray.schema import Word

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
    counts: dict[str, float] = {}
    for parts in read_list_file(path, "asr.pocketsphinx.vocabulary"):
        count = float(parts[1]) if len(parts) > 1 else 1.0
        counts[parts[0].lower()] = counts.get(parts[0].lower(), 0.0) + count
    return counts


def write_unigram_lm(counts: dict[str, float], folder: str) -> str:
    """An ARPA unigram language model over a domain's vocabulary, words weighted by count.

    Restricting the recognizer to a domain's vocabulary (cooking, travel, ...) raises the share
    of content words it gets right far above the general English model; see docs/benchmarks.md.
    """
    if not counts:
        raise ValueError("asr.pocketsphinx.vocabulary is empty")
    total = sum(counts.values()) + 1.0
    lines = ["\\data\\", f"ngram 1={len(counts) + 2}", "", "\\1-grams:", "-99 <s> 0"]
    lines += [f"{math.log10(1.0 / total):.4f} </s> 0"]
    lines += [f"{math.log10(c / total):.4f} {w} 0" for w, c in sorted(counts.items())]
    lines += ["", "\\end\\", ""]
    path = os.path.join(folder, "vocabulary.arpa")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


class PocketSphinxRecognizer:
    """Decodes each clip as one utterance: lower word error than cutting speech into segments
    first (docs/benchmarks.md). English only, unless `asr.pocketsphinx.model` names another
    acoustic model folder."""

    backend = "pocketsphinx"

    def __init__(self, cfg: AsrConfig) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(INSTALL_HINT) from exc
        ps = cfg.pocketsphinx
        kwargs: dict[str, Any] = {"loglevel": "FATAL"}
        if ps.model != "default":
            kwargs["hmm"] = ps.model
        if ps.lm:
            kwargs["lm"] = ps.lm
        if ps.dictionary:
            kwargs["dict"] = ps.dictionary
        if ps.vocabulary:
            self._lm_dir = tempfile.TemporaryDirectory(prefix="vidray-lm-")
            kwargs["lm"] = write_unigram_lm(read_vocabulary(ps.vocabulary), self._lm_dir.name)
        self.decoder = Decoder(**kwargs)
        self.frame_rate = int(self.decoder.config["frate"])
        self.language = cfg.language or "en"
        self.model = "pocketsphinx-en-us" if ps.model == "default" else ps.model
        for key, path in (("vocabulary", ps.vocabulary), ("lm", ps.lm), ("dict", ps.dictionary)):
            if path:
                self.model += f"+{key}:{os.path.basename(path)}"

    def recognize(self, clips: Sequence[np.ndarray]) -> list[Recognition]:
        return [Recognition(self._words(clip), self.language) for clip in clips]

    def _words(self, clip: np.ndarray) -> list[Word]:
        # The feature state (cepstral mean) carries over between utterances: without a reset a
        # clip's words and scores depend on what the actor decoded before, so a resumed or
        # differently batched build would label differently.
        self.decoder.reinit_feat()
        self.decoder.start_utt()
        self.decoder.process_raw(to_int16(clip).tobytes(), full_utt=True)
        self.decoder.end_utt()
        if self.decoder.hyp() is None:
            return []
        return words_from_segments(self.decoder.seg(), self.frame_rate)
