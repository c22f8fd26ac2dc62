from pathlib import Path

import pyarrow.parquet as pq
import pytest

from vidray.config import OutputConfig
from vidray.schema import ERRORS_SCHEMA, FRAMES_SCHEMA, VIDEOS_SCHEMA
from vidray.sink import ParquetSink, check_output, part_name, read_table, split_rows

GOOD = {
    "video_id": "file:1",
    "source": "/v/1.mp4",
    "title": "1",
    "duration_s": 12.0,
    "has_audio": True,
    "transcript": [{"word": "tomato", "start": 1.0, "end": 1.5, "score": 0.9}],
    "frames_sampled": 4,
    "frames_kept": 1,
    "frames_dropped": 3,
    "n_labels": 1,
    "frames": [
        {
            "frame_ts": 1.5,
            "span_start": 0.0,
            "span_end": 12.0,
            "merged": 4,
            "image": b"\xff\xd8jpeg",
            "width": 64,
            "height": 36,
            "phash": -5,
            "labels": ["tomato"],
            "label_scores": [0.9],
            "words": ["tomato"],
        }
    ],
}
BAD = {
    "video_id": "file:2",
    "source": "/v/2.mp4",
    "error": "moov atom not found",
    "error_stage": "decode",
    "error_type": "InvalidDataError",
}


def test_every_video_lands_in_exactly_one_table() -> None:
    tables = split_rows([GOOD, BAD])
    assert [r["video_id"] for r in tables["videos"]] == ["file:1"]
    assert [r["video_id"] for r in tables["errors"]] == ["file:2"]
    assert tables["errors"][0]["stage"] == "decode"
    assert len(tables["frames"]) == 1 and tables["frames"][0]["source"] == "/v/1.mp4"
    assert split_rows([GOOD], pixels=False)["frames"][0]["image"] is None


def test_written_files_carry_the_explicit_schemas(tmp_path: Path) -> None:
    summaries = ParquetSink(str(tmp_path), OutputConfig())([GOOD, BAD]).to_pylist()
    assert [s["error_stage"] for s in summaries] == [None, "decode"]
    for table, schema in (
        ("frames", FRAMES_SCHEMA),
        ("videos", VIDEOS_SCHEMA),
        ("errors", ERRORS_SCHEMA),
    ):
        files = list((tmp_path / table).glob("*.parquet"))
        assert len(files) == 1 and files[0].name == part_name([GOOD, BAD])
        assert pq.read_schema(files[0]).remove_metadata() == schema
    frames = read_table(str(tmp_path), "frames").to_pylist()
    assert frames[0]["labels"] == ["tomato"] and frames[0]["phash"] == -5
    # a rerun of the same videos replaces its file instead of adding one
    ParquetSink(str(tmp_path), OutputConfig())([GOOD, BAD])
    assert len(list((tmp_path / "frames").iterdir())) == 1


def test_unwritable_output_fails_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot write to output"):
        check_output(str(blocker / "out"))


def test_reading_a_missing_table_gives_an_empty_typed_table(tmp_path: Path) -> None:
    assert read_table(str(tmp_path), "errors").schema == ERRORS_SCHEMA
