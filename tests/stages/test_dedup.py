from pathlib import Path

import numpy as np
import pytest

from vidray.config import DecodeConfig, DedupConfig, KeywordsConfig, LabelConfig
from vidray.stages.decode import DecodeStage, encode_jpeg
from vidray.stages.dedup import (
    MAX_CHANGED,
    THUMB,
    DedupStage,
    Look,
    changed_windows,
    dedup_frames,
    hamming,
    merge_spans,
    phash,
)
from vidray.stages.keywords import KeywordsStage
from vidray.stages.label import LabelStage
from vidray.testing.scenes import (
    KINDS,
    Shot,
    dedup_outcomes,
    frame_truth,
    make_scene_video,
    narrated_still,
    photo,
    plan_shots,
    slide,
)


def _frame(ts: float, h: int, embedding: list[float] | None = None) -> dict:
    return {
        "frame_ts": ts,
        "phash": h,
        "spans": [[ts - 1.5, ts + 1.5]],
        "shots": [[0.0, 100.0]],
        "embedding": embedding,
    }


def _thumb(img: np.ndarray) -> np.ndarray:
    from PIL import Image

    grey = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).convert("L")
    return np.asarray(grey.resize(THUMB, Image.Resampling.BOX), np.float32)


def test_phash_is_stable_under_jpeg_noise_and_separates_pictures() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((64, 96, 3), np.uint8)
    img[10:40, 20:60] = (200, 30, 30)
    noisy = np.clip(img.astype(int) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
    other = np.zeros_like(img)
    other[30:60, 50:90] = (30, 200, 30)
    a, b, c = (phash(encode_jpeg(x, 90)) for x in (img, noisy, other))
    assert hamming(a, b) <= 4
    assert hamming(a, c) > 16


def test_dropped_frames_merge_their_spans() -> None:
    frames = [_frame(1.5, 0), _frame(4.5, 1), _frame(7.5, 0xFFFF_0000), _frame(10.5, 3)]
    kept = dedup_frames(frames, max_distance=4, window=8)
    assert [f["frame_ts"] for f in kept] == [1.5, 7.5]
    assert kept[0]["spans"] == [[0.0, 6.0], [9.0, 12.0]] and kept[0]["merged"] == 3
    assert merge_spans([[3, 4], [0, 1], [1, 2]]) == [[0, 2], [3, 4]]
    assert frames[0]["spans"] == [[0.0, 3.0]]  # the input is left as it was


def test_embeddings_decide_when_both_frames_carry_one() -> None:
    e = np.eye(4).tolist()
    near = [0.995, 0.0998, 0.0, 0.0]  # cosine 0.995 with e[0]
    frames = [
        _frame(1.5, 0, e[0]),
        _frame(4.5, 0xFFFF_FFFF, near),  # phash far, embedding close: a duplicate
        _frame(7.5, 0, e[1]),  # phash equal, embedding far: a new picture
        _frame(10.5, 1, None),  # no embedding: phash decides (it matches 1.5 best)
    ]
    kept = dedup_frames(frames, max_distance=4, window=8, min_similarity=0.95)
    assert [(f["frame_ts"], f["merged"]) for f in kept] == [(1.5, 3), (7.5, 1)]


def test_a_slow_drift_joins_through_the_latest_duplicate_within_twice_the_distance() -> None:
    # each frame 6 bits from the one before: 12 and 18 bits from the first
    frames = [_frame(1.5, 0), _frame(4.5, 0x3F), _frame(7.5, 0xFFF), _frame(10.5, 0x3_FFFF)]
    kept = dedup_frames(frames, max_distance=8, window=8)
    assert [(f["frame_ts"], f["merged"]) for f in kept] == [(1.5, 3), (10.5, 1)]


def test_window_counts_kept_frames() -> None:
    frames = [_frame(1.5, 0), *(_frame(4.5 + 3 * i, 0xFF << (8 * i)) for i in range(3))]
    frames.append(_frame(15.5, 0))  # three distinct frames later, the first picture again
    assert len(dedup_frames(frames, max_distance=4, window=3)) == 5
    assert len(dedup_frames(frames, max_distance=4, window=4)) == 4


def test_local_check_tells_a_new_line_of_text_from_shake_flicker_and_noise() -> None:
    rng = np.random.default_rng(1)
    w, h = 640, 360
    lines = ["slice the tomato", "chop the onion finely"]
    a = _thumb(slide(lines, w, h, "Salad", (40, 90, 160)))
    built = _thumb(slide([*lines, "add the fresh basil leaves"], w, h, "Salad", (40, 90, 160)))
    rewritten = _thumb(slide([lines[0], "grate the carrot on top"], w, h, "Salad", (40, 90, 160)))
    assert changed_windows(a, a) == 0
    assert changed_windows(a, built) > MAX_CHANGED
    assert changed_windows(a, rewritten) > MAX_CHANGED
    big = photo(rng, w + 16, h + 16)
    p = _thumb(big[8 : 8 + h, 8 : 8 + w])
    shaken = big[3 : 3 + h, 12 : 12 + w] * 1.12 + rng.normal(0, 10, (h, w, 3))
    assert changed_windows(p, _thumb(shaken)) <= MAX_CHANGED
    frames = [_frame(1.5, 0), _frame(4.5, 0)]
    thumbs = {1.5: a, 4.5: built}
    looks = dedup_frames(frames, 8, 8, look=lambda f: Look(f["phash"], thumb=thumbs[f["frame_ts"]]))
    assert len(looks) == 2  # equal phash, but the check sees the new line


def test_static_scene_of_a_real_video_collapses(sample_video: Path, sample_truth) -> None:  # type: ignore[no-untyped-def]
    decoded = DecodeStage(DecodeConfig())([{"video_id": "v", "source": str(sample_video)}])
    row = DedupStage(DedupConfig())(decoded).to_pylist()[0]
    assert row["frames_sampled"] == row["frames_kept"] + row["frames_dropped"]
    assert all(isinstance(f["phash"], int) and "thumb" not in f for f in row["frames"])
    for scene in sample_truth.scenes:
        inside = [f for f in row["frames"] if scene.start <= f["frame_ts"] < scene.end]
        sampled = sum(
            scene.start <= t < scene.end for t in np.arange(1.5, sample_truth.duration, 3.0)
        )
        if scene.static and sampled >= 2:
            assert len(inside) == 1, scene  # identical frames → one frame for the whole shot
            assert inside[0]["merged"] >= sampled


def test_scene_plans_say_which_sampled_frames_repeat_a_picture() -> None:
    shots = plan_shots(seed=5, minutes=4.0)
    truth = frame_truth(shots, shots[-1].end, 3.0)
    assert {f.variant for f in truth} == {v for vs in KINDS.values() for v in vs}
    assert all(s.start % 3.0 == 0 and all(c % 3.0 == 0 for c in s.cuts) for s in shots)
    for i, f in enumerate(truth):
        assert all(j < i and truth[j].picture == f.picture for j in f.duplicates)
        assert f.duplicates == [j for j in range(i) if truth[j].picture == f.picture]
        if f.kind == "moving":
            assert not f.duplicates
        if f.variant == "return":  # the still shot two shots back
            assert truth[f.duplicates[0]].shot == f.shot - 2
        if f.variant in ("layout", "slides"):  # a new picture from each cut on
            first_of_picture = f.ts - 1.5 in [shots[f.shot].start, *shots[f.shot].cuts]
            assert first_of_picture == (not f.duplicates)


@pytest.mark.slow
def test_near_duplicates_go_and_hard_negatives_stay(tmp_path: Path) -> None:
    """A short scenes video: shake, slow zoom, a talking head, a slide deck built line by line,
    shapes swapped on one backdrop, a pan. Every duplicate goes, every distinct frame stays."""
    plan = [("jitter", 4, []), ("slides", 9, [2, 4, 7]), ("zoom", 5, []), ("talking_head", 4, [])]
    plan += [("layout", 6, [2, 4]), ("pan", 4, [])]
    shots, t = [], 0.0
    for seed, (variant, samples, cuts) in enumerate(plan):
        shots.append(Shot(variant, t, t + 3 * samples, seed, [t + 3 * c for c in cuts]))
        t += 3 * samples
    truth = make_scene_video(tmp_path / "s.mp4", seed=3, shots=shots)
    decoded = DecodeStage(DecodeConfig())([{"video_id": "s", "source": str(tmp_path / "s.mp4")}])
    kept = DedupStage(DedupConfig())(decoded).to_pylist()[0]["frames"]
    outcomes = dedup_outcomes(kept, truth)
    expected = ["removed" if f.duplicates else "kept" for f in truth.frames]
    assert outcomes == expected, [
        (f.variant, f.ts, o) for f, o in zip(truth.frames, outcomes, strict=True) if o != "kept"
    ]


@pytest.mark.slow
def test_a_narrated_static_shot_is_one_frame_labelled_with_all_its_words(tmp_path: Path) -> None:
    truth = narrated_still(tmp_path / "still.mp4", seconds=40.0)
    said = truth.scenes[0].words
    assert said[0].start < 2.0 and said[-1].end > 35.0  # speech from start to end
    row = DecodeStage(DecodeConfig())([{"video_id": "v", "source": str(tmp_path / "still.mp4")}])
    row = DedupStage(DedupConfig())(row).to_pylist()[0]
    assert row["frames_sampled"] == 13 and row["frames_kept"] == 1
    # the words as a perfect recogniser would give them: dedup and label are under test here
    row["transcript"] = [
        {"word": w.word, "start": w.start, "end": w.end, "score": 1.0} for w in said
    ]
    row = KeywordsStage(KeywordsConfig())([row]).to_pylist()[0]
    frame = LabelStage(LabelConfig())([row]).to_pylist()[0]["frames"][0]
    assert frame["merged"] == 13 and frame["span_start"] == 0.0 and frame["span_end"] >= 39.0
    assert frame["words"] == [w.word for w in said]  # words from the first to the last second
    late = {k["lemma"] for k in row["keywords"] if k["start"] > 30.0}
    early = {k["lemma"] for k in row["keywords"] if k["end"] < 10.0}
    assert "tomato" in frame["labels"]
    assert late & set(frame["labels"]) and early & set(frame["labels"])
