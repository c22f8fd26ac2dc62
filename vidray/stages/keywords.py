"""Keywords: transcript words → content lemmas and terms (spaCy), each with a salience score.

Stop words, fillers and discourse markers ("um", "you know", "I mean", "like" as a filler),
numbers and punctuation are dropped. With a POS-capable pipeline (`keywords.spacy_model`)
only nouns, proper nouns, verbs and adjectives are kept, and multi-word noun terms ("olive
oil") are added; the offline default (`blank:en`) relies on the lookup lemmatizer, stop words
and the optional allow-list instead. Salience is tf-idf: over an earlier run's corpus when
`keywords.corpus_stats` is given, else within the video, its windows being the documents.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vidray.config import ConfigError, KeywordsConfig, read_list_file
from vidray.schema import Keyword
from vidray.stages.base import Row, Stage

# Hesitations and discourse markers narrators use that carry no meaning about the picture.
FILLER_WORDS = frozenset(
    {"um", "uh", "er", "ah", "eh", "hmm", "mm", "mhm", "okay", "ok", "alright", "yeah", "yep"}
    | {"oh", "well", "like", "actually", "basically", "really", "literally", "right", "gonna"}
    | {"wanna", "gotta", "let", "lets", "stuff", "thing", "things", "kinda", "sorta"}
)
# Two-word fillers: both words are dropped when they come together.
FILLER_PAIRS = frozenset({("you", "know"), ("i", "mean"), ("kind", "of"), ("sort", "of")})
CONTENT_POS = frozenset({"NOUN", "PROPN", "VERB", "ADJ"})
TERM_POS = frozenset({"NOUN", "PROPN", "ADJ"})
MAX_TERM_WORDS = 4

INSTALL_HINT = "spaCy is needed for keywords: pip install 'spacy>=3.8' spacy-lookups-data"


def filler_mask(words: Sequence[str], pos: Sequence[str] | None = None) -> list[bool]:
    """True where a word is a filler, including both parts of two-word fillers ("you know").
    With POS tags, "like" used as a verb ("I like tomatoes") is kept."""
    lower = [w.lower() for w in words]
    mask = [
        w in FILLER_WORDS and not (w == "like" and pos and pos[i] == "VERB")
        for i, w in enumerate(lower)
    ]
    for i in range(1, len(lower)):
        if (lower[i - 1], lower[i]) in FILLER_PAIRS:
            mask[i - 1] = mask[i] = True
    return mask


def read_word_list(path: str, key: str) -> frozenset[str]:
    """Lemmas or terms, one per line, lower-cased; `#` starts a comment."""
    return frozenset(" ".join(fields).lower() for fields in read_list_file(path, key))


def load_nlp(model: str) -> Any:
    """`blank:LANG` → a blank pipeline with the lookup lemmatizer; otherwise a trained pipeline
    by package name or folder."""
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


def check_spacy_model(model: str) -> None:
    """A pipeline that is neither `blank:LANG`, an installed package nor a folder is a job error,
    found before any video is processed."""
    if model.startswith("blank:") or Path(model).is_dir():
        return
    try:
        import spacy
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(INSTALL_HINT) from exc
    if not spacy.util.is_package(model):
        raise ConfigError(
            f"keywords.spacy_model {model!r} is not an installed spaCy pipeline or a pipeline "
            "folder; use blank:en for the offline default"
        )


def noun_terms(doc: Any) -> list[tuple[int, int]]:
    """[start, end) token spans of multi-word noun terms: the parser's noun chunks when the
    pipeline parses, else runs of adjectives and nouns that end in a noun; determiners,
    numbers and pronouns are trimmed off."""
    if doc.has_annotation("DEP"):
        spans = [(c.start, c.end) for c in doc.noun_chunks]
    else:
        spans, i = [], 0
        while i < len(doc):
            j = i
            while j < len(doc) and doc[j].pos_ in TERM_POS:
                j += 1
            spans.append((i, j))
            i = max(j, i + 1)
    out = []
    for start, end in spans:
        while start < end and doc[start].pos_ not in TERM_POS:
            start += 1
        while end > start and doc[end - 1].pos_ not in {"NOUN", "PROPN"}:
            end -= 1
        if 2 <= end - start <= MAX_TERM_WORDS and all(t.is_alpha for t in doc[start:end]):
            out.append((start, end))
    return out


def salience(
    keywords: Sequence[Keyword],
    window_s: float,
    corpus: tuple[dict[str, int], int] | None = None,
    duration_s: float | None = None,
) -> dict[str, float]:
    """Lemma → tf-idf (sublinear tf: 1 + log count) scaled so the video's most salient lemma
    scores 1.

    With corpus statistics (document frequency per lemma, number of videos) the documents are
    videos; without, the video's `window_s` windows are (all of them, spoken in or not), so
    words said everywhere in the video weigh less than its focused vocabulary, with no
    statistics needed beforehand.
    """
    if not keywords:
        return {}
    tf = Counter(k.lemma for k in keywords)
    if corpus:
        df, n = corpus
    else:
        width = max(window_s, 1e-3)
        windows: dict[str, set[int]] = {}
        for k in keywords:
            windows.setdefault(k.lemma, set()).add(int(k.start // width))
        df = {lemma: len(w) for lemma, w in windows.items()}
        n = max(len(set().union(*windows.values())), math.ceil((duration_s or 0) / width))
    raw = {
        lemma: (1 + math.log(c)) * (math.log((1 + n) / (1 + df.get(lemma, 0))) + 1)
        for lemma, c in tf.items()
    }
    top = max(raw.values())
    return {lemma: round(v / top, 4) for lemma, v in raw.items()}


def read_corpus_stats(path: str) -> tuple[dict[str, int], int]:
    """(lemma → number of videos it was said in, number of videos) from corpus_stats.parquet."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read keywords.corpus_stats {path!r}: {exc}") from exc
    meta = table.schema.metadata or {}
    n = int(meta.get(b"videos", b"0"))
    if (
        not {"lemma", "videos"} <= set(table.column_names)
        or n < max(table["videos"].to_pylist() or [0])
        or n < 1
    ):
        raise ConfigError(
            f"keywords.corpus_stats {path!r} is not a corpus_stats.parquet written by vidray build"
        )
    return dict(zip(table["lemma"].to_pylist(), table["videos"].to_pylist(), strict=True)), n


