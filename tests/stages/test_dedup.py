from pathlib import Path

import numpy as np

from vidray.config import DecodeConfig, DedupConfig
from vidray.stages.decode import DecodeStage, encode_jpeg
from vidray.stages.dedup import DedupStage, dedup_frames, hamming, merge_spans, phash


def _frame(ts: float, h: int) -> dict:
    return {"frame_ts": ts, "phash": h, "spans": [[ts - 1.5, ts + 1.5]], "shots": [[0.0, 100.0]]}


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


def test_static_scene_of_a_real_video_collapses(sample_video: Path, sample_truth) -> None:  # type: ignore[no-untyped-def]
    decoded = DecodeStage(DecodeConfig())([{"video_id": "v", "source": str(sample_video)}])
    row = DedupStage(DedupConfig())(decoded).to_pylist()[0]
    assert row["frames_sampled"] == row["frames_kept"] + row["frames_dropped"]
    for scene in sample_truth.scenes:
        inside = [f for f in row["frames"] if scene.start <= f["frame_ts"] < scene.end]
        sampled = sum(
            scene.start <= t < scene.end for t in np.arange(1.5, sample_truth.duration, 3.0)
        )
        if scene.static and sampled >= 2:
            assert len(inside) == 1, scene  # identical frames → one frame for the whole shot
            assert inside[0]["merged"] >= sampled
