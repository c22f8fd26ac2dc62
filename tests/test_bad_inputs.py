"""A build over every kind of bad or unusual input: each ends in `videos/` or `errors/`, none lost."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vidray.config import load_config
from vidray.pipeline import run_build
from vidray.sink import read_table
from vidray.testing import media
from vidray.testing.webserver import serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# local file name → (maker, expected table, stage, reason)
FILES: dict[str, tuple[Callable[[Path, Path], Path], str, str | None, str | None]] = {
    "truncated.mp4": (lambda p, good: media.truncated_copy(good, p), "errors", "decode", "corrupt"),
    "random.mp4": (lambda p, good: media.random_bytes(p), "errors", "decode", "corrupt"),
    "zero.mp4": (lambda p, good: media.zero_bytes(p), "errors", "decode", "empty"),
    "audio_only.m4a": (lambda p, good: media.audio_only(p), "errors", "decode", "no_video_stream"),
    "unsupported.mp4": (
        lambda p, good: media.unsupported_codec_copy(good, p),
        "errors",
        "decode",
        "unsupported_codec",
    ),
    "video_only.mp4": (
        lambda p, good: media.write_test_video(p, 2.1, audio="none"),
        "videos",
        None,
        None,
    ),
    "silent.mp4": (
        lambda p, good: media.write_test_video(p, 2.2, audio="silent"),
        "videos",
        None,
        None,
    ),
    "4k.mp4": (
        lambda p, good: media.write_test_video(p, 1.0, size=(3840, 2160), fps=5),
        "videos",
        None,
        None,
    ),
    "rotated.mp4": (
        lambda p, good: media.rotated_video(p, rotation=90, seconds=2.3),
        "videos",
        None,
        None,
    ),
    "vfr.mp4": (lambda p, good: media.vfr_video(p, seconds=2.4), "videos", None, None),
    "exotic.avi": (lambda p, good: media.exotic_codec_video(p, seconds=2.5), "videos", None, None),
    "broken_ts.ts": (lambda p, good: media.broken_timestamps(good, p), "videos", None, None),
}

# URL path on the local server → (expected table, stage, reason)
URLS: dict[str, tuple[str, str | None, str | None]] = {
    "/html-as-video.mp4": ("errors", "fetch", "unsupported"),
    "/status/404": ("errors", "sources", "not_found"),
    "/files/missing.mp4": ("errors", "fetch", "not_found"),
    "/flaky/1/web.mp4": ("videos", None, None),
    "/stall/web.mp4": ("errors", "fetch", "timeout"),
    "/loop/web": ("errors", "sources", "redirect_loop"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("inputs")
    good = media.write_test_video(root / "good.mp4", seconds=3.0, gop_s=1.0)
    for name in ("web.mp4", "listed.mp4", "in_playlist.mp4"):
        media.write_test_video(root / name, seconds=2.0 + len(name) / 10)
    files = {name: make(root / name, good) for name, (make, *_) in FILES.items()}
    with serve(root) as base:
        listing = root / "urls.txt"
        listing.write_text(
            f"# a list with blank lines, comments and garbage\n\n{base}/files/listed.mp4\n"
            "   \nthis is not a url\n# the end\n"
        )
        playlist = f"{base}/page2?src=in_playlist.mp4&src=/status/410"
        yield base, files, listing, playlist


def test_every_input_is_accounted_for(inputs: Any, tmp_path: Path, local_ray: Any) -> None:
    base, files, listing, playlist = inputs
    cfg = load_config(
        overrides=[
            "build.fetch.retries=2",
            "build.fetch.backoff_s=0.05",
            "build.fetch.socket_timeout_s=1",
            "build.decode.every_s=1",
        ]
    ).build
    sources = [str(p) for p in files.values()] + [base + u for u in URLS] + [str(listing), playlist]
    result = run_build(sources, str(tmp_path / "out"), cfg)

    videos = {r["source"]: r for r in read_table(str(tmp_path / "out"), "videos").to_pylist()}
    errors = {r["source"]: r for r in read_table(str(tmp_path / "out"), "errors").to_pylist()}
    expected = {str(files[n].resolve()): (t, s, r) for n, (_, t, s, r) in FILES.items()}
    expected |= {base + u: v for u, v in URLS.items()}
    expected |= {
        f"{base}/files/listed.mp4": ("videos", None, None),
        "this is not a url": ("errors", "sources", "invalid_input"),
        f"{base}/files/in_playlist.mp4": ("videos", None, None),
        f"{base}/status/410": ("errors", "fetch", "not_found"),
    }
    assert len(expected) >= 15
    assert set(videos) | set(errors) == set(expected)  # nothing lost, nothing invented
    assert not set(videos) & set(errors)
    assert (result.videos, result.errors) == (len(videos), len(errors))
    for source, (table, stage, reason) in expected.items():
        if table == "errors":
            row = errors[source]
            assert (row["stage"], row["reason"]) == (stage, reason), row
            assert row["message"]
        else:
            assert source in videos, errors.get(source)

    def frames(source: str) -> list[dict[str, Any]]:
        vid = videos[source]["video_id"]
        return [
            f
            for f in read_table(str(tmp_path / "out"), "frames").to_pylist()
            if f["video_id"] == vid
        ]

    rotated = frames(str(files["rotated.mp4"].resolve()))
    assert rotated and all(f["height"] > f["width"] for f in rotated)
    assert all(
        (f["width"], f["height"]) == (456, 256) for f in frames(str(files["4k.mp4"].resolve()))
    )
    assert videos[str(files["video_only.mp4"].resolve())]["has_audio"] is False
    flaky = videos[base + "/flaky/1/web.mp4"]
    assert flaky["fetch_attempts"] == 2 and flaky["url"] == base + "/flaky/1/web.mp4"
    assert videos[f"{base}/files/in_playlist.mp4"]["playlist"] == "several videos"
