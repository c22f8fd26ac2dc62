"""Decode: a video file → 16 kHz mono FLAC audio and one JPEG frame every `every_s` seconds (PyAV).

One demux pass reads the file once. Audio is decoded, resampled and FLAC-encoded as it
arrives; video packets are decoded only as far as the sample times need:

- `seek`: packets before the keyframe that precedes the next sample time are skipped, so
  decoding restarts at that keyframe (a seek that costs no second read of the file);
- `sequential`: every packet is decoded (files whose timestamps cannot be trusted);
- `keyframes`: only keyframes are decoded and each sample time takes the nearest one
  (`decode.snap_to_keyframes`).

Far from a sample time, non-reference frames are not decoded at all (nothing depends on
them). Every strategy gives the same `frame_ts` for the same config; `seek` and
`sequential` also give the same pixels. Memory is bounded: compressed audio, the JPEGs and at
most one GOP of compressed packets are held, never decoded frames of the whole video.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidray.audio import FlacWriter
from vidray.config import DecodeConfig
from vidray.stages.base import Row, Stage, VideoError

STRATEGIES = ("auto", "seek", "sequential", "keyframes")
MAX_BUFFERED_BYTES = 32 << 20  # a GOP longer than this is decoded as it comes


def sample_times(duration: float, every_s: float) -> list[float]:
    """Times to sample: the centre of each `every_s` interval, so a frame stands for its interval."""
    if duration <= 0 or every_s <= 0:
        return []
    n = max(1, int(duration / every_s + 0.5))
    return [sample_time(k, every_s) for k in range(n) if (k + 0.5) * every_s < duration]


def sample_time(k: int, every_s: float) -> float:
    return round((k + 0.5) * every_s, 6)


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side at `short_side` (never upscaled), both even."""
    scale = min(1.0, short_side / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def choose_strategy(cfg: DecodeConfig, timestamps_ok: bool) -> str:
    if cfg.strategy not in STRATEGIES:
        raise ValueError(f"decode.strategy must be one of {', '.join(STRATEGIES)}")
    if not timestamps_ok:
        return "sequential"  # without packet times there is no telling what can be skipped
    if cfg.strategy == "auto":
        return "keyframes" if cfg.snap_to_keyframes else "seek"
    return cfg.strategy


@dataclass
class Geometry:
    """Frame size at display aspect (non-square pixels corrected), short side scaled down."""

    width: int
    height: int

    @classmethod
    def of(cls, stream: Any, short_side: int) -> Geometry:
        cc = stream.codec_context
        if not cc.width or not cc.height:
            raise VideoError("corrupt", "video stream has no frame size")
        sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
        width = cc.width * float(sar) if sar and float(sar) > 0 else cc.width
        return cls(*scaled_size(round(width), cc.height, short_side))

    def render(self, frame: Any, quality: int) -> tuple[bytes, int, int]:
        """JPEG of the frame turned upright (phone videos carry a display rotation), and its size."""
        rgb = frame.to_ndarray(
            width=self.width, height=self.height, format="rgb24", interpolation="AREA"
        )
        turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
        if turns:  # PyAV's rotation is counter-clockwise, as ffmpeg's autorotate applies it
            rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
        return encode_jpeg(rgb, quality), rgb.shape[1], rgb.shape[0]


@dataclass
class FramePicker:
    """Hands out the sample times in order and keeps the JPEG chosen for each."""

    cfg: DecodeConfig
    geometry: Geometry
    fps: float
    duration: float | None
    time_base: float = 0.0  # of the video stream
    origin: float = 0.0  # the file's start time: MPEG-TS and offset files do not start at 0
    k: int = 0
    last_ts: float = -math.inf
    frames: list[dict[str, Any]] = field(default_factory=list)

    @property
    def target(self) -> float | None:
        t = sample_time(self.k, self.cfg.every_s)
        if self.duration is not None and (self.k + 0.5) * self.cfg.every_s >= self.duration:
            return None
        return t

    def packet_time(self, pts: int | None) -> float | None:
        return pts * self.time_base - self.origin if pts is not None and self.time_base else None

    def frame_time(self, frame: Any, known: float | None = None) -> float:
        """The frame's time from the file's start; synthesised from the frame rate where
        missing or running backwards (frames drained at the end carry no time base)."""
        ts = known if known is not None else self.packet_time(frame.pts)
        if ts is None or not math.isfinite(ts) or ts < self.last_ts - 1e-6:
            ts = (self.last_ts + 1.0 / self.fps) if self.last_ts > -math.inf else 0.0
        self.last_ts = float(ts)
        return self.last_ts

    def offer(self, frame: Any) -> None:
        """The first frame at or after a sample time (within half a frame) stands for it."""
        ts = self.frame_time(frame)
        rendered = None
        while (t := self.target) is not None and ts + 1e-6 >= t - 0.5 / self.fps:
            rendered = rendered or self.geometry.render(frame, self.cfg.jpeg_quality)
            self.take(t, rendered)

    def take(self, t: float, rendered: tuple[bytes, int, int]) -> None:
        half = self.cfg.every_s / 2
        jpeg, width, height = rendered
        self.frames.append(
            {
                "frame_ts": t,
                "spans": [[max(0.0, t - half), t + half]],  # the interval it stands for
                "image": jpeg,
                "width": width,
                "height": height,
            }
        )
        self.k += 1


def decode_video(path: str, cfg: DecodeConfig) -> dict[str, Any]:
    """Audio as FLAC and the sampled frames of one file, in a single demux pass."""
    import av

    if os.path.getsize(path) == 0:
        raise VideoError("empty", "the file is empty (0 bytes)")
    try:
        container = av.open(path)
    except av.error.FFmpegError as exc:
        raise VideoError("corrupt", f"cannot open as media: {exc}") from exc
    with container:
        if not container.streams.video:
            kind = "audio-only file" if container.streams.audio else "no streams"
            raise VideoError("no_video_stream", f"no video stream ({kind})")
        vstream = _main_video(container.streams.video)
        if vstream is None:
            raise VideoError("no_video_stream", "no video stream (only cover art)")
        if vstream.codec_context is None or vstream.codec_context.codec is None:
            raise VideoError("unsupported_codec", "no decoder for the video stream")
        if cfg.threads > 0:  # frame threading costs ~25% more CPU for the same frames
            vstream.thread_type = "NONE" if cfg.threads == 1 else "AUTO"
            vstream.codec_context.thread_count = cfg.threads
        astream = container.streams.audio[0] if container.streams.audio else None
        fps = _fps(vstream)
        origin = _origin(container, vstream)
        geometry = Geometry.of(vstream, cfg.short_side)
        tb = float(vstream.time_base) if vstream.time_base else 0.0
        picker = FramePicker(cfg, geometry, fps, _duration(container, vstream), tb, origin)
        strategy = choose_strategy(cfg, timestamps_ok=_has_timestamps(path))
        reader = _VideoReader(vstream, picker, strategy, margin=0.5 / fps + 1e-6)
        audio = _AudioReader(cfg.sample_rate, _lead(astream, origin)) if astream else None
        streams = [s for s in (vstream, astream) if s is not None]
        warnings: list[str] = []
        try:
            for packet in container.demux(*streams):
                if packet.size == 0:
                    continue
                if packet.stream is vstream:
                    reader.push(packet)
                elif audio is not None:
                    audio.push(packet)
        except av.error.FFmpegError as exc:
            if not picker.frames and not reader.seen:
                raise VideoError("corrupt", f"unreadable media: {exc}") from exc
            warnings.append(f"stopped early, the rest is unreadable: {exc}")
        reader.finish()
        if not picker.frames:
            raise VideoError("no_frames", "no frames could be decoded")
        pcm = audio.finish() if audio is not None else None
        # what was read beats what the header says (truncated files, offset start times)
        duration = reader.last_time or picker.duration or picker.last_ts
        return {
            "duration_s": duration,
            "fps": fps,
            "has_audio": astream is not None,
            "audio": pcm,
            "frames": picker.frames,
            "decode_strategy": reader.used,
            "warnings": warnings + audio.warnings if audio else warnings,
        }


class _VideoReader:
    """Feeds video packets to the decoder only as far as the pending sample time needs."""

    def __init__(self, stream: Any, picker: FramePicker, strategy: str, margin: float) -> None:
        self.stream, self.picker, self.strategy, self.margin = stream, picker, strategy, margin
        self.cc = stream.codec_context
        self.buffer: list[Any] = []
        self.buffered = 0
        self.skipped = 0
        self.seen = 0
        self.last_time = 0.0
        self.gap = False  # packets were skipped since the decoder last ran
        self.prev_key: tuple[float, Any] | None = None
        if strategy == "keyframes":
            self.cc.skip_frame = "NONKEY"

    @property
    def used(self) -> str:
        """The strategy that ran: `seek` that never skipped a packet decoded sequentially."""
        return "sequential" if self.strategy == "seek" and not self.skipped else self.strategy

    def push(self, packet: Any) -> None:
        self.seen += 1
        t = self.picker.packet_time(packet.pts)
        if t is not None:
            self.last_time = max(self.last_time, t + 1.0 / self.picker.fps)
        if self.strategy == "keyframes":
            if packet.is_keyframe:  # decoded on its own: reordering would hold it back
                frames = [*self.stream.decode(packet), *self.stream.decode(None)]
                self.cc.flush_buffers()
                if frames:
                    self._offer_keyframe(frames[0], t)
            return
        near = t is None or (
            (target := self.picker.target) is not None and t >= target - self.margin
        )
        if self.strategy == "sequential" or near:
            self._run([*self.buffer, packet])
            self.buffer, self.buffered = [], 0
            return
        if packet.is_keyframe and self.buffer:  # nothing before this keyframe is needed
            self.skipped += len(self.buffer)
            self.buffer, self.buffered, self.gap = [], 0, True
        self.buffer.append(packet)
        self.buffered += packet.size
        if self.buffered > MAX_BUFFERED_BYTES:  # a very long GOP: decode it rather than hold it
            self._run(self.buffer)
            self.buffer, self.buffered = [], 0

    def _run(self, packets: list[Any]) -> None:
        if self.gap:
            self.cc.flush_buffers()
            self.gap = False
        for p in packets:
            pt = self.picker.packet_time(p.pts)
            target = self.picker.target
            near = pt is None or (target is not None and pt >= target - self.margin)
            self.cc.skip_frame = "DEFAULT" if near else "NONREF"
            self._decode(p)

    def _decode(self, packet: Any | None) -> None:
        for frame in self.stream.decode(packet):
            self.picker.offer(frame)

    def _offer_keyframe(self, frame: Any, t: float | None) -> None:
        """Each sample time takes the nearer of the keyframes around it."""
        picker = self.picker
        ts = picker.frame_time(frame, known=t)
        while (t := picker.target) is not None and t <= ts:
            prev = self.prev_key
            use = prev if prev is not None and t - prev[0] <= ts - t else (ts, frame)
            picker.take(t, picker.geometry.render(use[1], picker.cfg.jpeg_quality))
        self.prev_key = (ts, frame)

    def finish(self) -> None:
        if self.strategy == "keyframes":
            end = self.last_time - 0.5 / self.picker.fps
            while (
                self.prev_key
                and (t := self.picker.target) is not None
                and t - 0.5 / self.picker.fps <= end
            ):
                self.picker.take(
                    t, self.picker.geometry.render(self.prev_key[1], self.picker.cfg.jpeg_quality)
                )
            return
        if self.buffer and self.picker.target is not None:
            self._run(self.buffer)
        self.cc.skip_frame = "DEFAULT"
        self._decode(None)


class _AudioReader:
    """Decodes, resamples to 16 kHz mono and FLAC-encodes audio packets as they arrive."""

    def __init__(self, rate: int, lead_s: float = 0.0) -> None:
        self.rate = rate
        self.resampler = self._resampler()
        self.writer = FlacWriter(rate)
        self.warnings: list[str] = []
        if lead_s > 0:  # audio starting after the video: pad so word times match frame times
            self.writer.write(_silence(rate, lead_s))

    def _resampler(self) -> Any:
        import av

        # One-second output frames: 40x fewer calls into the encoder than AAC's 1024 samples.
        return av.AudioResampler(format="s16", layout="mono", rate=self.rate, frame_size=self.rate)

    def push(self, packet: Any) -> None:
        import av

        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:  # one damaged audio packet is a click, not a failure
            if len(self.warnings) < 3:
                self.warnings.append(f"audio packet skipped: {exc}")
            return
        for frame in frames:
            try:
                outs = self.resampler.resample(frame)
            except ValueError:  # the format changed mid-stream (spliced or concatenated files)
                outs = self.resampler.resample(None)
                self.resampler = self._resampler()
                outs += self.resampler.resample(frame)
            for out in outs:
                self.writer.write(out)

    def finish(self) -> bytes:
        for out in self.resampler.resample(None):
            self.writer.write(out)
        return self.writer.close()


def _has_timestamps(path: str, probe: int = 8) -> bool:
    """Whether the first video packets carry presentation times (raw .h264 streams do not)."""
    import av

    with av.open(path) as container:
        for i, packet in enumerate(container.demux(video=0)):
            if packet.size and packet.pts is None:
                return False
            if i >= probe:
                break
    return True


def _silence(rate: int, seconds: float) -> Any:
    import av

    samples = np.zeros((1, int(rate * seconds)), dtype=np.int16)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = rate
    return frame


def _main_video(streams: Any) -> Any:
    """The film, not cover art: skip attached pictures, prefer the stream marked default."""
    import av

    flags = av.stream.Disposition
    films = [v for v in streams if not v.disposition & flags.attached_pic]
    return next((v for v in films if v.disposition & flags.default), films[0] if films else None)


def _origin(container: Any, stream: Any) -> float:
    """Where the file's time starts (times in the tables count from here)."""
    if container.start_time is not None:
        return float(container.start_time) / 1_000_000
    if stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return 0.0


def _lead(stream: Any, origin: float) -> float:
    if stream.start_time is None or not stream.time_base:
        return 0.0
    return max(0.0, float(stream.start_time * stream.time_base) - origin)


def _fps(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate and float(rate) > 0 else 25.0


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


class DecodeStage(Stage):
    """Video path → FLAC audio (16 kHz mono) and sampled JPEG frames; fetched media is deleted."""

    name = "decode"

    cfg: DecodeConfig

    def process(self, row: Row) -> Row:
        path = row.get("media_path") or row["source"]
        try:
            out = decode_video(path, self.cfg)
        finally:
            if row.get("scratch"):  # fetched into scratch space: its only use is over
                _remove(path)
        return {**{k: v for k, v in row.items() if k not in ("media_path", "scratch")}, **out}


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
