"""Label: each kept frame gets the keywords spoken around the time it stands for, with scores."""

from __future__ import annotations

from typing import Any

from vidray.config import LabelConfig
from vidray.stages.base import Row, Stage


def temporal_weight(
    start: float, end: float, spans: list[list[float]], before: float, after: float
) -> float:
    """1 for a word said during one of the spans, falling linearly to 0 at the window's edges."""
    best = 0.0
    for s, e in spans:
        if end > s and start < e:
            return 1.0
        if end <= s and before > 0:  # said before the span
            best = max(best, 1.0 - (s - end) / before)
        elif start >= e and after > 0:
            best = max(best, 1.0 - (start - e) / after)
    return max(best, 0.0)


def in_shots(start: float, end: float, shots: list[list[float]] | None) -> bool:
    """Whether a word said in [start, end] falls mostly inside one of the frame's shots."""
    if not shots:
        return True
    mid = (start + end) / 2
    return any(s <= mid < e for s, e in shots)


def label_frame(
    keywords: list[dict[str, Any]],
    spans: list[list[float]],
    cfg: LabelConfig,
    shots: list[list[float]] | None = None,
) -> tuple[list[str], list[float]]:
    """Lemmas with their scores, best first: a noisy-or over every time the lemma was said in
    the frame's shot, each weighted by recognizer confidence, closeness in time and (by
    `label.salience_weight`) the lemma's salience in the video, so repeated words gain."""
    miss: dict[str, float] = {}
    for kw in keywords:
        if kw["score"] < cfg.min_word_score or not in_shots(kw["start"], kw["end"], shots):
            continue
        w = kw["score"] * temporal_weight(kw["start"], kw["end"], spans, cfg.before_s, cfg.after_s)
        w *= 1.0 - cfg.salience_weight * (1.0 - kw.get("salience", 1.0))
        if w > 0:
            miss[kw["lemma"]] = miss.get(kw["lemma"], 1.0) * (1.0 - w)
    scored = sorted(((1.0 - m, lemma) for lemma, m in miss.items()), key=lambda x: (-x[0], x[1]))
    kept = [(lemma, round(s, 4)) for s, lemma in scored if s >= cfg.min_score][: cfg.max_labels]
    return [k for k, _ in kept], [s for _, s in kept]


def window_words(
    transcript: list[dict[str, Any]],
    spans: list[list[float]],
    before: float,
    after: float,
    shots: list[list[float]] | None = None,
) -> list[str]:
    """The transcript words, verbatim, said in the label window around `spans` (and its shots)."""
    return [
        w["word"]
        for w in transcript
        if any(w["end"] > s - before and w["start"] < e + after for s, e in spans)
        and in_shots(w["start"], w["end"], shots)
    ]


class LabelStage(Stage):
    """`frames` + `keywords` → each frame with `labels`, `label_scores` and `words`."""

    name = "label"

    cfg: LabelConfig

    def process(self, row: Row) -> Row:
        keywords = row.get("keywords") or []
        transcript = row.get("transcript") or []
        frames = []
        for frame in row.get("frames") or []:
            shots = frame.get("shots")
            labels, scores = label_frame(keywords, frame["spans"], self.cfg, shots)
            frames.append(
                {
                    **frame,
                    "span_start": frame["spans"][0][0],
                    "span_end": frame["spans"][-1][1],
                    "labels": labels,
                    "label_scores": scores,
                    "words": window_words(
                        transcript, frame["spans"], self.cfg.before_s, self.cfg.after_s, shots
                    ),
                }
            )
        n_labels = len({lab for f in frames for lab in f["labels"]})
        return {**row, "frames": frames, "n_keywords": len(keywords), "n_labels": n_labels}
