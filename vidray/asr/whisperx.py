"""WhisperX: the speech of many clips batched through faster-whisper together, then wav2vec2 word
alignment per clip (the GPU backend)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from vidray import devices
from vidray.asr.base import SAMPLE_RATE, Recognition, fill_missing_times, finite
from vidray.config import AsrConfig, ConfigError, WhisperXConfig
from vidray.schema import Word

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "WhisperX is needed for asr.backend=whisperx: run `make install-whisperx`. By hand: "
    "`pip install -c constraints.txt '.[whisperx]'`, `pip install --no-deps whisperx==3.8.6` "
    "(its own requirements pin torch 2.8 and CUDA packages), then delete torchaudio/lib/*.so "
    "(builds for another torch that cannot load; whisperx needs only torchaudio's Python parts)"
)
MAX_SEGMENT_S = 30.0  # Whisper's window: longer segments would be cut


def check_config(wx: WhisperXConfig) -> None:
    """Settings that can never work are job errors, raised on the driver (no whisperx import)."""
    if wx.device not in devices.DEVICES:
        raise ConfigError(f"asr.whisperx.device must be auto, cuda or cpu, not {wx.device!r}")
    if not 0 < wx.segment_s <= MAX_SEGMENT_S:
        raise ConfigError(f"asr.whisperx.segment_s must be in (0, {MAX_SEGMENT_S:g}]")
    if wx.batch_size < 1:
        raise ConfigError(f"asr.whisperx.batch_size must be >= 1, got {wx.batch_size}")


def resolve_device(device: str, compute_type: str, cuda_available: bool) -> tuple[str, str]:
    """`auto` settings → (device, compute type): CUDA with float16 when there is one, else CPU
    with int8. CUDA asked for without one is a RuntimeError, so `asr.prefer` moves on to the
    next backend."""
    return devices.resolve_device(
        device,
        compute_type,
        cuda_available,
        key="asr.whisperx",
        cpu_precision="int8",
        missing=RuntimeError,
    )


def clip_spans(segments: Sequence[Mapping[str, Any]], duration: float) -> list[tuple[float, float]]:
    """VAD segments ({"start", "end", ...} in seconds) → (start, end) inside [0, duration]."""
    spans = []
    for seg in segments:
        start, end = max(0.0, float(seg["start"])), min(duration, float(seg["end"]))
        if end > start:
            spans.append((start, end))
    return spans


def words_from_alignment(segments: Sequence[Mapping[str, Any]], duration: float) -> list[Word]:
    """`whisperx.align(...)["segments"]` → words in time order inside [0, duration].

    A word that whisperx could not align has no score: whisperx 3.8 copies a neighbour's
    times onto it, older releases leave it without times. Either way its times are re-made by
    spreading it between its timed neighbours within its segment, and flagged `interpolated`.
    A segment that failed to align comes back with its text but no words: its words are
    spread over the segment the same way.
    """
    words: list[Word] = []
    for seg in segments:
        start, end = finite(seg.get("start")), finite(seg.get("end"))
        lo = start if start is not None else (words[-1].end if words else 0.0)
        hi = min(end, duration) if end is not None and end > lo else None
        raw = seg.get("words") or [{"word": w} for w in str(seg.get("text", "")).split()]
        said = []
        for w in raw:
            text, score = str(w.get("word", "")).strip(), finite(w.get("score"))
            if text:
                times = (
                    (finite(w.get("start")), finite(w.get("end")))
                    if score is not None
                    else (None, None)
                )
                said.append((text, *times, score))
        words += fill_missing_times(said, min(max(lo, 0.0), duration), hi)
    clamped = [_clamp(w, duration) for w in words]
    return sorted(clamped, key=lambda w: (w.start, w.end))


def _pieces(
    clips: list[np.ndarray], spans: list[list[tuple[float, float]]], jobs: list[tuple[int, int]]
) -> Iterator[dict[str, np.ndarray]]:
    """The audio of segment j of clip i, for each (i, j), as the pipeline's inputs."""
    for i, j in jobs:
        start, end = spans[i][j]
        yield {"inputs": clips[i][int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]}


def _clamp(word: Word, duration: float) -> Word:
    start = min(max(0.0, word.start), duration)
    return word._replace(start=start, end=min(max(start, word.end), duration))


