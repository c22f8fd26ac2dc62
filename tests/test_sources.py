import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from vidray.config import SourcesConfig
from vidray.sources import expand_inputs, local_runner, single_video_extractor
from vidray.testing.media import write_test_video
from vidray.testing.s3 import s3_server
from vidray.testing.webserver import serve

pytestmark = pytest.mark.timeout(120)


def test_folders_files_and_duplicates(tmp_path: Path, sample_video: Path) -> None:
    shutil.copy(sample_video, tmp_path / "a.mp4")
    shutil.copy(sample_video, tmp_path / "same_content.mkv")
    (tmp_path / "notes.txt").write_text("not a video")
    rows = expand_inputs([str(tmp_path), str(tmp_path / "a.mp4")])
    assert len(rows) == 1  # one content, three mentions
    assert rows[0]["video_id"].startswith("file:")


def test_missing_input_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="input not found"):
        expand_inputs([str(tmp_path / "missing.mp4")])


def test_folder_without_videos(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no video files"):
        expand_inputs([str(tmp_path)])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("site")
    write_test_video(root / "a.mp4", seconds=1.0)
    write_test_video(root / "b.mp4", seconds=1.5)
    with serve(root) as base:
        yield base


def test_site_video_urls_get_extractor_ids_without_the_network() -> None:
    rows = expand_inputs(
        [
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "https://youtu.be/dQw4w9WgXcQ",
            "https://vimeo.com/76979871",
        ]
    )
    assert [r["video_id"] for r in rows] == ["youtube:dQw4w9WgXcQ", "vimeo:76979871"]
    assert single_video_extractor("https://www.youtube.com/playlist?list=PL0") is None  # a playlist


def test_url_list_with_blank_lines_comments_and_garbage(site: str, tmp_path: Path) -> None:
    lst = tmp_path / "urls.txt"
    lst.write_text(  # with a byte-order mark and Windows line ends, as spreadsheets save
        f"\ufeff# my videos\r\n\r\n{site}/files/a.mp4\n   \n{site}/files/a.mp4\nnot a url at all\n"
        f"{site}/page/b.mp4\n# done\n"
    )
    rows = expand_inputs([str(lst)])
    good = [r for r in rows if not r.get("error")]
    bad = [r for r in rows if r.get("error")]
    assert [r["url"] for r in good] == [f"{site}/files/a.mp4", f"{site}/page/b.mp4"]
    assert (
        len(bad) == 1
        and bad[0]["error_stage"] == "sources"
        and bad[0]["error_reason"] == "invalid_input"
    )
    assert "not a url at all" in bad[0]["error"]


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_tables_of_urls_carry_their_other_columns(site: str, tmp_path: Path, kind: str) -> None:
    table = pa.table(
        {"url": [f"{site}/files/a.mp4", f"{site}/files/b.mp4"], "topic": ["knife", "tomato"]}
    )
    path = tmp_path / f"urls.{kind}"
    if kind == "csv":
        pacsv.write_csv(table, path)
    elif kind == "parquet":
        pq.write_table(table, path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    rows = expand_inputs([str(path)])
    assert [json.loads(r["extra"]) for r in rows] == [{"topic": "knife"}, {"topic": "tomato"}]


def test_table_without_url_column_is_a_bad_job(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("link\nhttp://x/a.mp4\n")
    with pytest.raises(ValueError, match="needs a `url` column"):
        expand_inputs([str(tmp_path / "l.csv")])


def test_playlists_expand_and_keep_their_bad_entry(site: str) -> None:
    rows = expand_inputs(
        [f"{site}/page2?src=a.mp4&src=/status/404", f"{site}/feed.xml?src=b.mp4&src=a.mp4"]
    )
    urls = [r["url"] for r in rows]
    # a.mp4 appears in both playlists and collapses to one row; the 404 entry stays for fetch
    assert urls == [f"{site}/files/a.mp4", f"{site}/status/404", f"{site}/files/b.mp4"]
    assert rows[0]["playlist"] == "several videos" and rows[2]["playlist"] == "test feed"


def test_unreachable_page_is_an_error_row(site: str) -> None:
    (row,) = expand_inputs([f"{site}/status/404"])
    assert (row["error_stage"], row["error_reason"]) == ("sources", "not_found")


def test_max_videos_stops_expanding(site: str) -> None:
    rows = expand_inputs(
        [
            f"{site}/files/a.mp4",
            f"{site}/feed.xml?src=b.mp4&src=c.mp4",
            f"{site}/page2?src=d.mp4&src=e.mp4",
        ],
        SourcesConfig(max_videos=2, urls_per_task=1),
    )
    assert len(rows) == 2


def test_runner_gets_the_urls_in_batches(site: str) -> None:
    seen: list[list[str]] = []

    def runner(chunks, fetch):  # type: ignore[no-untyped-def]
        seen.extend(chunks)
        return local_runner(chunks, fetch)

    pages = [f"{site}/page2?src={n}.mp4" for n in "abcde"]  # web pages: only yt-dlp can tell
    media = [f"{site}/files/{n}.mp4" for n in "fg"]  # direct media: known without the network
    rows = expand_inputs([*pages, *media], SourcesConfig(urls_per_task=2), runner=runner)
    assert seen == [pages[:2], pages[2:4], pages[4:]] and len(rows) == 7
    assert [r["source"] for r in rows[5:]] == media


def test_s3_prefix_lists_media_objects(tmp_path: Path) -> None:
    from pyarrow import fs

    with s3_server(buckets=("media",)):
        s3, _ = fs.FileSystem.from_uri("s3://media/x")
        for key in ("videos/a.mp4", "videos/deeper/b.mkv", "videos/readme.txt"):
            with s3.open_output_stream(f"media/{key}") as out:
                out.write(b"data")
        rows = expand_inputs(["s3://media/videos", "s3://media/videos/a.mp4"])
        assert [r["source"] for r in rows] == [
            "s3://media/videos/a.mp4",
            "s3://media/videos/deeper/b.mkv",
        ]
        assert all(r["video_id"].startswith("s3:") for r in rows)
        with pytest.raises(FileNotFoundError, match="no such S3 object"):
            expand_inputs(["s3://media/nothing-here"])
