"""Decode: a video file → 16 kHz mono audio and one JPEG frame every `every_s` seconds (PyAV)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from vidray.config import DecodeConfig
from vidray.stages.base import Row, Stage


def sample_times(duration: float, every_s: float) -> list[float]:
    """Times to sample: the centre of each `every_s` interval, so a frame stands for its interval."""
    if duration <= 0 or every_s <= 0:
        return []
    n = max(1, int(duration / every_s + 0.5))
    return [round((k + 0.5) * every_s, 6) for k in range(n) if (k + 0.5) * every_s < duration]


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side at `short_side` (never upscaled), both even."""
    scale = min(1.0, short_side / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_video(path: str, cfg: DecodeConfig) -> dict[str, Any]:
    """One sequential pass over the file: resampled audio and the frames at the sample times."""
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        duration = _duration(container, vstream)
        targets = sample_times(duration, cfg.every_s) if duration else []
        width, height = scaled_size(
            vstream.codec_context.width, vstream.codec_context.height, cfg.short_side
        )
        resampler = av.AudioResampler(format="s16", layout="mono", rate=cfg.sample_rate)
        audio: list[np.ndarray] = []
        frames: list[dict[str, Any]] = []
        next_i, last_ts = 0, 0.0
        streams = [s for s in (vstream, astream) if s is not None]
        for packet in container.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.AudioFrame):
                    audio += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
                    continue
                if not isinstance(frame, av.VideoFrame):
                    continue
                ts = float(frame.time) if frame.time is not None else last_ts
                last_ts = ts
                # The first decoded frame at or after each target time stands for that time.
                while next_i < len(targets) and ts + 1e-6 >= targets[next_i] - 0.5 / _fps(vstream):
                    rgb = frame.to_ndarray(width=width, height=height, format="rgb24")
                    frames.append(
                        {
                            "frame_ts": targets[next_i],
                            # the interval this frame stands for; dedup unions these
                            "spans": [
                                [
                                    max(0.0, targets[next_i] - cfg.every_s / 2),
                                    targets[next_i] + cfg.every_s / 2,
                                ]
                            ],
                            "image": encode_jpeg(rgb, cfg.jpeg_quality),
                            "width": width,
                            "height": height,
                        }
                    )
                    next_i += 1
        if astream is not None:
            audio += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        pcm = np.concatenate(audio).astype(np.int16) if audio else None
        return {
            "duration_s": duration or last_ts,
            "fps": _fps(vstream),
            "has_audio": astream is not None,
            "audio": pcm.tobytes() if pcm is not None else None,
            "frames": frames,
        }


def _fps(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else 25.0


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


class DecodeStage(Stage):
    """Video path → audio (16 kHz mono int16 PCM bytes) and sampled JPEG frames."""

    name = "decode"

    cfg: DecodeConfig

    def process(self, row: Row) -> Row:
        out = decode_video(row["source"], self.cfg)
        if not out["frames"]:
            raise ValueError("no frames could be decoded")
        return {**row, "title": Path(row["source"]).stem, **out}
