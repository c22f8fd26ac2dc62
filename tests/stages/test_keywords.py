from pathlib import Path

import pyarrow.parquet as pq
import pytest

from vidray.config import ConfigError, KeywordsConfig
from vidray.schema import Keyword
from vidray.stages.keywords import KeywordsStage, corpus_stats, filler_mask, salience
from vidray.testing.spacy_models import tiny_pos_pipeline


def _words(text: str, step: float = 1.0) -> list[dict]:
    return [
        {"word": w, "start": i * step, "end": i * step + 0.5, "score": 0.9}
        for i, w in enumerate(text.split())
    ]


def _keywords(cfg: KeywordsConfig, text: str, step: float = 1.0) -> list[dict]:
    rows = KeywordsStage(cfg)([{"video_id": "v", "transcript": _words(text, step)}]).to_pylist()
    return rows[0]["keywords"]


@pytest.fixture(scope="module")
def pos_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_pos_pipeline(tmp_path_factory.mktemp("spacy") / "pos"))


def test_filler_mask_handles_two_word_fillers() -> None:
    words = ["you", "know", "I", "mean", "the", "knife"]
    assert filler_mask(words) == [True, True, True, True, False, False]


def test_filler_like_is_kept_as_a_verb_when_tagged() -> None:
    assert filler_mask(["I", "like", "basil"], ["PRON", "VERB", "NOUN"]) == [False, False, False]
    assert filler_mask(["like", "the", "knife"], ["INTJ", "DET", "NOUN"]) == [True, False, False]
    assert filler_mask(["let", "gonna"], ["VERB", "VERB"]) == [True, True]  # fillers as verbs


def test_keywords_keep_content_lemmas_only() -> None:
    text = "um okay so now I am slicing the tomatoes with sharp knives you know 42 it's like great"
    kws = _keywords(KeywordsConfig(extra_stop_words=["now"]), text)
    assert [k["lemma"] for k in kws] == ["slice", "tomato", "sharp", "knife", "great"]
    first = kws[0]
    assert first["word"] == "slicing" and first["start"] == 6.0 and first["score"] == 0.9
    assert min(k["salience"] for k in kws) > 0 and max(k["salience"] for k in kws) == 1.0


def test_pos_pipeline_keeps_content_words_and_adds_terms(pos_model: str) -> None:
    kws = _keywords(
        KeywordsConfig(spacy_model=pos_model),
        "um like you know I like to pour the olive oil into the hot pan quickly",
    )
    lemmas = [k["lemma"] for k in kws]
    assert "olive oil" in lemmas and "hot pan" in lemmas
    assert {"like", "pour", "olive", "oil", "hot", "pan"} <= set(lemmas)
    assert lemmas.count("like") == 1  # the verb; the filler "like" is dropped
    assert "quickly" not in lemmas  # an adverb
    term = next(k for k in kws if k["lemma"] == "olive oil")
    assert term["word"] == "olive oil" and (term["start"], term["end"]) == (9.0, 10.5)


def test_terms_can_be_turned_off(pos_model: str) -> None:
    kws = _keywords(KeywordsConfig(spacy_model=pos_model, terms=False), "pour the olive oil")
    assert [k["lemma"] for k in kws] == ["pour", "olive", "oil"]


def test_allow_and_block_lists(tmp_path: Path) -> None:
    allow = tmp_path / "allow.txt"
    allow.write_text("# kitchen words\ntomato\nknife  # tools\nonion\n")
    block = tmp_path / "block.txt"
    block.write_text("knife\n")
    text = "slice the tomato with the sharp knife"
    assert [k["lemma"] for k in _keywords(KeywordsConfig(allow_list=str(allow)), text)] == [
        "tomato",
        "knife",
    ]
    both = KeywordsConfig(allow_list=str(allow), block_list=str(block))
    assert [k["lemma"] for k in _keywords(both, text)] == ["tomato"]


def test_missing_word_list_is_a_job_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"keywords\.allow_list"):
        KeywordsStage(KeywordsConfig(allow_list=str(tmp_path / "nope.txt")))


def test_a_missing_spacy_pipeline_or_bad_corpus_stats_is_a_job_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not an installed spaCy pipeline"):
        KeywordsStage(KeywordsConfig(spacy_model="en_core_web_nope"))
    bad = tmp_path / "stats.parquet"
    pq.write_table(corpus_stats([]).replace_schema_metadata({}), bad)
    with pytest.raises(ConfigError, match=r"not a corpus_stats\.parquet"):
        KeywordsStage(KeywordsConfig(corpus_stats=str(bad)))


def test_salience_within_a_video_favours_focused_words() -> None:
    # "tomato" said in one window three times; "cook" once in each of three windows.
    kws = [Keyword("tomato", "tomato", t, t + 0.5, 1.0) for t in (1.0, 2.0, 3.0)]
    kws += [Keyword("cook", "cook", t, t + 0.5, 1.0) for t in (5.0, 65.0, 125.0)]
    kws += [Keyword("knife", "knife", 70.0, 70.5, 1.0)]
    scores = salience(kws, window_s=60.0)
    assert scores["tomato"] == 1.0
    assert scores["cook"] < scores["tomato"] and scores["knife"] < scores["cook"]


def test_corpus_stats_round_trip_and_drive_salience(tmp_path: Path) -> None:
    videos = [
        [{"lemma": "cook"}, {"lemma": "tomato"}],
        [{"lemma": "cook"}, {"lemma": "onion"}],
        [{"lemma": "cook"}],
        None,  # a video with no keywords still counts as a document
    ]
    path = tmp_path / "corpus_stats.parquet"
    pq.write_table(corpus_stats(videos), path)
    cfg = KeywordsConfig(corpus_stats=str(path))
    kws = _keywords(cfg, "cook tomato cook tomato cook", step=100.0)
    scores = {k["lemma"]: k["salience"] for k in kws}
    # Within the video "cook" is said more, but it is said in every video of the corpus.
    assert scores["tomato"] == 1.0 and scores["cook"] < 1.0


def test_empty_transcript() -> None:
    assert _keywords(KeywordsConfig(), "") == []
