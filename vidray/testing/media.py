"""Broken and unusual media for tests: synthetic videos, odd codecs and containers, bad files."""

from __future__ import annotations

import io
import itertools
import random
import shutil
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 44_100


def strip_audio(src: str | Path, dst: str | Path) -> Path:
    """Copy the video stream of `src` into `dst` without re-encoding, leaving the audio out."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in inp.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            out.mux(packet)
    return Path(dst)


def corrupt_copy(src: str | Path, dst: str | Path, keep_bytes: int = 4096) -> Path:
    """The first `keep_bytes` of `src` followed by garbage: looks like an mp4, decodes as none."""
    head = Path(src).read_bytes()[:keep_bytes]
    Path(dst).write_bytes(head + bytes((i * 131 + 7) % 256 for i in range(20_000)))
    return Path(dst)


def synthetic_frame(index: int, size: tuple[int, int] = (320, 180)) -> np.ndarray:
    """RGB frame `index`: a gradient scrolling 4 px/frame and a white block at x = 8*index mod span."""
    import numpy as np

    w, h = size
    x = np.arange(w)[None, :]
    y = np.arange(h)[:, None]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (x + 4 * index) % 256
    img[..., 1] = (y * 255 // max(h - 1, 1)).astype(np.uint8)
    img[..., 2] = ((x + y + 2 * index) // 2) % 256
    b = max(h // 6, 2)
    bx = (8 * index) % (w - b)
    img[h // 2 - b // 2 : h // 2 + b // 2, bx : bx + b] = 255
    return img


def block_x(img: np.ndarray) -> int:
    """Left edge of the white block in the middle row of a decoded `synthetic_frame`."""
    import numpy as np

    row = img[img.shape[0] // 2].min(axis=1)
    return int(np.argmax(row > 200))


def _tone(seconds: float, rate: int = SAMPLE_RATE, silent: bool = False) -> np.ndarray:
    """Stereo float samples of a 440 Hz sine at -14 dBFS, or of zeros."""
    import numpy as np

    wave = 0.2 * np.sin(2 * np.pi * 440 * np.arange(round(seconds * rate)) / rate)
    return np.repeat((wave * (not silent)).astype(np.float32)[None, :], 2, axis=0)


def _mux_audio(container: Any, stream: Any, samples: np.ndarray, pos: int, until: float) -> int:
    """Encode 1024-sample blocks of `samples` from `pos` while `pos` < `until` s; the new pos."""
    import av

    rate = stream.sample_rate
    while pos < min(until * rate, samples.shape[1]):
        block = samples[:, pos : pos + 1024]
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, pos, Fraction(1, rate)
        container.mux(stream.encode(frame))
        pos += block.shape[1]
    return pos


def h264_stream(container: Any, width: int, height: int, fps: int) -> Any:
    """The H.264 stream the generated sample videos use: x264 veryfast, CRF 23, a 2 s GOP."""
    video = container.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.codec_context.gop_size = 2 * fps
    video.options = {"preset": "veryfast", "crf": "23"}
    return video


def mux_rgb(container: Any, stream: Any, img: np.ndarray, index: int, fps: int) -> None:
    """Encode frame `index` (an RGB array) of a constant-rate stream and mux it."""
    import av

    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
    frame.pts, frame.time_base = index, Fraction(1, fps)
    container.mux(stream.encode(frame))


def write_test_video(
    dst: str | Path,
    seconds: float = 6.0,
    size: tuple[int, int] = (320, 180),
    fps: float = 25.0,
    gop_s: float | None = None,
    audio: str = "tone",
    grain: bool = False,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    *,
    audio_codec: str = "aac",
    sample_rate: int = SAMPLE_RATE,
    rotation: int = 0,
    sar: tuple[int, int] | None = None,
    frame_ms: Sequence[int] | None = None,
    format: str | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Moving `synthetic_frame`s plus a 440 Hz tone ("tone"), digital silence ("silent") or
    no audio ("none"); H.264 + AAC 44.1 kHz stereo in mp4 by default (Opus needs 48 kHz).

    `gop_s` fixes the keyframe interval; `grain` adds seeded per-frame noise; `rotation` is a
    display matrix (see `display_rotation`); `sar` a sample aspect ratio; `frame_ms` gives each
    frame's duration in ms (variable frame rate, 1/1000 time base); `format` and `options` go
    to the muxer (e.g. {"movflags": "+faststart"})."""
    import av
    import numpy as np

    if audio not in ("tone", "silent", "none"):
        raise ValueError(f"audio must be 'tone', 'silent' or 'none', not {audio!r}")
    rate = Fraction(fps).limit_denominator(1001)
    if frame_ms is None:  # frame i spans starts[i] to starts[i + 1], in units of tb
        tb, starts = 1 / rate, list(range(round(seconds * fps) + 1))
    else:
        tb, starts = Fraction(1, 1000), [0, *itertools.accumulate(frame_ms)]
    keyint = max(1, int(gop_s * fps + 0.5)) if gop_s else 0
    rng = np.random.default_rng(0)
    with av.open(str(dst), "w", format=format, options=options or {}) as out:
        video = out.add_stream(codec, rate=rate)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = size[0], size[1], pix_fmt
        video.codec_context.time_base = tb
        if keyint:
            video.codec_context.gop_size = keyint
        if codec in ("libx264", "libx265"):
            params = [f"keyint={keyint}:min-keyint={keyint}:scenecut=0"] if keyint else []
            params += ["log-level=error"] if codec == "libx265" else []
            video.options = {"preset": "veryfast", f"{codec[3:]}-params": ":".join(params)}
        if sar:
            video.codec_context.sample_aspect_ratio = Fraction(*sar)
        if rotation:
            video.set_display_rotation(rotation)
        sound = (
            None if audio == "none" else out.add_stream(audio_codec, sample_rate, layout="stereo")
        )
        assert sound is None or isinstance(sound, av.AudioStream)
        samples, apos = _tone(float(starts[-1] * tb), sample_rate, audio == "silent"), 0
        for i in range(len(starts) - 1):
            img = synthetic_frame(i, size)
            if grain:
                noise = rng.integers(-24, 25, img.shape, dtype=np.int16)
                img = np.clip(img + noise, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = starts[i], tb
            out.mux(video.encode(frame))
            if sound is not None:
                apos = _mux_audio(out, sound, samples, apos, float(starts[i + 1] * tb))
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    return Path(dst)


def display_rotation(path: str | Path) -> int:
    """Degrees (0/90/180/270) to rotate the decoded image counter-clockwise to show it upright.

    PyAV 18 (FFmpeg 8) exposes no stream-level side data and no `rotate` metadata tag; the
    container's display matrix is attached to every decoded frame, and `VideoFrame.rotation`
    is `av_display_rotation_get()` of it: counter-clockwise degrees in [-180, 180], the same
    number ffprobe prints as "rotation" and the way the ffmpeg CLI autorotates (90 turns the
    top-left corner to the bottom-left). Phone portrait videos usually read -90, i.e. 270 here.
    """
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0), None) if container.streams.video else None
        return round(frame.rotation / 90) % 4 * 90 if frame is not None else 0


