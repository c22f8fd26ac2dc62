"""Broken and unusual media for tests: a video without audio, a corrupt file."""

from __future__ import annotations

from pathlib import Path


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
