from pathlib import Path
from types import SimpleNamespace

import pytest

from vidray.config import DecodeConfig, TranscribeConfig
from vidray.stages.decode import DecodeStage
from vidray.stages.transcribe import TranscribeStage, read_vocabulary, words_from_segments


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
    samples: Path, sample_video: Path, sample_truth, vocabulary: bool
) -> None:  # type: ignore[no-untyped-def]
    cfg = TranscribeConfig(vocabulary=str(samples / "vocabulary.txt") if vocabulary else None)
    decoded = DecodeStage(DecodeConfig())([{"video_id": "v", "source": str(sample_video)}])
    row = TranscribeStage(cfg)(decoded).to_pylist()[0]
    assert "audio" not in row and row["asr_backend"] == "pocketsphinx"
    words = row["transcript"]
    said = [w for s in sample_truth.scenes for w in s.words]
    assert len(words) > 0.5 * len(said)
    assert all(0 <= w["start"] < w["end"] <= sample_truth.duration + 0.5 for w in words)
    # Recognised words land near the time the same word was really said.
    truth_times = {}
    for w in said:
        truth_times.setdefault(w.word.lower(), []).append(w.start)
    matched = [w for w in words if w["word"] in truth_times and len(w["word"]) > 3]
    assert len(matched) >= (8 if vocabulary else 3)
    close = [w for w in matched if min(abs(w["start"] - t) for t in truth_times[w["word"]]) < 0.5]
    assert len(close) >= 0.7 * len(matched)


def test_unknown_backend_is_a_job_error() -> None:
    with pytest.raises(ValueError, match="unknown asr backend"):
        TranscribeStage(TranscribeConfig(backend="nope"))
