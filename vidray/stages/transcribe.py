"""Transcribe: captions or 16 kHz audio → a word-level transcript (word, start, end, score).

Backends (`asr.backend`, or an ordered `asr.prefer` list):

- `subtitles`: creator or automatic captions fetched with the video, when a usable track
  exists; otherwise the next backend in `asr.prefer` is used;
- `whisperx`: batched faster-whisper + wav2vec2 alignment (GPU in production);
- `pocketsphinx`: the bundled English model on CPU (the embedded default).

Of the audio backends in the list, the first that loads on this machine serves every video
that captions did not: `prefer: [subtitles, whisperx, pocketsphinx]` runs WhisperX where it is
installed and PocketSphinx elsewhere. Long audio is cut into overlapping chunks, and chunks of
all the videos in a batch go to the recognizer together (up to `asr.batch_audio_s` of audio
at a time), so a GPU backend fills its batches across videos while memory stays bounded.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidray.asr.base import SAMPLE_RATE, Recognition, Recognizer, shift, stitch, to_float
from vidray.asr.subtitles import transcribe_subtitles
from vidray.audio import pcm_chunks
from vidray.config import AsrConfig, ConfigError, PocketSphinxConfig
from vidray.schema import Word
from vidray.stages.base import Batch, Row, Stage, VideoError, failed, rows_to_table, to_rows

log = logging.getLogger(__name__)

AUDIO_BACKENDS = ("whisperx", "pocketsphinx")
BACKENDS = ("subtitles", *AUDIO_BACKENDS)


def load_recognizer(name: str, cfg: AsrConfig) -> Recognizer:
    if name == "pocketsphinx":
        from vidray.asr.pocketsphinx import PocketSphinxRecognizer

        return PocketSphinxRecognizer(cfg)
    from vidray.asr.whisperx import WhisperXRecognizer

    return WhisperXRecognizer(cfg)


def check_backends(cfg: AsrConfig) -> list[str]:
    """The backends to try, in order; a name that is not a backend is a job error."""
    names = cfg.backends()
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        key = "asr.prefer" if cfg.prefer else "asr.backend"
        raise ConfigError(f"unknown {key} {', '.join(unknown)}; known: {', '.join(BACKENDS)}")
    if cfg.chunk_s <= 0 or not 0 <= cfg.overlap_s < cfg.chunk_s / 2:
        raise ConfigError(
            f"asr.chunk_s must be > 0 and asr.overlap_s in [0, chunk_s / 2), got chunk_s "
            f"{cfg.chunk_s:g}, overlap_s {cfg.overlap_s:g}"
        )
    if cfg.batch_audio_s <= 0:
        raise ConfigError(f"asr.batch_audio_s must be > 0, got {cfg.batch_audio_s:g}")
    if cfg.pocketsphinx.vocabulary and cfg.pocketsphinx.lm:
        raise ConfigError("set asr.pocketsphinx.vocabulary or asr.pocketsphinx.lm, not both")
    if "whisperx" in names:
        from vidray.asr.whisperx import check_config

        check_config(cfg.whisperx)
    audio = [i for i, n in enumerate(names) if n in AUDIO_BACKENDS]
    if "subtitles" in names and audio and names.index("subtitles") > audio[0]:
        raise ConfigError(
            "asr.prefer lists subtitles after a speech backend, which always answers first: "
            "put subtitles first (e.g. [subtitles, whisperx, pocketsphinx])"
        )
    return names


def check_pocketsphinx_files(cfg: PocketSphinxConfig) -> None:
    """Missing model files are job errors, found on the driver before any video is read."""
    from vidray.asr.pocketsphinx import read_vocabulary

    if cfg.vocabulary:
        read_vocabulary(cfg.vocabulary)
    for key in ("lm", "dictionary"):
        path = getattr(cfg, key)
        if path and not Path(path).is_file():
            raise ConfigError(f"asr.pocketsphinx.{key} {path!r} is not a file")


class TranscribeStage(Stage):
    """Rows with `audio` (FLAC) and `subtitles` → `transcript`, `asr_backend`, `asr_model`,
    `language`; the audio is dropped."""

    name = "transcribe"

    cfg: AsrConfig

    def __init__(self, cfg: AsrConfig) -> None:
        super().__init__(cfg)
        self.order = check_backends(cfg)
        if "pocketsphinx" in self.order:
            check_pocketsphinx_files(cfg.pocketsphinx)
        self._recognizer: Recognizer | None = None
        self._load_error: Exception | None = None

    @property
    def recognizer(self) -> Recognizer:
        """The first audio backend in the list that loads here; loaded on first need only, so
        a run served entirely by captions never loads a speech model."""
        if self._load_error is not None:  # not retried on every batch
            raise self._load_error
        if self._recognizer is None:
            names = [n for n in self.order if n in AUDIO_BACKENDS]
            for i, name in enumerate(names):
                try:
                    self._recognizer = load_recognizer(name, self.cfg)
                    break
                except Exception as exc:
                    if i == len(names) - 1 or isinstance(exc, ConfigError):
                        self._load_error = exc
                        raise
                    log.warning(
                        "asr backend %s unavailable (%s); trying %s", name, exc, names[i + 1]
                    )
        assert self._recognizer is not None
        return self._recognizer

    def __call__(self, batch: Batch) -> Any:
        rows = to_rows(batch)
        out: list[Row | None] = [row if row.get("error") else None for row in rows]
        need_audio = []
        for i, row in enumerate(rows):
            if out[i] is None:
                try:
                    out[i] = self.from_captions(row)
                except Exception as exc:
                    out[i] = failed(row, self.name, exc)
                if out[i] is None:
                    need_audio.append(i)
        if need_audio:
            for i, result in zip(
                need_audio, self.from_audio([rows[i] for i in need_audio]), strict=True
            ):
                out[i] = result
        return rows_to_table([r for r in out if r is not None])

    def from_captions(self, row: Row) -> Row | None:
        """The row transcribed from its captions, if captions come first and a track is usable."""
        for name in self.order:
            if name in AUDIO_BACKENDS:
                return None
            found = transcribe_subtitles(row.get("subtitles") or [], self.cfg)
            if found:
                words, language, model = found
                return finish(row, words, "subtitles", model, language)
        raise VideoError("no_subtitles", "no usable caption track and no audio backend configured")

    def from_audio(self, rows: list[Row]) -> list[Row]:
        """Rows transcribed by the audio backend, their chunks batched across the rows."""
        pieces: list[list[tuple[float, float, list[Word]]]] = [[] for _ in rows]
        languages: list[Counter[str]] = [Counter() for _ in rows]
        errors: dict[int, Exception] = {}
        try:
            recognizer = self.recognizer
        except ConfigError:
            raise  # a job error: every video would fail the same way
        except Exception as exc:
            return [failed(row, self.name, exc) for row in rows]
        pending: list[tuple[int, float, np.ndarray]] = []

        def run() -> None:
            for idx, start, clip, result in recognize_isolated(recognizer, pending):
                if isinstance(result, Exception):
                    errors.setdefault(idx, result)
                    continue
                pieces[idx].append(
                    (start, start + len(clip) / SAMPLE_RATE, shift(result.words, start))
                )
                if result.language:
                    languages[idx][result.language] += len(clip)
            pending.clear()

        held = 0.0
        for idx, start, clip in self.clips(rows, errors):
            pending.append((idx, start, clip))
            held += len(clip) / SAMPLE_RATE
            if held >= self.cfg.batch_audio_s:
                run()
                held = 0.0
        run()
        out = []
        for idx, row in enumerate(rows):
            if idx in errors:
                out.append(failed(row, self.name, errors[idx]))
                continue
            # The language most of the video's audio was heard in (the earlier one on a tie).
            heard = languages[idx].most_common(1)
            language = heard[0][0] if heard else None
            words = stitch(sorted(pieces[idx], key=lambda p: p[0]))
            model = recognizer.model
            out.append(finish(row, words, recognizer.backend, model, language or self.cfg.language))
        return out

    def clips(
        self, rows: list[Row], errors: dict[int, Exception]
    ) -> Iterator[tuple[int, float, np.ndarray]]:
        """(row index, start seconds, float32 samples) for every chunk of every row's audio."""
        for idx, row in enumerate(rows):
            if not row.get("audio"):
                continue
            try:
                for start, pcm in pcm_chunks(row["audio"], self.cfg.chunk_s, self.cfg.overlap_s):
                    yield idx, start, to_float(pcm)
            except Exception as exc:
                errors[idx] = VideoError("corrupt_audio", f"cannot read the decoded audio: {exc}")


def recognize_isolated(
    recognizer: Recognizer, pending: list[tuple[int, float, np.ndarray]]
) -> Iterator[tuple[int, float, np.ndarray, Recognition | Exception]]:
    """Recognize all pending clips in one call; if that fails, clip by clip, so one bad clip
    fails only its own video."""
    if not pending:
        return
    try:
        results: list[Recognition | Exception] = list(
            recognizer.recognize([c for _, _, c in pending])
        )
    except Exception as exc:
        log.warning("recognizing %d clips failed (%s); retrying one by one", len(pending), exc)
        results = []
        for _, _, clip in pending:
            try:
                results.append(recognizer.recognize([clip])[0])
            except Exception as exc:
                results.append(exc)
    for (idx, start, clip), result in zip(pending, results, strict=True):
        yield idx, start, clip, result


def finish(row: Row, words: list[Word], backend: str, model: str, language: str | None) -> Row:
    out = {k: v for k, v in row.items() if k != "audio"}
    return {
        **out,
        "transcript": [w._asdict() for w in words],
        "asr_backend": backend,
        "asr_model": model,
        "language": language,
    }