def rotated_video(
    dst: str | Path, rotation: int = 90, seconds: float = 3.0, size: tuple[int, int] = (320, 180)
) -> Path:
    """A landscape-coded mp4 with a display matrix asking players to rotate it `rotation` degrees
    counter-clockwise (the `display_rotation` convention), as phones write portrait video.

    Written with PyAV's `VideoStream.set_display_rotation` (its degrees are counter-clockwise
    too); the ffmpeg 5.1 CLI's `-metadata:s:v:0 rotate=90 -c copy` writes the same matrix as
    rotation=90 here. Phones' portrait videos are typically rotation=270 (ffprobe: -90)."""
    return write_test_video(dst, seconds, size, rotation=rotation)


def anamorphic_video(
    dst: str | Path,
    seconds: float = 3.0,
    size: tuple[int, int] = (352, 288),
    sar: tuple[int, int] = (12, 11),
) -> Path:
    """An mp4 with non-square pixels: sample aspect ratio `sar` in the H.264 VUI and mp4 `pasp`."""
    return write_test_video(dst, seconds, size, sar=sar)


def vfr_video(dst: str | Path, seconds: float = 6.0, seed: int = 0) -> Path:
    """Variable frame rate H.264 + AAC mp4: frame durations drawn from 20-200 ms (seeded)."""
    rng = random.Random(seed)
    frame_ms: list[int] = []
    while sum(frame_ms) < seconds * 1000:
        frame_ms.append(rng.choice((20, 33, 40, 70, 120, 200)))
    return write_test_video(dst, size=(320, 180), frame_ms=frame_ms)


def exotic_codec_video(dst: str | Path, seconds: float = 3.0) -> Path:
    """An old-style AVI: MPEG-4 Part 2 video ("mpeg4", fourcc FMP4) with MP3 audio (libmp3lame).

    avoid_negative_ts is off: else the MP3 encoder delay shifts video and frame 1 goes missing."""
    opts = {"avoid_negative_ts": "disabled"}
    return write_test_video(
        dst, seconds, codec="mpeg4", gop_s=1.0, audio_codec="libmp3lame", format="avi", options=opts
    )


