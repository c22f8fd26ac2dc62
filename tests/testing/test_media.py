import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidray.testing.media import (
    anamorphic_video,
    audio_only,
    block_x,
    broken_timestamps,
    display_rotation,
    exotic_codec_video,
    html_page,
    looped_copy,
    random_bytes,
    raw_h264,
    rotated_video,
    synthetic_frame,
    truncated_copy,
    unsupported_codec_copy,
    vfr_video,
    write_test_video,
    zero_bytes,
)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of H.264 + AAC with a keyframe every second."""
    return write_test_video(tmp_path_factory.mktemp("media") / "v.mp4", seconds=4.0, gop_s=1.0)


def video_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def audio_samples(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)


def test_write_test_video_defaults_moving_content_and_tone(video: Path) -> None:
    with av.open(str(video)) as c:
        assert c.format.name.startswith("mov,mp4")
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.width, v.height, v.codec_context.pix_fmt) == (320, 180, "yuv420p")
        assert (a.sample_rate, a.layout.name) == (44_100, "stereo")
        assert abs(c.duration / av.time_base - 4.0) < 0.05
        keys = [float(p.pts * v.time_base) for p in c.demux(v) if p.is_keyframe]
    assert keys == [0.0, 1.0, 2.0, 3.0]  # gop_s=1.0: exactly one keyframe a second
    frames = video_frames(video)
    assert len(frames) == 100
    assert all(np.abs(a.astype(int) - b).mean() > 2 for a, b in itertools.pairwise(frames))
    span = 320 - 180 // 6
    assert [block_x(f) for f in frames] == [8 * i % span for i in range(100)]
    assert np.abs(frames[10].astype(int) - synthetic_frame(10)).mean() < 4
    tone = audio_samples(video)
    assert tone.shape[0] == 2 and abs(tone.shape[1] / 44_100 - 4.0) < 0.1
    assert 0.1 < np.sqrt((tone**2).mean()) < 0.2  # 0.2 amplitude sine: rms 0.141


def test_write_test_video_silent_none_and_grain(tmp_path: Path) -> None:
    silent = write_test_video(tmp_path / "s.mp4", seconds=1.0, audio="silent")
    assert np.abs(audio_samples(silent)).max() < 1e-4
    with av.open(str(write_test_video(tmp_path / "n.mp4", seconds=1.0, audio="none"))) as c:
        assert [s.type for s in c.streams] == ["video"]
    grain = write_test_video(tmp_path / "g.mp4", seconds=1.0, audio="none", grain=True)
    clean, noisy = video_frames(tmp_path / "n.mp4")[5], video_frames(grain)[5]
    assert (
        np.abs(noisy.astype(int) - synthetic_frame(5)).mean()
        > 2 * np.abs(clean.astype(int) - synthetic_frame(5)).mean()
    )
    assert grain.stat().st_size > 3 * (tmp_path / "n.mp4").stat().st_size


def test_truncated_copy(video: Path, tmp_path: Path) -> None:
    out = truncated_copy(video, tmp_path / "t.mp4", 0.5)
    assert out.read_bytes() == video.read_bytes()[: video.stat().st_size // 2]
    with pytest.raises(av.error.InvalidDataError):  # moov is at the end: "moov atom not found"
        av.open(str(out))
    fast = write_test_video(tmp_path / "f.mp4", seconds=2.0, options={"movflags": "+faststart"})
    # with moov first the half file opens and silently decodes about half of the frames
    assert 20 <= len(video_frames(truncated_copy(fast, tmp_path / "ft.mp4"))) < 50


@pytest.mark.parametrize(
    ("make", "size"),
    [(random_bytes, 50_000), (zero_bytes, 0), (html_page, None)],
)
def test_not_media_files_fail_to_open(make, size, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = make(tmp_path / "x.mp4")
    assert out == tmp_path / "x.mp4"
    if size is not None:
        assert out.stat().st_size == size
    with pytest.raises(av.error.InvalidDataError, match="Invalid data found"):
        av.open(str(out))


def test_random_bytes_seeded(tmp_path: Path) -> None:
    a, b = random_bytes(tmp_path / "a.mp4", 100, seed=1), random_bytes(tmp_path / "b.mp4", 100, 1)
    assert a.read_bytes() == b.read_bytes() != random_bytes(tmp_path / "c.mp4", 100).read_bytes()
    assert html_page(tmp_path / "p.mp4").read_text().startswith("<!DOCTYPE html>")


def test_audio_only(tmp_path: Path) -> None:
    out = audio_only(tmp_path / "a.m4a", seconds=2.0)
    with av.open(str(out)) as c:
        assert [(s.type, s.codec_context.name) for s in c.streams] == [("audio", "aac")]
        assert abs(c.duration / av.time_base - 2.0) < 0.05
    assert np.sqrt((audio_samples(out) ** 2).mean()) > 0.1


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_video(rotation: int, tmp_path: Path) -> None:
    out = rotated_video(tmp_path / "r.mp4", rotation, seconds=0.5)
    assert display_rotation(out) == rotation
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (320, 180)  # coded landscape
        frame = next(c.decode(v))
        assert frame.rotation == {90: 90, 180: -180, 270: -90}[rotation]
        assert "rotate" not in v.metadata  # FFmpeg 8 exports only the display matrix


def test_display_rotation_of_plain_video(video: Path) -> None:
    assert display_rotation(video) == 0


def test_anamorphic_video(tmp_path: Path) -> None:
    with av.open(str(anamorphic_video(tmp_path / "a.mp4", seconds=0.5))) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (352, 288)
        assert v.sample_aspect_ratio == Fraction(12, 11)
        assert v.codec_context.sample_aspect_ratio == Fraction(12, 11)
        assert v.display_aspect_ratio == Fraction(4, 3)


def test_vfr_video(tmp_path: Path) -> None:
    with av.open(str(vfr_video(tmp_path / "v.mp4", seconds=3.0))) as c:
        v = c.streams.video[0]
        pts = sorted(float(f.pts * v.time_base) for f in c.decode(v))
    gaps = np.round(np.diff(pts) * 1000).astype(int)
    assert set(gaps) <= {20, 33, 40, 70, 120, 200} and len(set(gaps)) >= 4
    assert 2.8 <= pts[-1] < 3.2


def test_exotic_codec_video(tmp_path: Path) -> None:
    out = exotic_codec_video(tmp_path / "e.avi", seconds=2.0)
    with av.open(str(out)) as c:
        assert c.format.name == "avi"
        assert [s.codec_context.name for s in c.streams] == ["mpeg4", "mp3float"]
        assert c.streams.video[0].codec_context.codec_tag == "FMP4"
        pts = [f.pts for f in c.decode(video=0)]
    assert pts == list(range(50))
    assert abs(audio_samples(out).shape[1] / 44_100 - 2.0) < 0.1


def test_unsupported_codec_copy(video: Path, tmp_path: Path) -> None:
    out = unsupported_codec_copy(video, tmp_path / "u.mp4")
    assert len(out.read_bytes()) == video.stat().st_size
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.codec_context is None and "<nocodec>" in repr(v)
        assert len([p for p in c.demux(v) if p.size]) == 100  # demuxing still works
    with av.open(str(out)) as c, pytest.raises(av.error.DecoderNotFoundError, match="Decoder not"):
        next(c.decode(video=0))
    assert audio_samples(out).shape[1] > 0  # the audio is untouched


def test_raw_h264(tmp_path: Path) -> None:
    out = raw_h264(tmp_path / "r.h264", seconds=2.0)
    assert out.read_bytes()[:4] == b"\x00\x00\x00\x01"  # Annex-B start code
    with av.open(str(out)) as c:
        assert c.format.name == "h264" and c.duration is None
        v = c.streams.video[0]
        assert (v.duration, v.frames, v.start_time) == (None, 0, None)
        packets = [p for p in c.demux(v) if p.size]
        assert {(p.pts, p.dts) for p in packets} == {(None, None)}
    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
        assert len(frames) == 50 and {(f.pts, f.time) for f in frames} == {(None, None)}
        with pytest.raises(av.error.PermissionError):  # no seeking either (EPERM)
            c.seek(0)


def test_broken_timestamps(video: Path, tmp_path: Path) -> None:
    out = broken_timestamps(video, tmp_path / "b.ts")
    with av.open(str(out)) as c:
        assert c.format.name == "mpegts"
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
        v = c.streams.video[0]
        dts = [p.dts for p in c.demux(v) if p.dts is not None]
    back = [i for i in range(1, len(dts)) if dts[i] < dts[i - 1]]
    assert len(back) == 1 and len(dts) == 150  # frames 0-49 (up to the 2 s keyframe), then 100
    with av.open(str(out)) as c:
        pts = [f.pts for f in c.decode(video=0)]  # decodes fine, the jump is passed on
    assert len(pts) == 150 and pts[50] == pts[0] and pts[49] > pts[0]


def test_looped_copy(video: Path, tmp_path: Path) -> None:
    out = looped_copy(video, tmp_path / "l.mp4", 3)
    with av.open(str(out)) as c:
        assert abs(c.duration / av.time_base - 12.0) < 0.1
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
        pts = [f.pts for f in c.decode(video=0)]
    assert len(pts) == 300 and pts == sorted(pts)
