from vidray.config import KeywordsConfig
from vidray.stages.keywords import KeywordsStage, filler_mask


def _words(text: str) -> list[dict]:
    return [
        {"word": w, "start": float(i), "end": i + 0.5, "score": 0.9}
        for i, w in enumerate(text.split())
    ]


def test_filler_mask_handles_two_word_fillers() -> None:
    assert filler_mask(["you", "know", "I", "mean", "the", "knife"]) == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]


def test_keywords_keep_content_lemmas_only() -> None:
    stage = KeywordsStage(KeywordsConfig(extra_stop_words=["now"]))
    row = stage(
        [
            {
                "video_id": "v",
                "transcript": _words(
                    "um okay so now I am slicing the tomatoes with sharp knives you know 42 it's like great"
                ),
            }
        ]
    ).to_pylist()[0]
    lemmas = [k["lemma"] for k in row["keywords"]]
    assert lemmas == ["slice", "tomato", "sharp", "knife", "great"]
    first = row["keywords"][0]
    assert first["word"] == "slicing" and first["start"] == 6.0 and first["score"] == 0.9


def test_empty_transcript() -> None:
    assert (
        KeywordsStage(KeywordsConfig())([{"video_id": "v", "transcript": []}]).to_pylist()[0][
            "keywords"
        ]
        == []
    )