def audio_only(dst: str | Path, seconds: float = 4.0) -> Path:
    """An .m4a/.mp4 holding just one AAC 44.1 kHz stereo stream: a 440 Hz tone."""
    import av

    with av.open(str(dst), "w", format="mp4") as out:
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        _mux_audio(out, sound, _tone(seconds), 0, seconds)
        out.mux(sound.encode(None))
    return Path(dst)


def raw_h264(dst: str | Path, seconds: float = 4.0) -> Path:
    """A raw Annex-B H.264 elementary stream (format "h264"): no container, no timestamps."""
    return write_test_video(dst, seconds, audio="none", format="h264")


def truncated_copy(src: str | Path, dst: str | Path, fraction: float = 0.5) -> Path:
    """The first `fraction` of the bytes of `src`, as an interrupted download leaves it."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def random_bytes(dst: str | Path, n: int = 50_000, seed: int = 0) -> Path:
    """`n` seeded random bytes (meant to be named .mp4)."""
    Path(dst).write_bytes(random.Random(seed).randbytes(n))
    return Path(dst)


def zero_bytes(dst: str | Path) -> Path:
    """An empty file."""
    Path(dst).write_bytes(b"")
    return Path(dst)


def html_page(dst: str | Path) -> Path:
    """An HTML error page, as a video URL can return instead of video (save it as .mp4)."""
    Path(dst).write_text(
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>403 Forbidden</title>'
        "</head>\n<body><h1>403 Forbidden</h1><p>Sign in to confirm you're not a bot.</p>"
        "</body></html>\n"
    )
    return Path(dst)


def unsupported_codec_copy(src_mp4: str | Path, dst: str | Path, fourcc: bytes = b"vdry") -> Path:
    """`src_mp4` with its video sample entry fourcc (avc1, hvc1, ...) in `stsd` replaced by
    `fourcc`: demuxes, but the video stream has codec id none and no decoder."""
    data = bytearray(Path(src_mp4).read_bytes())
    at = data.find(b"stsd")
    while at >= 0:
        entry = at + 16  # after 'stsd', version/flags, entry count and the entry's size
        if bytes(data[entry : entry + 4]) in (b"avc1", b"avc3", b"hvc1", b"hev1", b"mp4v", b"av01"):
            data[entry : entry + 4] = fourcc
        at = data.find(b"stsd", at + 4)
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def _remux_ts(src: str | Path, before: float | None = None) -> bytes:
    """`src` remuxed to MPEG-TS bytes, stopping at the first video keyframe at `before` s or later."""
    import av

    buf = io.BytesIO()
    with av.open(str(src)) as inp, av.open(buf, "w", format="mpegts") as out:
        ins = [s for s in inp.streams if s.type in ("video", "audio")]
        outs = {s.index: out.add_stream_from_template(s) for s in ins}
        for packet in inp.demux(ins):
            if packet.dts is None:
                continue
            t = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
            key = packet.is_keyframe and packet.stream.type == "video"
            if before is not None and key and t >= before:
                break
            packet.stream = outs[packet.stream.index]
            out.mux(packet)
    return buf.getvalue()


def broken_timestamps(src: str | Path, dst: str | Path, at: float = 0.5) -> Path:
    """MPEG-TS whose timestamps jump back to the start partway: `src` up to its first keyframe
    past `at` of its duration, then all of `src` again (two remuxes, concatenated bytes).

    FFmpeg's muxers refuse non-monotonic dts (PyAV raises av.error.ArgumentError, EINVAL), but
    MPEG-TS streams may be concatenated byte-wise, so the demuxer hands the jump on as is."""
    import av

    with av.open(str(src)) as inp:
        duration = (inp.duration or 0) / av.time_base
    Path(dst).write_bytes(_remux_ts(src, at * duration) + _remux_ts(src))
    return Path(dst)


def looped_copy(src: str | Path, dst: str | Path, loops: int) -> Path:
    """`src` played `loops` times in a row without re-encoding (ffmpeg CLI `-stream_loop`)."""
    ffmpeg = shutil.which("ffmpeg") or "ffmpeg"  # the CLI; FileNotFoundError without it
    cmd = [ffmpeg, "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(src)]
    subprocess.run([*cmd, "-c", "copy", "-map", "0", str(dst)], check=True)
    return Path(dst)