def corpus_stats(keyword_lists: Iterable[list[dict[str, Any]] | None]) -> Any:
    """The document-frequency table of a run's videos (one keyword list per video), for
    `keywords.corpus_stats` in later runs: columns lemma, videos; metadata `videos` = N."""
    import pyarrow as pa

    df: Counter[str] = Counter()
    n = 0
    for kws in keyword_lists:
        n += 1
        df.update({k["lemma"] for k in kws or []})
    table = pa.table(
        {"lemma": sorted(df), "videos": [df[k] for k in sorted(df)]},
        schema=pa.schema([("lemma", pa.string()), ("videos", pa.int64())]),
    )
    return table.replace_schema_metadata({"videos": str(n)})


class KeywordsStage(Stage):
    """`transcript` → `keywords`: lemma, word, start, end, score, salience per content word
    and term."""

    name = "keywords"

    cfg: KeywordsConfig

    def __init__(self, cfg: KeywordsConfig) -> None:
        super().__init__(cfg)
        # Bad lists are job errors: read them on the driver, before any video is processed.
        self.allow = (
            read_word_list(cfg.allow_list, "keywords.allow_list") if cfg.allow_list else None
        )
        self.block = (
            read_word_list(cfg.block_list, "keywords.block_list") if cfg.block_list else frozenset()
        )
        self.corpus = read_corpus_stats(cfg.corpus_stats) if cfg.corpus_stats else None
        check_spacy_model(cfg.spacy_model)

    def setup(self) -> None:
        self.nlp = load_nlp(self.cfg.spacy_model)
        self.stop_words = self.nlp.Defaults.stop_words | {
            w.lower() for w in self.cfg.extra_stop_words
        }

    def keywords(
        self, transcript: list[dict[str, Any]], duration_s: float | None = None
    ) -> list[Keyword]:
        from spacy.tokens import Doc

        if not transcript:
            return []
        texts = [w["word"] for w in transcript]
        doc = Doc(self.nlp.vocab, words=texts)
        for _, pipe in self.nlp.pipeline:
            doc = pipe(doc)
        tagged = doc.has_annotation("POS")
        fillers = filler_mask(texts, [t.pos_ for t in doc] if tagged else None)
        found = []
        for token, word, filler in zip(doc, transcript, fillers, strict=True):
            lemma = (token.lemma_ or token.text).lower()
            if filler or not token.is_alpha or len(lemma) < self.cfg.min_length:
                continue
            if token.lower_ in self.stop_words or lemma in self.stop_words:
                continue
            if tagged and token.pos_ not in CONTENT_POS:
                continue
            found.append(Keyword(lemma, word["word"], word["start"], word["end"], word["score"]))
        if tagged and self.cfg.terms:
            for start, end in noun_terms(doc):
                if any(fillers[start:end]):
                    continue
                words = transcript[start:end]
                lemma = " ".join((t.lemma_ or t.text).lower() for t in doc[start:end])
                found.append(
                    Keyword(
                        lemma,
                        " ".join(w["word"] for w in words),
                        words[0]["start"],
                        words[-1]["end"],
                        min(w["score"] for w in words),
                    )
                )
        found = [k for k in found if k.lemma not in self.block]
        if self.allow is not None:
            found = [k for k in found if k.lemma in self.allow]
        found.sort(key=lambda k: (k.start, k.end))
        scores = salience(found, self.cfg.salience_window_s, self.corpus, duration_s)
        return [k._replace(salience=scores[k.lemma]) for k in found]

    def process(self, row: Row) -> Row:
        kws = self.keywords(row.get("transcript") or [], row.get("duration_s"))
        return {**row, "keywords": [k._asdict() for k in kws]}
