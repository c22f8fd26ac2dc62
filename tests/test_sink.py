"""The sink: table routing, byte-sized row groups, split files, Hive partitions, atomic commits,
resume clean-up, features-only output and the dataset card."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from vidray.card import redact, write_card
from vidray.config import BuildConfig, ConfigError, OutputConfig
from vidray.schema import ERRORS_SCHEMA, FRAMES_SCHEMA, VIDEOS_SCHEMA
from vidray.sink import (
    ParquetSink,
    check_output,
    part_name,
    prepare_output,
    read_table,
    split_rows,
    table_files,
)
from vidray.storage import byte_chunks, open_root, redact_url, write_table

GOOD = {
    "video_id": "file:1",
    "source": "/v/1.mp4",
    "url": "https://example.org/watch?v=1",
    "title": "1",
    "duration_s": 12.0,
    "has_audio": True,
    "language": "en",
    "asr_backend": "pocketsphinx",
    "asr_model": "pocketsphinx-en-us",
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
            "embedding": [0.6, 0.8],
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
    "error_reason": "corrupt",
    "error_type": "InvalidDataError",
}


def video(i: int, frames: int = 1, image: bytes = b"\xff\xd8jpeg", **more: Any) -> dict[str, Any]:
    """A finished video row with `frames` frames one second apart."""
    shots = [
        {**GOOD["frames"][0], "frame_ts": float(t), "image": image + bytes([t % 256])}
        for t in range(frames)
    ]
    return {**GOOD, "video_id": f"file:{i}", "source": f"/v/{i}.mp4", "frames": shots, **more}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_every_video_lands_in_exactly_one_table() -> None:
    tables = split_rows([GOOD, BAD])
    assert [r["video_id"] for r in tables["videos"]] == ["file:1"]
    assert [r["video_id"] for r in tables["errors"]] == ["file:2"]
    assert tables["errors"][0]["stage"] == "decode"
    frame = tables["frames"][0]
    assert frame["source"] == "/v/1.mp4" and frame["url"] == GOOD["url"]
    assert frame["frame_id"] == "file:1@1500"
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
        meta = pq.ParquetFile(files[0]).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
    frames = read_table(str(tmp_path), "frames").to_pylist()
    assert frames[0]["labels"] == ["tomato"] and frames[0]["phash"] == -5
    assert frames[0]["frame_id"] == "file:1@1500" and frames[0]["url"] == GOOD["url"]
    manifest = json.loads(
        (tmp_path / "_parts" / part_name([GOOD, BAD]).replace(".parquet", ".json")).read_text()
    )
    assert manifest["video_ids"] == ["file:1", "file:2"]
    assert sorted(manifest["files"]) == [
        f"{t}/{part_name([GOOD, BAD])}" for t in ("errors", "frames", "videos")
    ]
    # a rerun of the same videos replaces its file instead of adding one
    ParquetSink(str(tmp_path), OutputConfig())([GOOD, BAD])
    assert len(list((tmp_path / "frames").iterdir())) == 1


def test_features_only_keeps_everything_but_the_pixels(tmp_path: Path) -> None:
    ParquetSink(str(tmp_path), OutputConfig(pixels=False))([GOOD])
    frames = read_table(str(tmp_path), "frames").to_pylist()
    assert frames[0]["image"] is None
    assert frames[0]["labels"] == ["tomato"] and frames[0]["frame_ts"] == 1.5
    assert frames[0]["url"] == GOOD["url"] and frames[0]["embedding"] is not None
    for path in tmp_path.rglob("*.parquet"):
        assert b"\xff\xd8" not in path.read_bytes()


def test_row_groups_are_sized_by_bytes(tmp_path: Path) -> None:
    images = pa.array([os.urandom(10_000) for _ in range(20)], pa.binary())
    table = pa.table({"image": images, "n": pa.array(range(20), pa.int32())})
    assert byte_chunks(table, 35_000) == [(i, 3) for i in range(0, 18, 3)] + [(18, 2)]
    write_table(pafs.LocalFileSystem(), str(tmp_path / "t.parquet"), table, row_group_bytes=35_000)
    meta = pq.ParquetFile(tmp_path / "t.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [3] * 6 + [2]
    assert pq.read_table(tmp_path / "t.parquet").equals(table)
    # the sink reads the target from output.row_group_size
    rows = [video(1, frames=12, image=os.urandom(20_000))]
    ParquetSink(str(tmp_path / "ds"), OutputConfig(row_group_size="50K"))(rows)
    (frames,) = (tmp_path / "ds" / "frames").glob("*.parquet")
    meta = pq.ParquetFile(frames).metadata
    assert meta.num_row_groups == 6 and meta.row_group(0).num_rows == 2


def test_a_large_batch_is_split_into_numbered_files(tmp_path: Path) -> None:
    rows = [
        video(1, frames=10, image=os.urandom(30_000)),
        video(2, frames=10, image=os.urandom(30_000)),
    ]
    ParquetSink(str(tmp_path), OutputConfig(max_file_size="100K"))(rows)
    stem = part_name(rows).removesuffix(".parquet")
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [f"{stem}-{i:05d}.parquet" for i in range(len(names))] and len(names) >= 6
    assert all(p.stat().st_size < 120_000 for p in (tmp_path / "frames").iterdir())
    manifest = json.loads((tmp_path / "_parts" / f"{stem}.json").read_text())
    assert sorted(manifest["files"]) == sorted(
        [f"frames/{n}" for n in names] + [f"videos/{stem}.parquet"]
    )
    frames = read_table(str(tmp_path), "frames", ["frame_id"]).column("frame_id").to_pylist()
    assert frames == [f"file:{v}@{t * 1000}" for v in (1, 2) for t in range(10)]
    # rewriting the batch with bigger files leaves no stale numbered file behind
    ParquetSink(str(tmp_path), OutputConfig())(rows)
    assert [p.name for p in (tmp_path / "frames").iterdir()] == [f"{stem}.parquet"]
    assert read_table(str(tmp_path), "frames").num_rows == 20


def test_partitioned_root_reads_back_with_every_reader(tmp_path: Path) -> None:
    import duckdb
    import pandas as pd

    cfg = OutputConfig(partition_by=["language", "extractor"])
    ParquetSink(str(tmp_path), cfg)(
        [video(1, language="en", extractor="youtube"), video(2, language="fr")]
    )
    ParquetSink(str(tmp_path), cfg)([video(3, language="en us/x", extractor="youtube"), BAD])
    assert {str(Path(f).parent) for f in files_under(tmp_path / "videos")} == {
        "language=en/extractor=youtube",
        "language=fr/extractor=__HIVE_DEFAULT_PARTITION__",
        "language=en%20us%2Fx/extractor=youtube",
    }
    assert (tmp_path / "errors" / part_name([video(3), BAD])).is_file()  # errors unpartitioned
    # vidray's readers: the declared schema, partition columns restored and usable as filters
    videos = read_table(str(tmp_path), "videos")
    assert videos.schema == VIDEOS_SCHEMA
    found = {r["video_id"]: (r["language"], r["extractor"]) for r in videos.to_pylist()}
    assert found == {
        "file:1": ("en", "youtube"),
        "file:2": ("fr", None),
        "file:3": ("en us/x", "youtube"),
    }
    assert read_table(str(tmp_path), "frames").schema == FRAMES_SCHEMA
    english = read_table(str(tmp_path), "frames", ["video_id"], pc.field("language") == "en")
    assert english.column("video_id").to_pylist() == ["file:1"]
    assert len(read_table(str(tmp_path), "errors").to_pylist()) == 1
    # pyarrow and DuckDB discover the Hive partitions themselves
    table = pq.read_table(tmp_path / "frames", columns=["video_id", "language"])
    assert sorted(table.to_pylist(), key=str)[0] == {"video_id": "file:1", "language": "en"}
    by_pyarrow = pads.dataset(tmp_path / "videos", partitioning="hive").to_table()
    assert sorted(by_pyarrow.column("language").to_pylist()) == ["en", "en us/x", "fr"]
    rows = duckdb.sql(
        f"select video_id, language, extractor from read_parquet('{tmp_path}/frames/**/*.parquet',"
        " hive_partitioning=true) order by video_id"
    ).fetchall()
    assert rows == [
        ("file:1", "en", "youtube"),
        ("file:2", "fr", None),
        ("file:3", "en us/x", "youtube"),
    ]
    frame = pd.read_parquet(tmp_path / "videos", partitioning=pads.partitioning(flavor="hive"))
    assert sorted(frame["video_id"]) == ["file:1", "file:2", "file:3"]


def test_bad_layout_config_fails_at_once(tmp_path: Path) -> None:
    for bad in (["transcript"], ["nope"], ["language", "language"]):
        with pytest.raises(ConfigError, match="partition_by"):
            check_output(str(tmp_path), OutputConfig(partition_by=bad))
    with pytest.raises(ConfigError, match="not a size"):
        check_output(str(tmp_path), OutputConfig(max_file_size="big"))


KILLED_MID_WRITE = """
import os, sys
import pyarrow.parquet as pq
from vidray.config import OutputConfig
from vidray.sink import ParquetSink
sys.path.insert(0, {tests!r})
from test_sink import video

