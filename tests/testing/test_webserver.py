"""The loopback test webserver, and what yt-dlp makes of each of its routes."""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from vidray.testing.webserver import serve

yt_dlp = pytest.importorskip("yt_dlp")

pytestmark = pytest.mark.timeout(60)


def _tiny_mp4(path: Path, seconds: float = 2.0) -> Path:
    """A 2-second 64x48 H.264 + AAC mp4 (a few KiB)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for i in range(int(seconds * 10)):
            img = np.full((48, 64, 3), (i * 12) % 256, np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        for k in range(int(seconds * 16000 / 1024)):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, k * 1024
            out.mux(audio.encode(frame))
        out.mux(video.encode())
        out.mux(audio.encode())
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("www")
    _tiny_mp4(root / "x.mp4")
    (root / "sub").mkdir()
    (root / "sub" / "y.webm").write_bytes(b"webm bytes")
    (root / "a.m4a").write_bytes(b"m4a")
    (root / "a.vtt").write_text("WEBVTT\n")
    (root / "a.srt").write_text("1\n")
    (tmp_path_factory.getbasetemp() / "secret.txt").write_text("secret")
    return root


@pytest.fixture(scope="module")
def base(root: Path) -> Iterator[str]:
    with serve(root) as url:
        yield url


def _get(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _raw_status(base: str, path: str) -> int:
    """The status for `path` sent verbatim (urllib would not send `..` as is)."""
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status


def _count(base: str, path: str) -> int:
    return int(json.loads(_get(f"{base}/_count?path={path}")[2])["count"])


def _ydl(tmp_path: Path, **opts: Any) -> Any:
    params = {"quiet": True, "no_warnings": True, "outtmpl": str(tmp_path / "%(id)s.%(ext)s")}
    return yt_dlp.YoutubeDL({**params, **opts})


def _download_error(tmp_path: Path, url: str, **opts: Any) -> tuple[Any, float]:
    start = time.monotonic()
    with pytest.raises(yt_dlp.utils.DownloadError) as info:
        _ydl(tmp_path, **opts).download([url])
    return info.value, time.monotonic() - start


def test_serve_prints_url_and_stops(root: Path) -> None:
    with serve(root) as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert _get(url + "/status/200")[0] == 200
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/status/200", timeout=2)


def test_files_types_ranges_and_traversal(base: str, root: Path) -> None:
    data = (root / "x.mp4").read_bytes()
    status, headers, body = _get(base + "/files/x.mp4")
    assert (status, headers["Content-Type"], body) == (200, "video/mp4", data)
    assert headers["Content-Length"] == str(len(data))
    status, headers, body = _get(base + "/files/x.mp4", method="HEAD")
    assert (status, headers["Content-Length"], body) == (200, str(len(data)), b"")
    for name, ctype in [
        ("sub/y.webm", "video/webm"),
        ("a.m4a", "audio/mp4"),
        ("a.vtt", "text/vtt"),
    ]:
        assert _get(f"{base}/files/{name}")[1]["Content-Type"] == ctype
    status, headers, body = _get(base + "/files/x.mp4", Range="bytes=10-19")
    assert (status, headers["Content-Range"], body) == (
        206,
        f"bytes 10-19/{len(data)}",
        data[10:20],
    )
    assert _get(base + "/files/x.mp4", Range="bytes=100-")[2] == data[100:]
    assert _get(base + "/files/x.mp4", Range="bytes=-5")[2] == data[-5:]
    status, headers, _ = _get(base + "/files/x.mp4", Range=f"bytes={len(data)}-")
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(data)}")
    assert _get(base + "/files/missing.mp4")[0] == 404
    assert _raw_status(base, "/files/../secret.txt") == 404
    assert _raw_status(base, "/files/%2e%2e/secret.txt") == 404
    assert _raw_status(base, "/files/sub/../../secret.txt") == 404


def test_status_flaky_and_count(base: str, root: Path) -> None:
    assert _get(base + "/status/418")[::2] == (418, b"status 418\n")
    assert _get(base + "/status/503")[0] == 503
    assert _get(base + "/flaky/2/x.mp4", method="HEAD")[0] == 500
    assert _get(base + "/flaky/2/x.mp4")[0] == 500
    status, _, body = _get(base + "/flaky/2/x.mp4")
    assert (status, body) == (200, (root / "x.mp4").read_bytes())
    assert _count(base, "/flaky/2/x.mp4") == 3
    assert _count(base, "/never/asked") == 0


def test_redirects(base: str, root: Path) -> None:
    assert _get(base + "/redirect/x.mp4")[2] == (root / "x.mp4").read_bytes()
    with pytest.raises(urllib.error.HTTPError, match="infinite loop"):
        urllib.request.urlopen(base + "/loop/a", timeout=10)


def test_stall_does_not_block_and_slow_trickles(base: str) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(base + "/stall/x.mp4", timeout=0.5)
    assert _get(base + "/status/200")[0] == 200  # the stalled thread blocks nothing
    start = time.monotonic()
    status, _, body = _get(base + "/slow/10000/x.mp4")
    assert status == 200 and time.monotonic() - start > 0.8 * len(body) / 10000


def test_pages_and_feed(base: str) -> None:
    page = _get(base + "/page/x.mp4")[2].decode()
    assert "<title>x.mp4</title>" in page and f'src="{base}/files/x.mp4"' in page
    page = _get(base + "/page2?src=x.mp4&src=sub/y.webm&src=/status/404")[2].decode()
    assert page.count("<video") == 3 and f'src="{base}/status/404"' in page
    feed = ET.fromstring(_get(base + "/feed.xml?src=x.mp4&src=/status/404")[2])
    items = feed.findall("./channel/item")
    assert [i.findtext("title") for i in items] == ["x", "404"]
    urls = [i.find("enclosure").get("url") for i in items]  # type: ignore[union-attr]
    assert urls == [f"{base}/files/x.mp4", f"{base}/status/404"]
    assert [i.findtext("link") for i in items] == urls
    _, headers, body = _get(base + "/html-as-video.mp4")
    assert headers["Content-Type"].startswith("text/html") and body.startswith(b"<html>")


# --- what yt-dlp makes of the routes (the facts an error classifier relies on) ---


def test_ytdlp_downloads_file_and_page(base: str, root: Path, tmp_path: Path) -> None:
    data = (root / "x.mp4").read_bytes()
    assert _ydl(tmp_path / "a").download([base + "/files/x.mp4"]) == 0
    assert (tmp_path / "a" / "x.mp4").read_bytes() == data
    info = _ydl(tmp_path / "b").extract_info(base + "/page/x.mp4")
    assert (info["extractor_key"], info["id"], info["title"]) == (
        "HTML5MediaEmbed",
        "x-1",
        "x.mp4 (1)",
    )
    assert info.get("_type") is None and info["url"] == base + "/files/x.mp4"
    assert (tmp_path / "b" / "x-1.mp4").read_bytes() == data


@pytest.mark.parametrize("flat", [False, True])
def test_ytdlp_lists_feed_entries(base: str, tmp_path: Path, flat: bool) -> None:
    url = base + "/feed.xml?src=x.mp4&src=/status/404"
    opts = {"extract_flat": "in_playlist"} if flat else {}
    info = _ydl(tmp_path, **opts).extract_info(url, download=False, process=flat)
    assert (info["_type"], info["extractor_key"], info["id"], info["title"]) == (
        "playlist",
        "Generic",
        url,
        "test feed",
    )
    entries = list(info["entries"])
    assert [e["_type"] for e in entries] == ["url_transparent"] * 2
    assert [e["url"] for e in entries] == [base + "/files/x.mp4", base + "/status/404"]
    assert [e["title"] for e in entries] == ["x", "404"]
    assert all("id" not in e and "ie_key" not in e for e in entries)
    guid = _ydl(tmp_path, extract_flat="in_playlist").extract_info(url + "&guid=1", download=False)
    unsmuggled = yt_dlp.utils.unsmuggle_url(guid["entries"][0]["url"])
    assert unsmuggled == (base + "/files/x.mp4", {"force_videoid": base + "/files/x.mp4"})


@pytest.mark.parametrize("flat", [False, True])
def test_ytdlp_lists_page_videos(base: str, tmp_path: Path, flat: bool) -> None:
    url = base + "/page2?src=x.mp4&src=/status/404"
    opts = {"extract_flat": "in_playlist"} if flat else {}
    info = _ydl(tmp_path, **opts).extract_info(url, download=False, process=flat)
    assert (info["_type"], info["extractor_key"], info["title"]) == (
        "playlist",
        "Generic",
        "several videos",
    )
    assert info["id"] == "404"  # the generic id is the text after the URL's last "/", query and all
    entries = list(info["entries"])
    assert [e["id"] for e in entries] == ["404-1", "404-2"]
    assert [e["extractor_key"] for e in entries] == ["HTML5MediaEmbed"] * 2
    assert [e["formats"][0]["url"] for e in entries] == [
        base + "/files/x.mp4",
        base + "/status/404",
    ]
    single = _ydl(tmp_path, **opts).extract_info(base + "/page2?src=x.mp4", download=False)
    assert single.get("_type") is None  # a page with one video is a video, not a playlist


def test_ytdlp_http_errors(base: str, tmp_path: Path) -> None:
    exc, _ = _download_error(tmp_path, base + "/status/404")
    assert str(exc) == (
        "ERROR: [generic] 404: Unable to download webpage: HTTP Error 404: Not Found"
        " (caused by <HTTPError 404: Not Found>)"
    )
    assert isinstance(exc.exc_info[1], yt_dlp.networking.exceptions.HTTPError)
    assert exc.exc_info[1].status == 404
    # a bad media URL behind a good page fails later, in the downloader, with the same cause
    exc, _ = _download_error(tmp_path, base + "/page2?src=/status/403")
    assert str(exc) == "ERROR: unable to download video data: HTTP Error 403: Forbidden"
    assert exc.exc_info[1].status == 403


def test_ytdlp_retries(base: str, tmp_path: Path) -> None:
    # the generic extractor fetches the URL once: no retries there, whatever the options say
    url = base + "/flaky/1/x.mp4"
    exc, _ = _download_error(tmp_path, url, retries=5, extractor_retries=5)
    assert "HTTP Error 500: Internal Server Error" in str(exc) and exc.exc_info[1].status == 500
    assert _count(base, "/flaky/1/x.mp4") == 1
    # the downloader retries 5xx `retries` times (0 unless given: 10 is only the CLI's default)
    exc, _ = _download_error(tmp_path, base + "/page2?src=/flaky/1/y.mp4")
    assert str(exc) == "ERROR: \r[download] Got error: HTTP Error 500: Internal Server Error"
    assert exc.exc_info == (None, None, None)  # retryable download errors keep only the message
    exc, _ = _download_error(tmp_path, base + "/page2?src=/flaky/5/x.mp4", retries=2)
    assert str(exc).endswith("HTTP Error 500: Internal Server Error. Giving up after 2 retries")
    assert _count(base, "/flaky/5/x.mp4") == 3
    assert _ydl(tmp_path, retries=2).download([base + "/page2?src=/flaky/2/sub/y.webm"]) == 0
    assert _count(base, "/flaky/2/sub/y.webm") == 3


def test_ytdlp_stall_times_out(base: str, tmp_path: Path) -> None:
    exc, took = _download_error(tmp_path, base + "/stall/x.mp4", socket_timeout=1)
    assert took < 5 and "Read timed out. (read timeout=1.0)" in str(exc)
    assert isinstance(exc.exc_info[1], yt_dlp.networking.exceptions.TransportError)
    exc, took = _download_error(tmp_path, base + "/page2?src=/stall/y.mp4", socket_timeout=1)
    assert took < 5 and str(exc).startswith("ERROR: \r[download] Got error: HTTPConnectionPool(")
    assert "Read timed out" in str(exc) and exc.exc_info == (None, None, None)


def test_ytdlp_redirect_loop(base: str, tmp_path: Path) -> None:
    exc, took = _download_error(tmp_path, base + "/loop/b")
    assert took < 5 and "HTTP Error 302: Found (redirect loop detected)" in str(exc)
    assert exc.exc_info[1].status == 302
    assert _count(base, "/loop/b") == 31  # the first request and 30 redirects


def test_ytdlp_html_as_video(base: str, tmp_path: Path) -> None:
    url = base + "/html-as-video.mp4"
    exc, _ = _download_error(tmp_path / "a", url)
    assert str(exc) == f"ERROR: Unsupported URL: {url}"
    assert isinstance(exc.exc_info[1], yt_dlp.utils.UnsupportedError)
    # behind a page, yt-dlp downloads the HTML as if it were the video: only probing tells
    assert _ydl(tmp_path / "b").download([base + "/page2?src=/html-as-video.mp4"]) == 0
    assert next((tmp_path / "b").glob("*.mp4")).read_bytes().startswith(b"<html>")
