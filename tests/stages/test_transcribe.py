import itertools
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vidray.asr.base import Recognition
from vidray.asr.pocketsphinx import (
    PocketSphinxRecognizer,
    read_vocabulary,
    words_from_segments,
    write_unigram_lm,
)
from vidray.config import AsrConfig, ConfigError, DecodeConfig, PocketSphinxConfig
from vidray.stages.decode import DecodeStage
from vidray.stages.transcribe import TranscribeStage

VTT = """WEBVTT

00:00:01.000 --> 00:00:03.000
Slice the tomato

00:00:03.000 --> 00:00:05.000
with a sharp knife
"""


@pytest.fixture(scope="module")
def decoded(samples: Path) -> list[dict]:
    rows = [{"video_id": p.stem, "source": str(p)} for p in sorted(samples.glob("*.mp4"))]
    return DecodeStage(DecodeConfig())(rows).to_pylist()


class Counting:
    """Wraps a real recognizer and records the clips of each call (batching is the subject)."""

    def __init__(self, inner: PocketSphinxRecognizer) -> None:
        self.inner, self.backend, self.model = inner, inner.backend, inner.model
        self.calls: list[list[float]] = []

    def recognize(self, clips: Sequence[np.ndarray]) -> list[Recognition]:
        self.calls.append([len(c) / 16_000 for c in clips])
        return self.inner.recognize(clips)


def test_segments_to_words_drops_markers_and_variants() -> None:
    segs = [
        SimpleNamespace(word="<s>", start_frame=0, end_frame=9, prob=1.0),
        SimpleNamespace(word="the(2)", start_frame=10, end_frame=19, prob=0.5),
        SimpleNamespace(word="<sil>", start_frame=20, end_frame=29, prob=1.0),
        SimpleNamespace(word="[NOISE]", start_frame=30, end_frame=39, prob=1.0),
        SimpleNamespace(word="tomato", start_frame=40, end_frame=79, prob=1.0002),
        SimpleNamespace(word="</s>", start_frame=80, end_frame=89, prob=1.0),
    ]
    words = words_from_segments(segs, 100)
    assert [(w.word, w.start, w.end) for w in words] == [("the", 0.1, 0.2), ("tomato", 0.4, 0.8)]
    assert words[1].score == 1.0  # posteriors are clipped to [0, 1]


