"""WhisperX backend: the real whisperx API on tiny random models (built here) and espeak-ng speech.

Random models hear nothing real, so these tests check the plumbing: one recognition per clip,
batches that mix clips, word times inside their clip, words whisperx could not align spread and
flagged, silence, language detection. Every segment decodes to the same 16 pseudo-words.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidray.asr.base import SAMPLE_RATE, Recognition
from vidray.asr.whisperx import clip_spans, resolve_device, words_from_alignment
from vidray.config import AsrConfig, ConfigError, DecodeConfig
from vidray.schema import Word
from vidray.stages.decode import DecodeStage
from vidray.stages.transcribe import TranscribeStage
from vidray.testing.asr_models import LANGUAGES, WhisperXModels, whisperx_models

WORDS = 16  # pseudo-words per segment: ~110 characters, more than 0.5 s of wav2vec2 frames


# -- pure functions --------------------------------------------------------------------------


def test_auto_device_is_cuda_with_float16_when_there_is_one() -> None:
    assert resolve_device("auto", "auto", cuda_available=True) == ("cuda", "float16")
    assert resolve_device("auto", "auto", cuda_available=False) == ("cpu", "int8")
    assert resolve_device("cpu", "float32", cuda_available=True) == ("cpu", "float32")
    with pytest.raises(ConfigError):
        resolve_device("tpu", "auto", cuda_available=False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        resolve_device("cuda", "auto", cuda_available=False)


def test_vad_segments_are_cut_to_the_clip() -> None:
    segs = [{"start": -0.02, "end": 1.5}, {"start": 2.0, "end": 4.3}, {"start": 4.1, "end": 4.2}]
    assert clip_spans(segs, duration=4.0) == [(0.0, 1.5), (2.0, 4.0)]


def _f(x: float) -> Any:
    return np.float64(x)  # whisperx hands back numpy floats


# The shape of `whisperx.align(...)["segments"]` (3.8.6, taken from a run), plus a word as older
# releases leave it (no times, no score) and one 3.8 fills itself (a neighbour's times, no score).
ALIGNED: list[dict[str, Any]] = [
    {
        "start": 0.5,
        "end": 1.088,
        "text": " Stir for 5 minutes at 200 °C.",
        "words": [
            {"word": "Stir", "start": _f(0.5), "end": _f(0.581), "score": _f(0.93)},
            {"word": "for", "start": _f(0.601), "end": _f(0.662), "score": _f(0.8)},
            {"word": "5"},
            {"word": "minutes", "start": _f(0.723), "end": _f(0.865), "score": _f(0.9)},
            {"word": "at", "start": _f(0.885), "end": _f(0.926), "score": _f(0.7)},
            {"word": "200", "start": _f(0.885), "end": _f(0.926)},
            {"word": "°C.", "start": _f(1.027), "end": _f(1.088), "score": _f(0.6)},
        ],
    },
    {"chars": None, "start": 2.5, "end": 2.9, "text": " Then serve it hot", "words": []},
    {"start": float("nan"), "end": 3.2, "text": " ...", "words": [{"word": "..."}]},
]


def test_unaligned_words_are_spread_over_their_segment_and_flagged() -> None:
    words = words_from_alignment(ALIGNED, duration=3.1)
    assert " ".join(w.word for w in words) == "Stir for 5 minutes at 200 °C. Then serve it hot ..."
    by = {w.word: w for w in words}
    assert by["5"] == Word("5", 0.662, 0.723, 0.0, True)  # between "for" and "minutes"
    assert by["200"] == Word("200", 0.926, 1.027, 0.0, True)  # its copied times dropped
    assert not by["Stir"].interpolated and by["Stir"].score == pytest.approx(0.93)
    assert [w.start for w in words[7:11]] == pytest.approx([2.5, 2.6, 2.7, 2.8])
    assert all(w.interpolated for w in words[7:])
    _check(words, 3.1)


# -- the real whisperx on tiny models --------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WhisperXModels]:
    pytest.importorskip("whisperx", reason="WhisperX is not installed (make install-whisperx)")
    import nltk
    import torch

    built = whisperx_models(tmp_path_factory.mktemp("whisperx"), words=WORDS)
    nltk.data.path.insert(0, str(built.nltk_data))
    # One thread: on a busy 2-core machine pyannote's VAD LSTM on two threads went from 0.4 s
    # to 30 s a call (each time step waits for a descheduled thread).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:  # nothing may be downloaded
        mp.setattr(socket.socket, "connect", _refuse)
        yield built
    torch.set_num_threads(threads)
    nltk.data.path.remove(str(built.nltk_data))


def _refuse(*args: Any) -> None:
    raise OSError("this test must not reach the network")


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    """Clips of different lengths; the second says one short word, the third is silent."""
    from vidray.testing.speech import Speaker, Voice

    speaker, voice = Speaker(), Voice("en-us", 160)

    def speech(text: str, before: float, after: float) -> np.ndarray:
        said = speaker.say(text, voice)
        n = round(len(said.samples) * SAMPLE_RATE / said.sample_rate)
        x = np.arange(n) * said.sample_rate / SAMPLE_RATE
        samples = np.interp(x, np.arange(len(said.samples)), said.samples) / 32768.0
        return np.concatenate(
            [np.zeros(int(before * SAMPLE_RATE)), samples, np.zeros(int(after * SAMPLE_RATE))]
        ).astype(np.float32)

    return [
        speech("The chef slices two onions and a carrot, then heats the oil in a pan.", 1.0, 0.5),
        speech("Stir.", 1.5, 1.0),
        np.zeros(3 * SAMPLE_RATE, np.float32),
        speech(
            "The onions go in first. After five minutes, the garlic and the tomatoes.", 0.2, 2.0
        ),
    ]


def _config(models: WhisperXModels, **asr: Any) -> AsrConfig:
    cfg = AsrConfig(backend="whisperx", **asr)
    cfg.whisperx.model, cfg.whisperx.align_model = str(models.whisper), str(models.aligner)
    cfg.whisperx.device, cfg.whisperx.batch_size = "cpu", 8
    return cfg


@pytest.fixture(scope="module")
def recognizer(models: WhisperXModels) -> Any:
    from vidray.asr.whisperx import WhisperXRecognizer

    return WhisperXRecognizer(_config(models, language="en"))


def _check(words: list[Word], duration: float) -> None:
    assert all(0.0 <= w.start <= w.end <= duration for w in words)
    assert all(math.isfinite(w.start) and 0.0 <= w.score <= 1.0 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)


def _batches(recognizer: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Segments per forward pass of the whisper model, recorded as it runs."""
    sizes: list[int] = []
    whisper = recognizer.pipeline.model
    real = whisper.generate_segment_batched

    def counted(features: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(int(features.shape[0]))
        return real(features, *args, **kwargs)

    monkeypatch.setattr(whisper, "generate_segment_batched", counted)
    return sizes


def test_one_recognition_per_clip_with_words_inside_it(
    recognizer: Any, clips: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _batches(recognizer, monkeypatch)
    results = recognizer.recognize(clips)
    assert recognizer.backend == "whisperx" and "int8" in recognizer.model
    assert len(results) == len(clips) and all(isinstance(r, Recognition) for r in results)
    assert [r.language for r in results] == ["en"] * 4
    segments = [recognizer.speech_segments(c) for c in clips]
    assert [len(s) > 0 for s in segments] == [True, True, False, True]
    # Segments of different clips share forward passes.
    assert sum(batches) == sum(map(len, segments)) and max(batches) > max(map(len, segments))
    for clip, spans, result in zip(clips, segments, results, strict=True):
        _check(result.words, len(clip) / SAMPLE_RATE)
        assert len(result.words) == WORDS * len(spans)
        for w in result.words:
            assert any(s - 0.05 <= w.start and w.end <= e + 0.05 for s, e in spans)
    long, short, silent, _ = results
    assert silent.words == []
    assert not any(w.interpolated for w in long.words)
    # ~110 characters do not fit half a second of frames: whisperx gives that segment back
    # without words, and its words are spread over it.
    assert all(w.interpolated for w in short.words)
    ((start, end),) = segments[1]
    assert short.words[0].start == pytest.approx(start)
    assert short.words[-1].end == pytest.approx(end)


def test_batches_fill_across_clips(
    recognizer: Any, clips: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _batches(recognizer, monkeypatch)
    monkeypatch.setattr(recognizer.cfg, "batch_size", 2)
    results = recognizer.recognize([clips[1], clips[0], clips[2], clips[1], clips[3]])
    assert batches == [2, 2]  # four speech segments of four clips (one silent) in two passes
    assert [len(r.words) for r in results] == [WORDS, WORDS, 0, WORDS, WORDS]


def test_silence_alone_gives_no_words(recognizer: Any) -> None:
    quiet = [np.zeros(SAMPLE_RATE, np.float32), np.zeros(10, np.float32)]
    assert recognizer.recognize(quiet) == [Recognition([], "en"), Recognition([], "en")]
    assert recognizer.recognize([]) == []


def test_language_is_detected_per_clip(models: WhisperXModels, clips: list[np.ndarray]) -> None:
    from vidray.asr.whisperx import WhisperXRecognizer

    results = WhisperXRecognizer(_config(models, language=None)).recognize(clips)
    assert all(r.language in LANGUAGES for i, r in enumerate(results) if i != 2)
    assert results[2] == Recognition([], None)
    assert [len(r.words) for r in results] == [WORDS, WORDS, 0, WORDS]


def test_a_language_without_an_alignment_model_keeps_segment_times(
    models: WhisperXModels, clips: list[np.ndarray]
) -> None:
    from vidray.asr.whisperx import WhisperXRecognizer

    cfg = _config(models, language="haw")  # whisperx has no default aligner for Hawaiian
    cfg.whisperx.align_model = None
    rec = WhisperXRecognizer(cfg)
    (result,) = rec.recognize(clips[:1])
    assert result.language == "haw" and len(result.words) == WORDS
    assert all(w.interpolated for w in result.words)
    _check(result.words, len(clips[0]) / SAMPLE_RATE)


def test_the_stage_chunks_and_batches_videos_through_whisperx(
    models: WhisperXModels, samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"video_id": p.stem, "source": str(p)} for p in sorted(samples.glob("*.mp4"))]
    decoded = DecodeStage(DecodeConfig())(rows).to_pylist()
    cfg = _config(models, language="en", chunk_s=25.0, overlap_s=4.0)
    stage = TranscribeStage(cfg)
    batches = _batches(stage.recognizer, monkeypatch)
    out = stage(decoded).to_pylist()
    assert [r["asr_backend"] for r in out] == ["whisperx", "whisperx"]
    assert all(r["language"] == "en" and "int8" in r["asr_model"] for r in out)
    # Two 25 s chunks per 40 s video: the speech segments of all four share one forward pass.
    assert len(batches) == 1 and batches[0] >= 4
    for row in out:
        words = row["transcript"]
        assert words and all(0 <= w["start"] <= w["end"] <= row["duration_s"] + 0.1 for w in words)
        assert [w["start"] for w in words] == sorted(w["start"] for w in words)


def test_prefer_falls_back_when_whisperx_cannot_run_here(
    models: WhisperXModels, samples: Path
) -> None:
    decoded = DecodeStage(DecodeConfig())(
        [{"video_id": "v", "source": str(samples / "sample_000.mp4")}]
    )
    cfg = _config(models, prefer=["whisperx", "pocketsphinx"])
    cfg.whisperx.device = "cuda"  # no GPU on this machine: PocketSphinx serves instead
    (row,) = TranscribeStage(cfg)(decoded).to_pylist()
    assert row["asr_backend"] == "pocketsphinx" and row["transcript"]


@pytest.mark.gpu
def test_on_cuda_with_float16(models: WhisperXModels, clips: list[np.ndarray]) -> None:
    import ctranslate2
    import torch

    if not torch.cuda.is_available() or ctranslate2.get_cuda_device_count() == 0:
        pytest.skip("needs CUDA for torch and CTranslate2")
    from vidray.asr.whisperx import WhisperXRecognizer

    cfg = _config(models, language="en")
    cfg.whisperx.device, cfg.whisperx.compute_type = "auto", "auto"
    rec = WhisperXRecognizer(cfg)
    assert rec.device == "cuda" and "float16" in rec.model
    results = rec.recognize(clips)
    assert [len(r.words) for r in results] == [WORDS, WORDS, 0, WORDS]
    for clip, result in zip(clips, results, strict=True):
        _check(result.words, len(clip) / SAMPLE_RATE)
