import hashlib
from pathlib import Path

import av

from vidray.testing.sample import make_samples
from vidray.testing.subjects import SUBJECTS


def test_corpus_is_reproducible_and_described(tmp_path: Path) -> None:
    a = make_samples(tmp_path / "a", videos=1, minutes=0.3, seed=3)
    b = make_samples(tmp_path / "b", videos=1, minutes=0.3, seed=3)
    digest = [hashlib.sha1(p.read_bytes()).hexdigest() for p in (a[0], b[0])]
    assert digest[0] == digest[1]
    assert a[0].with_suffix(".json").read_text() == b[0].with_suffix(".json").read_text()
    assert (tmp_path / "a" / "vocabulary.txt").read_text().startswith("a ")


def test_video_has_h264_aac_and_truth_matches(sample_video: Path, sample_truth) -> None:  # type: ignore[no-untyped-def]
    with av.open(str(sample_video)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
        duration = float(c.streams.video[0].duration * c.streams.video[0].time_base)
    assert abs(duration - sample_truth.duration) < 0.2
    names = {s.name for s in SUBJECTS}
    for scene in sample_truth.scenes:
        assert scene.subject in names
        assert 8.0 <= scene.end - scene.start <= 25.0
        assert scene.words and all(scene.start <= w.start < w.end <= scene.end for w in scene.words)
        spoken = " ".join(w.word for w in scene.words).lower()
        assert scene.subject in spoken  # every scene names its subject
    assert any(s.static for s in sample_truth.scenes) or any(
        not s.static for s in sample_truth.scenes
    )


def test_catalogue_has_enough_distinct_subjects() -> None:
    assert len(SUBJECTS) >= 20
    assert len({(s.shape, s.color, s.background) for s in SUBJECTS}) == len(SUBJECTS)
    for s in SUBJECTS:
        assert len(s.sentences) >= 3 and all(s.name in t for t in s.sentences)