write = pq.ParquetWriter.write_table
calls = []

def write_then_die(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
        os._exit(9)  # like a killed worker: no cleanup, no exception handlers
    write(self, *args, **kwargs)

pq.ParquetWriter.write_table = write_then_die
rows = [video(1, frames=8, image=os.urandom(20_000))]
ParquetSink({root!r}, OutputConfig(row_group_size="30K"))(rows)
"""


def test_a_write_killed_midway_leaves_no_visible_file(tmp_path: Path) -> None:
    script = KILLED_MID_WRITE.format(tests=str(Path(__file__).parent), root=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True)
    assert done.returncode == 9, done.stderr.decode()
    left = files_under(tmp_path)
    assert left and all(Path(f).name.startswith(".tmp-") for f in left), left
    assert read_table(str(tmp_path), "frames").num_rows == 0
    assert table_files(str(tmp_path), "frames")[1] == []
    assert pq.read_table(tmp_path / "frames").num_rows == 0  # hidden from other readers too
    assert prepare_output(str(tmp_path), resume=True) == set()
    assert files_under(tmp_path) == []  # stale temporary files cleaned up on resume


def test_only_committed_parts_are_read_and_resume_removes_the_rest(tmp_path: Path) -> None:
    root = str(tmp_path)
    first, second, third = [video(1), BAD], [video(3)], [video(4)]
    for rows in (first, second, third):
        ParquetSink(root, OutputConfig())(rows)
    (tmp_path / "_parts" / part_name(second).replace(".parquet", ".json")).unlink()  # crashed
    (tmp_path / "videos" / part_name(third)).unlink()  # a committed file lost
    (tmp_path / "frames" / ".tmp-0123").write_bytes(b"half")
    assert read_table(root, "videos", ["video_id"]).column("video_id").to_pylist() == ["file:1"]
    with pytest.raises(FileExistsError, match="--resume"):
        prepare_output(root, OutputConfig(), resume=False)
    with pytest.raises(ConfigError, match="partition_by"):
        prepare_output(root, OutputConfig(partition_by=["language"]), resume=True)
    assert prepare_output(root, OutputConfig(), resume=True) == {"file:1", "file:2"}
    name = part_name(first)
    assert files_under(tmp_path) == sorted(
        [
            f"_parts/{name.replace('.parquet', '.json')}",
            f"errors/{name}",
            f"frames/{name}",
            f"videos/{name}",
        ]
    )
    assert prepare_output(str(tmp_path / "new"), OutputConfig(), resume=False) == set()


def test_card_counts_the_tables_and_hides_secrets(tmp_path: Path) -> None:
    import datasets

    cfg = BuildConfig()
    cfg.output.partition_by = ["language"]
    cfg.fetch.proxy = "http://alice:hunter2@proxy.example:3128"
    cfg.fetch.cookies = "s3://bucket/cookies.txt?X-Amz-Signature=sig123&X-Amz-Credential=cred456"
    sink = ParquetSink(str(tmp_path), cfg.output)
    sink([video(1, frames=3), BAD])
    sink([video(3, frames=1, language="fr", frames_kept=3)])
    text = write_card(str(tmp_path), cfg)
    assert text == (tmp_path / "README.md").read_text()
    for secret in ("hunter2", "sig123", "cred456"):
        assert secret not in text
    assert "http://***@proxy.example:3128" in text
    assert "| videos | 2 |" in text and "| frames | 4 |" in text
    assert "| decode / corrupt | 1 |" in text and "| tomato | 4 |" in text
    assert "| label vocabulary | 1 |" in text and "pocketsphinx / pocketsphinx-en-us" in text
    assert "frame_id: string" in text and "partition_by:\n    - language" in text
    cache = str(tmp_path.parent / "hf-cache")
    frames = datasets.load_dataset(str(tmp_path), split="train", cache_dir=cache)
    assert sorted(frames["frame_id"]) == ["file:1@0", "file:1@1000", "file:1@2000", "file:3@0"]
    errors = datasets.load_dataset(str(tmp_path), "errors", split="train", cache_dir=cache)
    assert errors["video_id"] == ["file:2"]


def test_redaction() -> None:
    assert redact_url("https://u:p@host/x?token=abc&flag") == "https://***@host/x?token=***&flag"
    assert redact_url("u:p@proxy:8080") == "***@proxy:8080"
    assert redact_url("/plain/path.txt") == "/plain/path.txt"
    assert redact({"api_key": "k", "proxy": "socks5://a:b@h:1", "n": 3}) == {
        "api_key": "***",
        "proxy": "socks5://***@h:1",
        "n": 3,
    }


def test_unwritable_output_fails_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot write to output"):
        check_output(str(blocker / "out"))


def test_reading_a_missing_table_gives_an_empty_typed_table(tmp_path: Path) -> None:
    assert read_table(str(tmp_path), "errors").schema == ERRORS_SCHEMA


def test_credentials_in_an_s3_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="AWS chain") as exc:
        open_root("s3://AKIAEXAMPLE:hunter2@bucket/prefix")
    assert "hunter2" not in str(exc.value) and "AKIAEXAMPLE" not in str(exc.value)
