"""Fetch: yt-dlp against a local HTTP server, never the internet."""

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from vidray.config import FetchConfig
from vidray.stages.base import VideoError
from vidray.stages.fetch import (
    FetchStage,
    HostGate,
    check_limits,
    format_selector,
    safe_name,
    web_metadata,
    ydl_options,
)
from vidray.testing.media import write_test_video
from vidray.testing.s3 import s3_server
from vidray.testing.webserver import serve
from vidray.web import backoff_s, classify

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("site")
    write_test_video(root / "clip.mp4", seconds=2.0)
    (root / "clip.en.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.500\nslice the tomato\n")
    with serve(root) as base:
        yield base


def fetch(row: dict, tmp_path: Path, **cfg) -> dict:  # type: ignore[type-arg]
    cfg = {"retries": 2, "backoff_s": 0.01, "socket_timeout_s": 5.0, **cfg}
    stage = FetchStage(
        FetchConfig(scratch_dir=str(tmp_path / "scratch"), **cfg), str(tmp_path / "media")
    )
    return dict(stage([row]).to_pylist()[0])


def hits(base: str, path: str) -> int:
    with urllib.request.urlopen(f"{base}/_count?path={path}") as r:
        return int(json.load(r)["count"])


class FakeHTTPError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP Error {status}")
        self.status = status


@pytest.mark.parametrize(
    ("exc", "reason", "transient"),
    [
        (FakeHTTPError(404), "not_found", False),
        (FakeHTTPError(403), "forbidden", False),
        (FakeHTTPError(503), "server_error", True),
        (FakeHTTPError(429), "rate_limited", True),
        (
            Exception("ERROR: \r[download] Got error: HTTP Error 500: Internal Server Error"),
            "server_error",
            True,
        ),
        (Exception("Read timed out. (read timeout=1.0)"), "timeout", True),
        (Exception("Connection reset by peer"), "connection", True),
        (Exception("IncompleteRead(1000 bytes read, 500 more expected)"), "connection", True),
        (Exception("HTTP Error 302: Found (redirect loop detected)"), "redirect_loop", False),
        (Exception("ERROR: Unsupported URL: http://x/y"), "unsupported", False),
        (
            Exception("ERROR: [youtube] x: Private video. Sign in if you've been granted access"),
            "private",
            False,
        ),
        (
            Exception(
                "ERROR: [youtube] x: Video unavailable. This video has been removed by the uploader"
            ),
            "removed",
            False,
        ),
        (
            Exception("The uploader has not made this video available in your country"),
            "geo_blocked",
            False,
        ),
        (
            Exception(
                "Sign in to confirm your age. This video may be inappropriate for some users."
            ),
            "age_gated",
            False,
        ),
    ],
)
def test_failures_are_classified(exc: Exception, reason: str, transient: bool) -> None:
    assert classify(exc) == (reason, transient)


def test_backoff_grows_exponentially_with_jitter() -> None:
    cfg = FetchConfig(backoff_s=1.0, max_backoff_s=5.0)
    waits = [backoff_s(a, cfg) for a in (1, 2, 3, 4, 5)]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0 and 2.0 <= waits[2] <= 4.0
    assert all(w <= 5.0 for w in waits)


def test_file_names_come_from_the_id_only() -> None:
    name = safe_name("generic:../../etc/passwd")
    assert "/" not in name and not name.startswith(".") and name.startswith("generic_etc_passwd-")
    assert safe_name("youtube:abc") != safe_name("youtube_abc")  # the hash keeps ids apart


def test_format_choice_from_config() -> None:
    assert format_selector(FetchConfig()) == "wv*[height>=360]+ba/w[height>=360]/bv*+ba/b"
    assert format_selector(FetchConfig(audio_only=True)) == "ba/b"


def test_limits_and_metadata() -> None:
    info = {
        "webpage_url": "https://example.org/v/1",
        "extractor_key": "Example",
        "title": "Knife skills",
        "uploader": "Chef",
        "duration": 100.0,
        "upload_date": "20240102",
        "tags": ["knife"],
        "chapters": [{"title": "intro", "start_time": 0.0, "end_time": 10.0}],
        "view_count": 7,
    }
    meta = web_metadata(info)
    assert meta["url"] == "https://example.org/v/1" and meta["chapters"][0]["title"] == "intro"
    check_limits(info, FetchConfig())
    with pytest.raises(VideoError, match="longer than") as e:
        check_limits(info, FetchConfig(max_duration_s=60))
    assert e.value.reason == "too_long"
    with pytest.raises(VideoError) as e:
        check_limits({**info, "filesize": 5 << 20}, FetchConfig(max_filesize="1M"))
    assert e.value.reason == "too_large"
    with pytest.raises(VideoError) as e:
        check_limits({**info, "is_live": True}, FetchConfig())
    assert e.value.reason == "live"


def test_passthrough_options() -> None:
    cfg = FetchConfig(
        cookies="c.txt", proxy="socks5://127.0.0.1:1", user_agent="vidray-test", rate_limit="1M"
    )
    opts = ydl_options(cfg, Path("/scratch"), "stem")
    assert opts["cookiefile"] == "c.txt" and opts["proxy"] == "socks5://127.0.0.1:1"
    assert opts["http_headers"] == {"User-Agent": "vidray-test"} and opts["ratelimit"] == 1 << 20
    assert opts["outtmpl"]["default"] == "stem.%(ext)s" and opts["retries"] == 0


