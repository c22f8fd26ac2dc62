import math

import av
import numpy as np

from vidray.asr.base import fill_missing_times, shift, stitch, to_float, to_int16
from vidray.audio import FlacWriter, pcm_chunks
from vidray.schema import Word


def _flac(samples: np.ndarray, rate: int = 16_000) -> bytes:
    writer = FlacWriter(rate)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    writer.write(frame)
    return writer.close()


def test_chunks_overlap_and_cover_the_track() -> None:
    samples = (np.arange(16_000 * 25) % 20_000).astype(np.int16)
    chunks = list(pcm_chunks(_flac(samples), chunk_s=10, overlap_s=2))
    # The last piece reaches back to be a whole 10 s.
    assert [(start, len(c) / 16_000) for start, c in chunks] == [(0, 10), (8, 10), (15, 10)]
    for start, c in chunks:
        assert np.array_equal(c, samples[int(start * 16_000) :][: len(c)])


def test_a_tail_inside_the_last_overlap_is_not_a_chunk_of_its_own() -> None:
    samples = np.zeros(16_000 * 18, dtype=np.int16)  # 10 s, then 8..18 s: the end exactly
    assert [s for s, _ in pcm_chunks(_flac(samples), chunk_s=10, overlap_s=2)] == [0, 8]


def _w(text: str, start: float, end: float) -> Word:
    return Word(text, start, end, 1.0)


def test_stitch_keeps_each_seam_word_once() -> None:
    # Chunk 1 covers 0–10 s, chunk 2 covers 8–18 s: the overlap's middle is at 9 s.
    first = [_w("slice", 1, 1.5), _w("the", 8.2, 8.4), _w("tomato", 8.9, 9.3), _w("cut", 9.8, 10)]
    second = [_w("the", 8.2, 8.4), _w("tomato", 8.9, 9.3), _w("cutting", 9.8, 10.4)]
    words = stitch([(0, 10, first), (8, 18, second)])
    assert [w.word for w in words] == ["slice", "the", "tomato", "cutting"]


def test_stitch_without_overlap_concatenates() -> None:
    words = stitch([(0, 5, [_w("a", 1, 2)]), (5, 10, shift([_w("b", 1, 2)], 5))])
    assert [(w.word, w.start) for w in words] == [("a", 1), ("b", 6)]


def test_missing_times_are_interpolated_and_flagged() -> None:
    words = fill_missing_times(
        [
            ("pour", 1.0, 1.4, 0.9),
            ("2", None, None, None),
            ("%", math.nan, math.nan, None),
            ("cups", 2.0, 2.5, 0.8),
            ("now", None, None, 0.5),
        ],
        clip_end=3.0,
    )
    assert [w.word for w in words] == ["pour", "2", "%", "cups", "now"]
    assert [w.interpolated for w in words] == [False, True, True, False, True]
    assert (words[1].start, words[1].end) == (1.4, 1.7)
    assert (words[2].start, words[2].end) == (1.7, 2.0)
    assert (words[4].start, words[4].end) == (2.5, 3.0)
    assert words[1].score == 0.0 and words[4].score == 0.5


def test_missing_times_at_an_unknown_edge_get_a_nominal_length() -> None:
    words = fill_missing_times([("a", None, None, 1.0), ("b", None, None, 1.0)], clip_start=4.0)
    assert [(w.start, w.end) for w in words] == [(4.0, 4.3), (4.3, 4.6)]


def test_int16_round_trips_exactly() -> None:
    pcm = np.array([-32768, -32767, -1, 0, 1, 12345, 32767], dtype=np.int16)
    assert np.array_equal(to_int16(to_float(pcm)), pcm)


def test_stitch_keeps_a_word_once_when_its_times_straddle_the_seam() -> None:
    # The overlap 595–600 s has its middle at 597.5; the chunks place "tomato" either side.
    a = [_w("sauce", 596.0, 596.8), _w("tomato", 597.20, 597.78)]
    b = [_w("sauce", 596.0, 596.8), _w("tomato", 597.24, 597.82), _w("pasta", 598.5, 599.0)]
    for first, second in ((a, b), (b[:2], a + b[2:])):
        words = stitch([(0, 600, first), (595, 1200, second)])
        assert [w.word for w in words] == ["sauce", "tomato", "pasta"]


def test_a_short_last_piece_reaches_back_only_to_min_last_s() -> None:
    samples = np.zeros(16_000 * 20, dtype=np.int16)
    chunks = list(pcm_chunks(_flac(samples), chunk_s=10, overlap_s=2, min_last_s=5))
    assert [(s, len(c) / 16_000) for s, c in chunks] == [(0, 10), (8, 10), (15, 5)]
