"""Speech audio between stages: 16 kHz mono, carried as FLAC bytes and read back in chunks."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np


class FlacWriter:
    """Encode int16 mono audio frames to FLAC in memory as they arrive (lossless, ~3x smaller).

    Decoded audio never accumulates as raw samples: a 3-hour track stays tens of MB, not 345 MB.
    """

    def __init__(self, sample_rate: int) -> None:
        import av

        self._buf = io.BytesIO()
        self._out: Any = av.open(self._buf, "w", format="flac")
        self._stream: Any = self._out.add_stream(
            "flac", rate=sample_rate, layout="mono", options={"compression_level": "0"}
        )
        self._stream.format = "s16"
        self.samples = 0

    def write(self, frame: Any) -> None:
        """Encode one `av.AudioFrame` already resampled to s16 mono at the writer's rate."""
        self.samples += frame.samples
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def close(self) -> bytes:
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()
        return self._buf.getvalue()


def pcm_chunks(
    audio: bytes, chunk_s: float = 600.0, overlap_s: float = 0.0, min_last_s: float = 30.0
) -> Iterator[tuple[float, np.ndarray]]:
    """(start seconds, int16 samples) pieces of at most `chunk_s` seconds of a FLAC track, each
    starting `overlap_s` before the previous one ended; a short last piece reaches back to at
    least `min_last_s` (a recognizer does worse on a few seconds out of context, and reaching
    back a whole chunk would nearly double the work on a video just over a chunk long). At
    most two pieces are held at a time."""
    import av

    container: Any
    with av.open(io.BytesIO(audio)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        limit = max(1, int(chunk_s * rate))
        overlap = min(max(0, int(overlap_s * rate)), limit // 2)
        parts: list[np.ndarray] = []
        held = done = 0  # samples held; the sample index where the held ones start
        last = np.zeros(0, dtype=np.int16)  # the piece yielded last
        for frame in container.decode(stream):
            parts.append(_samples(frame))
            held += frame.samples
            while held >= limit:
                block = np.concatenate(parts)
                last = block[:limit]
                yield done / rate, last
                step = limit - overlap
                parts, held, done = [block[step:]], held - step, done + step
        if held and not done:
            yield 0.0, np.concatenate(parts)
        elif held > overlap:  # else the tail lies inside the last piece
            # Samples of the last piece that precede the tail (never more than it holds).
            back = max(0, min(limit, int(min_last_s * rate)) - held)
            tail = np.concatenate(parts)
            yield (
                (done - back) / rate,
                np.concatenate([last[len(last) - overlap - back : len(last) - overlap], tail]),
            )


def _samples(frame: Any) -> np.ndarray:
    """A decoded mono frame's samples; packed 16-bit frames are read straight from their plane
    (`to_ndarray` costs ~40% of FLAC decoding time on the ~4 ms frames FLAC gives)."""
    if frame.format.name == "s16" and len(frame.planes) == 1:
        return np.frombuffer(
            frame.planes[0], np.int16, count=frame.samples * len(frame.layout.channels)
        ).copy()
    return frame.to_ndarray().reshape(-1)


def read_pcm(audio: bytes) -> np.ndarray:
    """A whole FLAC track as int16 samples (for short clips and tests)."""
    chunks = [samples for _, samples in pcm_chunks(audio, chunk_s=1e9)]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