class WhisperXRecognizer:
    """faster-whisper (CTranslate2) and a VAD loaded once; wav2vec2 aligners loaded per language
    on first use. `recognize` runs VAD on each clip, decodes the speech segments of all clips
    together in batches of `asr.whisperx.batch_size`, then aligns each clip's words."""

    backend = "whisperx"

    def __init__(self, cfg: AsrConfig) -> None:
        os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")  # pyannote 4 sends telemetry
        try:
            import torch
            import whisperx
        except (ImportError, OSError) as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(INSTALL_HINT) from exc
        wx = cfg.whisperx
        check_config(wx)
        self.cfg = wx
        self.device, compute_type = resolve_device(
            wx.device, wx.compute_type, torch.cuda.is_available()
        )
        vad_options = {"vad_onset": wx.vad_onset, "vad_offset": wx.vad_offset}
        self.pipeline = whisperx.load_model(
            wx.model,
            self.device,
            compute_type=compute_type,
            language=cfg.language,
            vad_method=wx.vad_method,
            vad_options={**vad_options, "chunk_size": wx.segment_s},
            download_root=wx.download_root,
            threads=max(1, torch.get_num_threads()),  # Ray sets it from the actor's num_cpus
        )
        whisper = self.pipeline.model
        self.language = cfg.language or (None if whisper.model.is_multilingual else "en")
        self.model = f"{wx.model}:{compute_type}" + (f"+{wx.align_model}" if wx.align_model else "")
        self._aligners: dict[str, Any] = {}

    def speech_segments(self, clip: np.ndarray) -> list[tuple[float, float]]:
        """(start, end) seconds of the clip's speech, merged into segments of at most
        `segment_s` (the way `FasterWhisperPipeline.transcribe` does it)."""
        if len(clip) < SAMPLE_RATE // 10:
            return []
        vad = self.pipeline.vad_model
        found = vad({"waveform": vad.preprocess_audio(clip), "sample_rate": SAMPLE_RATE})
        merged = vad.merge_chunks(
            found, self.cfg.segment_s, onset=self.cfg.vad_onset, offset=self.cfg.vad_offset
        )
        return clip_spans(merged, len(clip) / SAMPLE_RATE)

    def recognize(self, clips: Sequence[np.ndarray]) -> list[Recognition]:
        clips = [np.ascontiguousarray(c, dtype=np.float32).reshape(-1) for c in clips]
        spans = [self.speech_segments(c) for c in clips]
        languages = [
            self.language or (self._detect(c, s[0][0]) if s else None)
            for c, s in zip(clips, spans, strict=True)
        ]
        texts = self._transcribe(clips, spans, languages)
        return [
            Recognition(self._align(clip, list(zip(s, t, strict=True)), lang), lang)
            for clip, s, t, lang in zip(clips, spans, texts, languages, strict=True)
        ]

    def _detect(self, clip: np.ndarray, speech_start: float) -> str:
        # whisperx detects from the first 30 s: start them where speech starts.
        return str(self.pipeline.detect_language(clip[int(speech_start * SAMPLE_RATE) :]))

    def _transcribe(
        self,
        clips: list[np.ndarray],
        spans: list[list[tuple[float, float]]],
        languages: list[str | None],
    ) -> list[list[str]]:
        """The text of every speech segment of every clip; one batched pass per language."""
        from faster_whisper.tokenizer import Tokenizer

        texts = [[""] * len(s) for s in spans]
        whisper = self.pipeline.model
        for language in dict.fromkeys(lang for lang, s in zip(languages, spans, strict=True) if s):
            jobs = [
                (i, j)
                for i, s in enumerate(spans)
                if languages[i] == language
                for j in range(len(s))
            ]
            # The pipeline decodes with the prompt of its current tokenizer (language + task).
            self.pipeline.tokenizer = Tokenizer(
                whisper.hf_tokenizer, whisper.model.is_multilingual, "transcribe", language
            )

            # transformers.Pipeline.__call__ on a generator: preprocess (log-mel, padded to 30 s),
            # stack `batch_size` segments, WhisperModel.generate_segment_batched, one output each.
            pieces = _pieces(clips, spans, jobs)
            outputs = self.pipeline(pieces, batch_size=self.cfg.batch_size, num_workers=0)
            for (i, j), out in zip(jobs, outputs, strict=True):
                text = out["text"]
                texts[i][j] = text[0] if isinstance(text, list) else str(text)
        return texts

    def _align(
        self,
        clip: np.ndarray,
        segments: list[tuple[tuple[float, float], str]],
        language: str | None,
    ) -> list[Word]:
        import whisperx

        transcript = [{"start": s, "end": e, "text": t} for (s, e), t in segments if t.strip()]
        if not transcript or language is None:
            return []
        duration = len(clip) / SAMPLE_RATE
        aligner = self._aligner(language)
        if aligner is None:  # no alignment model for this language: words spread over segments
            return words_from_alignment(transcript, duration)
        model, metadata = aligner
        aligned = whisperx.align(transcript, model, metadata, clip, self.device)
        return words_from_alignment(aligned["segments"], duration)

    def _aligner(self, language: str) -> tuple[Any, Any] | None:
        if language not in self._aligners:
            import whisperx

            try:
                self._aligners[language] = whisperx.load_align_model(
                    language, self.device, self.cfg.align_model, self.cfg.download_root
                )
            except ValueError:
                # The same error says "no default model for this language" and "could not
                # fetch it": only the first may degrade to interpolated times for good.
                from whisperx.alignment import (
                    DEFAULT_ALIGN_MODELS_HF,
                    DEFAULT_ALIGN_MODELS_TORCH,
                )

                if self.cfg.align_model or language in {
                    *DEFAULT_ALIGN_MODELS_HF,
                    *DEFAULT_ALIGN_MODELS_TORCH,
                }:
                    raise
                log.warning(
                    "whisperx has no alignment model for %r: word times interpolated", language
                )
                self._aligners[language] = None
        return self._aligners[language]
