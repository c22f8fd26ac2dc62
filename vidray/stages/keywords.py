"""Keywords: transcript words → content lemmas (spaCy), stop words and filler words dropped."""

from __future__ import annotations

from typing import Any

from vidray.config import KeywordsConfig
from vidray.schema import Keyword
from vidray.stages.base import Row, Stage

# Hesitations and discourse markers narrators use that carry no meaning about the picture.
FILLER_WORDS = frozenset(
    [
        "um",
        "uh",
        "er",
        "ah",
        "eh",
        "hmm",
        "mm",
        "mhm",
        "okay",
        "ok",
        "alright",
        "yeah",
        "yep",
        "oh",
        "well",
        "like",
        "actually",
        "basically",
        "really",
        "literally",
        "right",
        "gonna",
        "wanna",
        "gotta",
        "let",
        "lets",
        "stuff",
        "thing",
        "things",
        "kinda",
        "sorta",
    ]
)
# Two-word fillers: the second word is dropped when it follows the first.
FILLER_PAIRS = frozenset({("you", "know"), ("i", "mean"), ("kind", "of"), ("sort", "of")})

INSTALL_HINT = "spaCy is needed for keywords: pip install 'spacy>=3.8' spacy-lookups-data"


def filler_mask(words: list[str]) -> list[bool]:
    """True where a word is a filler, including the parts of two-word fillers ("you know")."""
    lower = [w.lower() for w in words]
    mask = [w in FILLER_WORDS for w in lower]
    for i in range(1, len(lower)):
        if (lower[i - 1], lower[i]) in FILLER_PAIRS:
            mask[i - 1] = mask[i] = True
    return mask


def load_nlp(model: str) -> Any:
    """`blank:LANG` → a blank pipeline with the lookup lemmatizer; otherwise a trained pipeline."""
    try:
        import spacy
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(INSTALL_HINT) from exc
    if model.startswith("blank:"):
        nlp = spacy.blank(model.split(":", 1)[1])
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.initialize()
        return nlp
    return spacy.load(model)


class KeywordsStage(Stage):
    """`transcript` → `keywords`: lemma, word, start, end, score per content word."""

    name = "keywords"

    cfg: KeywordsConfig

    def setup(self) -> None:
        self.nlp = load_nlp(self.cfg.spacy_model)
        self.stop_words = self.nlp.Defaults.stop_words | {
            w.lower() for w in self.cfg.extra_stop_words
        }

    def keywords(self, transcript: list[dict[str, Any]]) -> list[Keyword]:
        from spacy.tokens import Doc

        if not transcript:
            return []
        texts = [w["word"] for w in transcript]
        doc = Doc(self.nlp.vocab, words=texts)
        for _, pipe in self.nlp.pipeline:
            doc = pipe(doc)
        fillers = filler_mask(texts)
        out = []
        for token, word, filler in zip(doc, transcript, fillers, strict=True):
            lemma = (token.lemma_ or token.text).lower()
            if filler or not token.is_alpha or len(lemma) < self.cfg.min_length:
                continue
            if token.lower_ in self.stop_words or lemma in self.stop_words:
                continue
            if token.pos_ and token.pos_ not in {"NOUN", "PROPN", "VERB", "ADJ"}:
                continue  # only when a POS-capable pipeline is configured
            out.append(Keyword(lemma, word["word"], word["start"], word["end"], word["score"]))
        return out

    def process(self, row: Row) -> Row:
        kws = self.keywords(row.get("transcript") or [])
        return {**row, "keywords": [k._asdict() for k in kws]}
