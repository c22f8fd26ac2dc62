import numpy as np

from vidray.stages.decode import encode_jpeg
from vidray.train.data import (
    build_vocab,
    label_bag,
    load_image,
    neighbour_rows,
    prepare_batch,
    soft_targets,
    split_videos,
)


def test_split_is_by_video_and_deterministic() -> None:
    ids = [f"v{i}" for i in range(8)]
    train, held = split_videos(ids + ids, holdout=0.25, seed=0)
    assert len(held) == 2 and not set(train) & set(held) and set(train) | set(held) == set(ids)
    assert split_videos(ids, 0.25, 0) == (train, held)
    assert split_videos(["only"], 0.25, 0) == (["only"], [])
    assert split_videos(ids, 0.0, 0) == (sorted(ids), [])  # holdout 0: train on every video


def test_vocab_counts_frames_not_mentions() -> None:
    vocab, counts = build_vocab([["a", "a", "b"], ["a"], ["c"]], min_count=2, max_size=10)
    assert vocab == ["a"] and counts["a"] == 2


def test_prepare_batch_filters_and_encodes() -> None:
    img = encode_jpeg(np.full((36, 64, 3), 200, np.uint8), 90)
    batch = {
        "video_id": np.array(["v1", "v2", "v1"], dtype=object),
        "frame_ts": np.array([0.0, 0.0, 2.0]),
        "image": np.array([img, img, img], dtype=object),
        "labels": np.array([["tomato", "knife"], ["tomato"], ["zzz"]], dtype=object),
        "label_scores": np.array([[0.9, 0.4], [0.8], [1.0]], dtype=object),
    }
    out = prepare_batch(batch, vocab=["tomato", "knife"], video_ids=["v1"], image_size=16)
    assert out["image"].shape == (1, 3, 16, 16) and out["image"].dtype == np.uint8
    np.testing.assert_allclose(out["target"], [[0.9, 0.4]])
    assert load_image(img, 8).shape == (3, 8, 8)
    np.testing.assert_allclose(
        soft_targets(["knife"], [0.5], {"tomato": 0, "knife": 1}), [0.0, 0.5]
    )


def test_neighbours_are_nearest_frames_of_the_same_video_within_the_window() -> None:
    vids = ["a", "a", "b", "a", "a", "a"]
    ts = [0.0, 2.0, 2.0, 4.0, 30.0, 6.0]
    near = neighbour_rows(vids, ts, n=2, window_s=5.0)
    assert near[0] == [1, 3]  # 2 s and 4 s away; video b's frame and 30 s are not neighbours
    assert near[1] == [0, 3]
    assert near[2] == []
    assert near[4] == []  # nothing within 5 s
    assert near[5] == [3, 1]
    assert neighbour_rows(vids, ts, n=0, window_s=5.0) == [[]] * 6


def test_bags_hold_own_then_neighbour_labels() -> None:
    ids, weights = label_bag(["b", "zzz", "a"], [0.5, 1.0, 0.25], {"a": 0, "b": 1}, size=3)
    assert ids.tolist() == [1, 0, -1] and weights.tolist() == [0.5, 0.25, 0.0]
    img = encode_jpeg(np.full((16, 16, 3), 90, np.uint8), 90)
    batch = {
        "video_id": ["v", "v", "v", "w"],
        "frame_ts": [0.0, 3.0, 6.0, 3.0],
        "image": [img] * 4,
        "labels": [["a"], [], ["b"], ["b"]],
        "label_scores": [[1.0], [], [0.5], [1.0]],
    }
    out = prepare_batch(batch, ["a", "b"], ["v", "w"], 8, neighbours=2, window_s=10.0, bag_size=2)
    # The unlabelled frame is dropped and is nobody's neighbour; video w's frame has none.
    assert out["bags"].shape == (3, 3, 2)
    assert out["bags"][0].tolist() == [[0, -1], [1, -1], [-1, -1]]
    assert out["bags"][1].tolist() == [[1, -1], [0, -1], [-1, -1]]
    assert out["bags"][2].tolist() == [[1, -1], [-1, -1], [-1, -1]]
    np.testing.assert_allclose(out["bag_weights"][1, :2, 0], [0.5, 1.0])
