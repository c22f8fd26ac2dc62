"""A tiny POS-tagging spaCy pipeline trained on the fly, so tests run the trained-pipeline path
(POS filtering, multi-word terms) with no model download."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

# Sentences of the kind narrators say, tagged with Universal POS; enough for a morphologizer
# to learn the tags of these words in these contexts.
TAGGED = [
    "now/ADV slice/VERB the/DET ripe/ADJ tomato/NOUN with/ADP a/DET sharp/ADJ knife/NOUN",
    "i/PRON like/VERB fresh/ADJ basil/NOUN",
    "it/PRON is/AUX like/ADP um/INTJ a/DET big/ADJ bowl/NOUN",
    "pour/VERB the/DET olive/NOUN oil/NOUN into/ADP the/DET hot/ADJ pan/NOUN",
    "the/DET sea/NOUN level/NOUN is/AUX rising/VERB near/ADP Paris/PROPN",
    "we/PRON chop/VERB two/NUM red/ADJ onions/NOUN quickly/ADV",
    "you/PRON know/VERB the/DET garlic/NOUN smells/VERB great/ADJ",
    "stir/VERB the/DET tomato/NOUN sauce/NOUN slowly/ADV",
    "like/INTJ the/DET knife/NOUN is/AUX really/ADV sharp/ADJ",
    "they/PRON walk/VERB along/ADP the/DET sandy/ADJ beach/NOUN in/ADP Spain/PROPN",
    "add/VERB some/DET sea/NOUN salt/NOUN and/CCONJ black/ADJ pepper/NOUN",
    "she/PRON likes/VERB the/DET olive/NOUN oil/NOUN",
]


def tiny_pos_pipeline(folder: str | Path, iterations: int = 40, seed: int = 0) -> Path:
    """Train a morphologizer (POS) + lookup lemmatizer on `TAGGED`, save it, return its folder;
    `spacy.load(folder)` gives a pipeline that tags POS but does not parse."""
    import spacy
    from spacy.tokens import Doc
    from spacy.training import Example

    random.seed(seed)
    spacy.util.fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe("morphologizer")
    examples = []
    for line in TAGGED:
        words, tags = zip(*(item.rsplit("/", 1) for item in line.split()), strict=True)
        doc = Doc(nlp.vocab, words=list(words))
        examples.append(Example.from_dict(doc, {"words": list(words), "pos": list(tags)}))
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(iterations):
        random.shuffle(examples)
        nlp.update(examples, sgd=optimizer, drop=0.1)
    lemmatizer: Any = nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    lemmatizer.initialize()
    out = Path(folder)
    nlp.to_disk(out)
    return out
