"""Record types and the explicit pyarrow schemas of every table vidray writes."""

from __future__ import annotations

from typing import Any, NamedTuple

import pyarrow as pa


class Word(NamedTuple):
    """One recognised word: text, start and end in seconds, recognizer confidence in [0, 1]."""

    word: str
    start: float
    end: float
    score: float


class Keyword(NamedTuple):
    """A content word kept from the transcript: its lemma, the word as said, and its timing."""

    lemma: str
    word: str
    start: float
    end: float
    score: float


WORD_TYPE = pa.struct(
    [("word", pa.string()), ("start", pa.float32()), ("end", pa.float32()), ("score", pa.float32())]
)

FRAMES_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("source", pa.string()),
        ("frame_ts", pa.float64()),  # seconds from the start of the video
        ("span_start", pa.float64()),  # the time this frame stands for, duplicates merged in
        ("span_end", pa.float64()),
        ("merged", pa.int32()),  # how many sampled frames this one represents (itself included)
        ("image", pa.binary()),  # JPEG; null in features-only mode
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("phash", pa.int64()),  # 64-bit DCT perceptual hash, two's complement
        ("labels", pa.list_(pa.string())),  # lemmas, best first
        ("label_scores", pa.list_(pa.float32())),
        ("words", pa.list_(pa.string())),  # transcript words in the label window, verbatim
    ]
)

VIDEOS_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("source", pa.string()),
        ("title", pa.string()),
        ("duration_s", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fps", pa.float64()),
        ("has_audio", pa.bool_()),
        ("asr_backend", pa.string()),
        ("asr_model", pa.string()),
        ("language", pa.string()),
        ("transcript", pa.list_(WORD_TYPE)),
        ("n_keywords", pa.int32()),
        ("frames_sampled", pa.int32()),
        ("frames_kept", pa.int32()),
        ("frames_dropped", pa.int32()),  # near-duplicates merged into a kept frame
        ("n_labels", pa.int32()),  # distinct labels over the video's kept frames
    ]
)

ERRORS_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("source", pa.string()),
        ("stage", pa.string()),
        ("error_type", pa.string()),
        ("message", pa.string()),
    ]
)

TABLES = {"frames": FRAMES_SCHEMA, "videos": VIDEOS_SCHEMA, "errors": ERRORS_SCHEMA}


def to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows → a table of exactly `schema` (extra keys ignored, missing ones null)."""
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.table(columns, schema=schema)