def test_host_gate_caps_concurrency_and_spaces_starts() -> None:
    gate = HostGate(per_host=2, min_interval_s=0.0)
    assert gate.try_acquire("a") == 0 and gate.try_acquire("a") == 0
    assert gate.try_acquire("a") > 0  # a third download from host a waits
    assert gate.try_acquire("b") == 0  # other hosts are not held up
    gate.release("a")
    assert gate.try_acquire("a") == 0
    spaced = HostGate(per_host=10, min_interval_s=0.2)
    assert spaced.try_acquire("h") == 0 and 0 < spaced.try_acquire("h") <= 0.2


def test_direct_video_url_downloads_into_scratch(site: str, tmp_path: Path) -> None:
    out = fetch(
        {"video_id": "url:1", "url": f"{site}/files/clip.mp4", "source": f"{site}/files/clip.mp4"},
        tmp_path,
    )
    assert out.get("error") is None
    path = Path(out["media_path"])
    assert path.parent == tmp_path / "scratch" and path.name.startswith(safe_name("url:1"))
    with urllib.request.urlopen(f"{site}/files/clip.mp4") as served:
        assert path.read_bytes() == served.read()  # the file itself, not a page about it
    assert out["url"] == f"{site}/files/clip.mp4" and out["scratch"] is True


def test_html_page_with_video_and_subtitles(site: str, tmp_path: Path) -> None:
    url = f"{site}/page/clip.mp4?track=clip.en.vtt"
    out = fetch({"video_id": "url:2", "url": url}, tmp_path, subtitles=True, keep_media=True)
    assert out.get("error") is None and Path(out["media_path"]).is_file()
    assert out["subtitles"][0]["lang"] == "en" and "slice the tomato" in out["subtitles"][0]["text"]
    assert (
        Path(out["media"]).read_bytes() == Path(out["media_path"]).read_bytes()
    )  # kept under ROOT/media


@pytest.mark.parametrize(
    ("path", "reason", "attempts"),
    [
        ("/status/404", "not_found", 1),
        ("/status/410", "not_found", 1),
        ("/flaky/9/clip.mp4", "server_error", 3),
        ("/loop/a", "redirect_loop", 1),
        ("/html-as-video.mp4", "unsupported", 1),
    ],
)
def test_failures_become_rows_with_a_reason(
    site: str, tmp_path: Path, path: str, reason: str, attempts: int
) -> None:
    out = fetch({"video_id": "x", "url": site + path, "source": site + path}, tmp_path)
    assert (out["error_stage"], out["error_reason"], out["attempts"]) == ("fetch", reason, attempts)
    assert out["source"] == site + path and out["url"] == site + path
    assert not list((tmp_path / "scratch").glob("*"))  # nothing left behind


def test_server_error_recovers_on_retry(site: str, tmp_path: Path) -> None:
    out = fetch({"video_id": "y", "url": f"{site}/flaky/2/clip.mp4"}, tmp_path)
    assert out.get("error") is None and out["fetch_attempts"] == 3
    assert hits(site, "/flaky/2/clip.mp4") == 4  # two 500s, the probe that works, the download


def test_stalled_server_times_out_and_is_retried(site: str, tmp_path: Path) -> None:
    start = time.monotonic()
    out = fetch(
        {"video_id": "z", "url": f"{site}/stall/clip.mp4"},
        tmp_path,
        socket_timeout_s=1.0,
        retries=1,
    )
    assert (out["error_reason"], out["attempts"]) == ("timeout", 2)
    assert time.monotonic() - start < 30


def test_over_max_filesize_is_refused(site: str, tmp_path: Path) -> None:
    out = fetch({"video_id": "big", "url": f"{site}/files/clip.mp4"}, tmp_path, max_filesize="1K")
    assert out["error_reason"] == "too_large"


def test_downloads_from_one_host_wait_for_a_slot(site: str, tmp_path: Path) -> None:
    gate = HostGate(per_host=1)
    stage = FetchStage(FetchConfig(scratch_dir=str(tmp_path)), None, gate)
    stage.setup()
    assert gate.try_acquire("127.0.0.1") == 0  # someone else holds the only slot
    done: list[dict] = []  # type: ignore[type-arg]
    worker = threading.Thread(
        target=lambda: done.append(
            stage.process({"video_id": "g", "url": f"{site}/files/clip.mp4"})
        )
    )
    worker.start()
    time.sleep(1.0)
    assert not done  # still waiting
    gate.release("127.0.0.1")
    worker.join(timeout=30)
    assert done and Path(done[0]["media_path"]).is_file()


def test_s3_objects_are_copied_into_scratch(tmp_path: Path) -> None:
    from pyarrow import fs

    video = write_test_video(tmp_path / "v.mp4", seconds=1.0)
    with s3_server(buckets=("media",)):
        s3, _ = fs.FileSystem.from_uri("s3://media/x")
        with s3.open_output_stream("media/in/v.mp4") as out:
            out.write(video.read_bytes())
        got = fetch({"video_id": "s3:1", "source": "s3://media/in/v.mp4"}, tmp_path)
        assert Path(got["media_path"]).read_bytes() == video.read_bytes() and got["scratch"]
        missing = fetch({"video_id": "s3:2", "source": "s3://media/in/gone.mp4"}, tmp_path)
        assert (missing["error_stage"], missing["error_reason"]) == ("fetch", "not_found")


def test_a_slot_lost_with_its_actor_expires() -> None:
    gate = HostGate(per_host=1, lease_s=0.3)
    assert gate.try_acquire("h") == 0 and gate.try_acquire("h") > 0  # never released
    time.sleep(0.35)
    assert gate.try_acquire("h") == 0