def test_vocabulary_file_with_counts(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("# cooking\nTomato 3\nknife\ntomato 1\n")
    assert read_vocabulary(str(path)) == {"tomato": 4.0, "knife": 1.0}


@pytest.mark.parametrize("vocabulary", [False, True])
def test_real_speech_is_recognised_with_times(
    samples: Path, decoded: list[dict], sample_truth, vocabulary: bool
) -> None:  # type: ignore[no-untyped-def]
    ps = PocketSphinxConfig(vocabulary=str(samples / "vocabulary.txt") if vocabulary else None)
    row = TranscribeStage(AsrConfig(pocketsphinx=ps))(decoded[:1]).to_pylist()[0]
    assert "audio" not in row and row["asr_backend"] == "pocketsphinx"
    assert row["language"] == "en" and row["asr_model"].startswith("pocketsphinx-en-us")
    words = row["transcript"]
    said = [w for s in sample_truth.scenes for w in s.words]
    assert len(words) > 0.5 * len(said)
    assert all(0 <= w["start"] < w["end"] <= sample_truth.duration + 0.5 for w in words)
    # Recognised words land near the time the same word was really said.
    truth_times: dict[str, list[float]] = {}
    for w in said:
        truth_times.setdefault(w.word.lower(), []).append(w.start)
    matched = [w for w in words if w["word"] in truth_times and len(w["word"]) > 3]
    assert len(matched) >= (8 if vocabulary else 3)
    close = [w for w in matched if min(abs(w["start"] - t) for t in truth_times[w["word"]]) < 0.5]
    assert len(close) >= 0.7 * len(matched)


def test_a_clip_is_recognised_the_same_whatever_came_before(
    samples: Path, decoded: list[dict]
) -> None:
    from vidray.asr.base import to_float
    from vidray.audio import pcm_chunks

    first, second = (to_float(next(pcm_chunks(row["audio"], 30.0, 0.0))[1]) for row in decoded)
    cfg = AsrConfig(pocketsphinx=PocketSphinxConfig(vocabulary=str(samples / "vocabulary.txt")))
    fresh = PocketSphinxRecognizer(cfg).recognize([first])[0]
    used = PocketSphinxRecognizer(cfg)
    used.recognize([second])
    assert fresh.words and used.recognize([first])[0] == fresh


def test_a_language_model_file(samples: Path, decoded: list[dict], tmp_path: Path) -> None:
    lm = write_unigram_lm(read_vocabulary(str(samples / "vocabulary.txt")), str(tmp_path))
    row = TranscribeStage(AsrConfig(pocketsphinx=PocketSphinxConfig(lm=lm)))(decoded[:1])
    row = row.to_pylist()[0]
    assert row["asr_model"] == "pocketsphinx-en-us+lm:vocabulary.arpa"
    vocabulary = set(read_vocabulary(str(samples / "vocabulary.txt")))
    assert row["transcript"] and {w["word"] for w in row["transcript"]} <= vocabulary


def test_chunked_audio_gives_the_same_words_once(samples: Path, decoded: list[dict]) -> None:
    # The domain vocabulary keeps recognition stable enough to compare chunked and whole runs.
    ps = PocketSphinxConfig(vocabulary=str(samples / "vocabulary.txt"))
    whole = TranscribeStage(AsrConfig(pocketsphinx=ps))(decoded[:1]).to_pylist()[0]["transcript"]
    chunked_cfg = AsrConfig(chunk_s=15.0, overlap_s=4.0, pocketsphinx=ps)
    chunked = TranscribeStage(chunked_cfg)(decoded[:1]).to_pylist()[0]["transcript"]
    starts = [w["start"] for w in chunked]
    assert starts == sorted(starts)
    # No word heard by two chunks is kept twice: a repeat would overlap its twin in time.
    for a, b in itertools.pairwise(chunked):
        assert not (a["word"] == b["word"] and b["start"] < a["end"])
    assert abs(len(chunked) - len(whole)) <= 0.2 * len(whole)
    # Most words of the whole-track run are heard at the same time in the chunked run.
    same = [
        w
        for w in whole
        if any(v["word"] == w["word"] and abs(v["start"] - w["start"]) < 0.3 for v in chunked)
    ]
    assert len(same) >= 0.7 * len(whole), (len(same), len(whole))


def test_chunks_of_several_videos_go_to_the_recognizer_together(decoded: list[dict]) -> None:
    durations = [r["duration_s"] for r in decoded]
    stage = TranscribeStage(AsrConfig(chunk_s=15.0, overlap_s=1.0, batch_audio_s=1e6))
    counting = Counting(PocketSphinxRecognizer(stage.cfg))
    stage._recognizer = counting
    rows = stage(decoded).to_pylist()
    assert len(counting.calls) == 1  # every chunk of both videos in one call
    assert len(counting.calls[0]) >= 2 * 3 and sum(counting.calls[0]) > sum(durations)
    assert all(r["transcript"] and r["asr_backend"] == "pocketsphinx" for r in rows)

    stage = TranscribeStage(AsrConfig(chunk_s=15.0, overlap_s=1.0, batch_audio_s=30.0))
    counting = Counting(PocketSphinxRecognizer(stage.cfg))
    stage._recognizer = counting
    stage(decoded)
    assert len(counting.calls) > 2 and all(sum(c) <= 45.0 for c in counting.calls)


def test_captions_first_then_speech(decoded: list[dict]) -> None:
    captioned = {
        **decoded[0],
        "subtitles": [{"lang": "en", "ext": "vtt", "automatic": False, "text": VTT}],
    }
    stage = TranscribeStage(AsrConfig(prefer=["subtitles", "pocketsphinx"]))
    a, b = stage([captioned, decoded[1]]).to_pylist()
    assert a["asr_backend"] == "subtitles" and a["language"] == "en"
    assert [w["word"] for w in a["transcript"]][:3] == ["Slice", "the", "tomato"] or [
        w["word"].lower() for w in a["transcript"]
    ][:3] == ["slice", "the", "tomato"]
    assert "audio" not in a
    assert b["asr_backend"] == "pocketsphinx" and b["transcript"]


def test_captions_only_without_a_track_is_a_video_error(decoded: list[dict]) -> None:
    row = TranscribeStage(AsrConfig(backend="subtitles"))(decoded[:1]).to_pylist()[0]
    assert row["error_stage"] == "transcribe" and row["error_reason"] == "no_subtitles"


def test_bad_audio_fails_only_its_video(decoded: list[dict]) -> None:
    bad = {**decoded[0], "video_id": "bad", "audio": b"not flac at all"}
    rows = TranscribeStage(AsrConfig())([bad, decoded[1]]).to_pylist()
    assert rows[0]["error_reason"] == "corrupt_audio" and rows[0]["video_id"] == "bad"
    assert rows[1]["transcript"]


def test_no_audio_gives_an_empty_transcript(decoded: list[dict]) -> None:
    row = TranscribeStage(AsrConfig())([{**decoded[0], "audio": None}]).to_pylist()[0]
    assert row["transcript"] == [] and row["asr_backend"] == "pocketsphinx"


def test_unknown_backend_and_missing_vocabulary_are_job_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown asr\.backend nope"):
        TranscribeStage(AsrConfig(backend="nope"))
    with pytest.raises(ConfigError, match=r"unknown asr\.prefer"):
        TranscribeStage(AsrConfig(prefer=["subtitles", "whisper"]))
    with pytest.raises(ConfigError, match="put subtitles first"):
        TranscribeStage(AsrConfig(prefer=["pocketsphinx", "subtitles"]))
    with pytest.raises(ConfigError, match=r"asr\.pocketsphinx\.lm"):
        TranscribeStage(AsrConfig(pocketsphinx=PocketSphinxConfig(lm=str(tmp_path / "x.lm"))))
    with pytest.raises(ConfigError, match=r"asr\.pocketsphinx\.vocabulary"):
        TranscribeStage(AsrConfig(pocketsphinx=PocketSphinxConfig(vocabulary=str(tmp_path / "x"))))
