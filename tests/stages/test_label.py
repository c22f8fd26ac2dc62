from vidray.config import LabelConfig
from vidray.stages.label import LabelStage, label_frame, temporal_weight, window_words


def _kw(lemma: str, start: float, score: float = 1.0) -> dict:
    return {"lemma": lemma, "word": lemma, "start": start, "end": start + 0.4, "score": score}


def test_temporal_weight_decays_outside_the_span() -> None:
    assert temporal_weight(5.0, 5.5, [[4.0, 7.0]], 2.0, 2.0) == 1.0
    assert temporal_weight(8.0, 8.5, [[4.0, 7.0]], 2.0, 2.0) == 0.5
    assert temporal_weight(2.5, 3.0, [[4.0, 7.0]], 2.0, 2.0) == 0.5
    assert temporal_weight(10.0, 10.5, [[4.0, 7.0]], 2.0, 2.0) == 0.0


def test_scores_favour_repeated_confident_close_words() -> None:
    cfg = LabelConfig(before_s=3.0, after_s=3.0, min_score=0.2, min_word_score=0.3, max_labels=3)
    kws = [
        _kw("tomato", 5.0, 0.6),
        _kw("tomato", 6.0, 0.6),
        _kw("knife", 5.5, 0.7),
        _kw("bowl", 8.5, 0.9),
        _kw("blur", 5.0, 0.1),
        _kw("far", 20.0),
    ]
    labels, scores = label_frame(kws, [[4.0, 7.0]], cfg)
    assert labels == ["tomato", "knife", "bowl"]
    assert scores[0] > scores[1] > scores[2] and abs(scores[0] - 0.84) < 1e-3


def test_words_from_another_shot_never_label() -> None:
    cfg = LabelConfig(before_s=6.0, after_s=6.0, min_score=0.1)
    kws = [_kw("tomato", 5.0), _kw("boat", 9.0)]
    assert label_frame(kws, [[4.0, 7.0]], cfg, shots=[[0.0, 8.0]])[0] == ["tomato"]
    transcript = [
        {"word": "the", "start": 4.5, "end": 4.7},
        {"word": "boat", "start": 9.0, "end": 9.4},
    ]
    assert window_words(transcript, [[4.0, 7.0]], 6.0, 6.0, [[0.0, 8.0]]) == ["the"]


def test_merged_frame_carries_words_of_all_its_spans() -> None:
    row = {
        "video_id": "v",
        "keywords": [_kw("tomato", 1.0), _kw("knife", 40.0)],
        "transcript": [],
        "frames": [{"frame_ts": 1.5, "spans": [[0.0, 3.0], [39.0, 42.0]], "shots": [[0.0, 50.0]]}],
    }
    out = LabelStage(LabelConfig(before_s=0.0, after_s=0.0))([row]).to_pylist()[0]
    frame = out["frames"][0]
    assert sorted(frame["labels"]) == ["knife", "tomato"]
    assert (frame["span_start"], frame["span_end"]) == (0.0, 42.0) and out["n_labels"] == 2
