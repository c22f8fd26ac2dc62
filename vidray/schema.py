"""Record types and the explicit pyarrow schemas of every table vidray writes."""

from __future__ import annotations

from typing import Any, NamedTuple

import pyarrow as pa


class Word(NamedTuple):
    """One recognised word: text, start and end in seconds, recognizer confidence in [0, 1].

    `interpolated` marks times the recognizer did not give (WhisperX leaves numbers and
    symbols unaligned; plain-text captions have times per cue only), filled from neighbours.
    """

    word: str
    start: float
    end: float
    score: float
    interpolated: bool = False


class Keyword(NamedTuple):
    """A content word kept from the transcript: its lemma, the word as said, and its timing."""

    lemma: str
    word: str
    start: float
    end: float
    score: float
    salience: float = 1.0


WORD_TYPE = pa.struct(
    [
        ("word", pa.string()),
        ("start", pa.float32()),
        ("end", pa.float32()),
        ("score", pa.float32()),
        ("interpolated", pa.bool_()),
    ]
)

FRAMES_SCHEMA = pa.schema(
    [
        ("frame_id", pa.string()),  # <video_id>@<frame_ts in ms>: unique across the dataset
        ("video_id", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),  # the page of a web video (null for local files)
        ("frame_ts", pa.float64()),  # seconds from the start of the video
        ("span_start", pa.float64()),  # the time this frame stands for, duplicates merged in
        ("span_end", pa.float64()),
        ("merged", pa.int32()),  # how many sampled frames this one represents (itself included)
        ("image", pa.binary()),  # JPEG; null in features-only mode
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("phash", pa.int64()),  # 64-bit DCT perceptual hash, two's complement
        ("embedding", pa.list_(pa.float16())),  # unit-length image embedding (build.embed)
        ("labels", pa.list_(pa.string())),  # lemmas, best first
        ("label_scores", pa.list_(pa.float32())),
        ("words", pa.list_(pa.string())),  # transcript words in the label window, verbatim
    ]
)

KEYWORD_TYPE = pa.struct(
    [
        ("lemma", pa.string()),  # a lemma, or a multi-word term such as "olive oil"
        ("word", pa.string()),  # as said
        ("start", pa.float32()),
        ("end", pa.float32()),
        ("score", pa.float32()),  # recognizer confidence
        ("salience", pa.float32()),  # tf-idf of the lemma, scaled to [0, 1] within the video
    ]
)

CHAPTER_TYPE = pa.struct([("title", pa.string()), ("start", pa.float64()), ("end", pa.float64())])

SUBTITLE_TYPE = pa.struct(
    [("lang", pa.string()), ("ext", pa.string()), ("automatic", pa.bool_()), ("text", pa.string())]
)

VIDEOS_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),  # <extractor>:<id>, url:<hash>, file:<hash> or s3:<hash>
        ("source", pa.string()),  # the input: a local file, an s3:// object or a web URL
        ("url", pa.string()),  # the page of a web video
        ("extractor", pa.string()),
        ("title", pa.string()),
        ("uploader", pa.string()),
        ("channel", pa.string()),
        ("upload_date", pa.string()),  # YYYYMMDD as the site gives it
        ("web_duration_s", pa.float64()),  # the duration the site states
        ("categories", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())),
        ("license", pa.string()),
        ("declared_language", pa.string()),  # the language the site states
        ("chapters", pa.list_(CHAPTER_TYPE)),
        ("view_count", pa.int64()),
        ("playlist", pa.string()),  # the playlist, channel or search it was found through
        ("extra", pa.string()),  # JSON object: the URL list's other columns
        ("subtitles", pa.list_(SUBTITLE_TYPE)),  # fetched with fetch.subtitles
        ("media", pa.string()),  # where the media was kept (fetch.keep_media)
        ("fetch_attempts", pa.int32()),
        ("decode_strategy", pa.string()),  # seek, sequential or keyframes
        ("warnings", pa.list_(pa.string())),  # e.g. a truncated file decoded as far as it goes
        ("duration_s", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fps", pa.float64()),
        ("has_audio", pa.bool_()),
        # Audio statistics of the 16 kHz track (stages/audio_stats.py), usable as filters.
        ("speech_ratio", pa.float32()),  # share of the track that is speech-like
        ("loudness_db", pa.float32()),  # mean loudness, dBFS
        ("loudness_trend_db_per_min", pa.float32()),  # least-squares slope of loudness
        ("periodicity", pa.float32()),  # highest autocorrelation of the loudness envelope
        ("period_s", pa.float32()),  # the lag of that peak
        ("serial_correlation", pa.float32()),  # lag-1 autocorrelation of the envelope
        ("skewness", pa.float32()),  # of the samples
        ("kurtosis", pa.float32()),  # excess kurtosis of the samples
        ("hurst", pa.float32()),  # Hurst exponent of the envelope (self-similarity)
        ("asr_backend", pa.string()),  # the backend that produced the transcript
        ("asr_model", pa.string()),
        ("language", pa.string()),
        ("transcript", pa.list_(WORD_TYPE)),
        ("keywords", pa.list_(KEYWORD_TYPE)),
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
        ("url", pa.string()),
        ("stage", pa.string()),  # sources, fetch, decode, transcribe, ...
        ("reason", pa.string()),  # a category: not_found, timeout, corrupt, no_video_stream, ...
        ("error_type", pa.string()),
        ("message", pa.string()),
        ("attempts", pa.int32()),
        ("extra", pa.string()),
    ]
)

DUPLICATES_SCHEMA = pa.schema(
    [
        ("kept_id", pa.string()),  # frame_id of the frame that stays
        ("dropped_id", pa.string()),  # frame_id of its near-duplicate, left out of the view
        ("similarity", pa.float32()),  # cosine similarity of their embeddings
        ("cluster", pa.int32()),  # the k-means cluster both fell in
    ]
)

TABLES = {
    "frames": FRAMES_SCHEMA,
    "videos": VIDEOS_SCHEMA,
    "errors": ERRORS_SCHEMA,
    "duplicates": DUPLICATES_SCHEMA,
}


def frame_id(video_id: str, frame_ts: float) -> str:
    """The id of a frame: its video and its time in whole milliseconds."""
    return f"{video_id}@{round(frame_ts * 1000)}"


def to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows → a table of exactly `schema` (extra keys ignored, missing ones null)."""
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.table(columns, schema=schema)
