import numpy as np

from vidray.stages.decode import encode_jpeg
from vidray.train.data import build_vocab, load_image, prepare_batch, soft_targets, split_videos


def test_split_is_by_video_and_deterministic() -> None:
    ids = [f"v{i}" for i in range(8)]
    train, held = split_videos(ids + ids, holdout=0.25, seed=0)
    assert len(held) == 2 and not set(train) & set(held) and set(train) | set(held) == set(ids)
    assert split_videos(ids, 0.25, 0) == (train, held)
    assert split_videos(["only"], 0.25, 0) == (["only"], [])


def test_vocab_counts_frames_not_mentions() -> None:
    vocab, counts = build_vocab([["a", "a", "b"], ["a"], ["c"]], min_count=2, max_size=10)
    assert vocab == ["a"] and counts["a"] == 2


def test_prepare_batch_filters_and_encodes() -> None:
    img = encode_jpeg(np.full((36, 64, 3), 200, np.uint8), 90)
    batch = {
        "video_id": np.array(["v1", "v2", "v1"], dtype=object),
        "image": np.array([img, img, img], dtype=object),
        "labels": np.array([["tomato", "knife"], ["tomato"], ["zzz"]], dtype=object),
        "label_scores": np.array([[0.9, 0.4], [0.8], [1.0]], dtype=object),
    }
    out = prepare_batch(batch, vocab=["tomato", "knife"], video_ids=["v1"], image_size=16)
    assert out["image"].shape == (1, 3, 16, 16) and out["image"].dtype == np.float32
    np.testing.assert_allclose(out["target"], [[0.9, 0.4]])
    assert load_image(img, 8).shape == (3, 8, 8)
    np.testing.assert_allclose(
        soft_targets(["knife"], [0.5], {"tomato": 0, "knife": 1}), [0.0, 0.5]
    )
