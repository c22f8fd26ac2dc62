import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vidray.audio import pcm_chunks, read_pcm
from vidray.config import DecodeConfig
from vidray.stages.base import VideoError
from vidray.stages.decode import DecodeStage, decode_video, sample_times, scaled_size
from vidray.testing import media


def test_sample_times_are_interval_centres() -> None:
    assert sample_times(10.0, 3.0) == [1.5, 4.5, 7.5]
    assert sample_times(1.0, 3.0) == []  # the first centre lies past the end
    assert sample_times(0.0, 3.0) == []


def test_scaled_size_keeps_aspect_and_never_upscales() -> None:
    assert scaled_size(1920, 1080, 256) == (456, 256)
    assert scaled_size(320, 240, 256) == (320, 240)


def test_decode_timestamps_audio_and_frames(sample_video: Path, sample_truth) -> None:  # type: ignore[no-untyped-def]
    row = DecodeStage(DecodeConfig(every_s=2.0, short_side=128))(
        [{"video_id": "v", "source": str(sample_video)}]
    ).to_pylist()[0]
    assert row.get("error") is None
    assert row["has_audio"] is True
    audio_s = len(read_pcm(row["audio"])) / 16_000  # FLAC, 16 kHz mono
    assert abs(audio_s - sample_truth.duration) < 0.2
    ts = [f["frame_ts"] for f in row["frames"]]
    assert ts == sample_times(sample_truth.duration, 2.0)
    first = row["frames"][0]
    assert (first["width"], first["height"]) == (228, 128)
    assert first["image"][:2] == b"\xff\xd8"  # JPEG
    assert first["spans"] == [[0.0, 2.0]]


def test_audio_is_read_back_in_bounded_chunks(tmp_path: Path) -> None:
    video = media.write_test_video(tmp_path / "v.mp4", seconds=5.0)
    audio = decode_video(str(video), DecodeConfig())["audio"]
    chunks = list(pcm_chunks(audio, chunk_s=2.0))
    pcm = read_pcm(audio)
    # Whole 2 s pieces; the last reaches back so it is whole too and ends with the track.
    assert [round(start, 3) for start, _ in chunks[:2]] == [0.0, 2.0]
    assert all(len(c) == 32_000 for _, c in chunks)
    assert round(chunks[2][0] * 16_000) + 32_000 == len(pcm)
    for start, c in chunks:
        assert np.array_equal(c, pcm[round(start * 16_000) :][: len(c)])


@pytest.mark.parametrize("gop_s", [0.5, 1.0, 5.0])
def test_every_strategy_gives_the_same_timestamps(tmp_path: Path, gop_s: float) -> None:
    video = media.write_test_video(tmp_path / "v.mp4", seconds=12.0, fps=25, gop_s=gop_s)
    cfg = {s: DecodeConfig(every_s=2.0, strategy=s) for s in ("seek", "sequential", "keyframes")}
    out = {s: decode_video(str(video), c) for s, c in cfg.items()}
    stamps = {s: [f["frame_ts"] for f in o["frames"]] for s, o in out.items()}
    assert stamps["seek"] == stamps["sequential"] == stamps["keyframes"] == sample_times(12.0, 2.0)
    # Seeking decodes the same frames as decoding everything, so the pixels match too.
    assert [f["image"] for f in out["seek"]["frames"]] == [
        f["image"] for f in out["sequential"]["frames"]
    ]
    if gop_s < 2.0:  # keyframes denser than the samples: whole GOPs are skipped
        assert out["seek"]["decode_strategy"] == "seek"
    # The frame chosen for each time really is the one shown then (the block moves 8 px/frame).
    for frame in out["seek"]["frames"]:
        rgb = np.asarray(Image.open(_bytes_io(frame["image"])).resize((320, 180)))
        index = round(frame["frame_ts"] * 25)
        assert abs(media.block_x(rgb) - media.block_x(media.synthetic_frame(index))) <= 8


def _bytes_io(data: bytes):  # type: ignore[no-untyped-def]
    import io

    return io.BytesIO(data)


def test_keyframes_only_takes_the_nearest_keyframe(tmp_path: Path) -> None:
    video = media.write_test_video(tmp_path / "v.mp4", seconds=8.0, fps=25, gop_s=2.0)
    out = decode_video(str(video), DecodeConfig(every_s=2.0, snap_to_keyframes=True))
    assert out["decode_strategy"] == "keyframes"
    assert [f["frame_ts"] for f in out["frames"]] == [1.0, 3.0, 5.0, 7.0]


def test_rotated_phone_video_comes_out_upright(tmp_path: Path) -> None:
    video = media.rotated_video(tmp_path / "r.mp4", rotation=90, size=(320, 180))
    frames = decode_video(str(video), DecodeConfig(every_s=1.0, short_side=90))["frames"]
    assert (frames[0]["width"], frames[0]["height"]) == (90, 160)
    assert Image.open(_bytes_io(frames[0]["image"])).size == (90, 160)


def test_non_square_pixels_are_shown_at_display_aspect(tmp_path: Path) -> None:
    video = media.anamorphic_video(tmp_path / "a.mp4", size=(352, 288), sar=(16, 11))
    frame = decode_video(str(video), DecodeConfig(every_s=1.0, short_side=288))["frames"][0]
    assert (frame["width"], frame["height"]) == (512, 288)


def test_variable_frame_rate_keeps_real_times(tmp_path: Path) -> None:
    video = media.vfr_video(tmp_path / "vfr.mp4", seconds=6.0)
    with av.open(str(video)) as c:
        duration = float(c.streams.video[0].duration * c.streams.video[0].time_base)
    out = decode_video(str(video), DecodeConfig(every_s=1.0))
    assert [f["frame_ts"] for f in out["frames"]] == sample_times(duration, 1.0)


def test_4k_frames_are_scaled_down(tmp_path: Path) -> None:
    video = media.write_test_video(tmp_path / "4k.mp4", seconds=1.0, size=(3840, 2160), fps=5)
    frame = decode_video(str(video), DecodeConfig(every_s=0.5))["frames"][0]
    assert (frame["width"], frame["height"]) == (456, 256)


def test_streams_without_timestamps_decode_sequentially(tmp_path: Path) -> None:
    out = decode_video(
        str(media.raw_h264(tmp_path / "v.h264", seconds=4.0)), DecodeConfig(every_s=1.0)
    )
    assert out["decode_strategy"] == "sequential"
    assert [f["frame_ts"] for f in out["frames"]] == [0.5, 1.5, 2.5, 3.5]


def test_timestamps_that_jump_back_do_not_break_decoding(tmp_path: Path) -> None:
    src = media.write_test_video(tmp_path / "v.mp4", seconds=6.0, gop_s=2.0)
    out = decode_video(
        str(media.broken_timestamps(src, tmp_path / "b.ts")), DecodeConfig(every_s=1.0)
    )
    ts = [f["frame_ts"] for f in out["frames"]]
    assert ts == sorted(ts) and len(ts) >= 6 and out["has_audio"]


def test_exotic_codec_and_silent_or_missing_audio(tmp_path: Path) -> None:
    exotic = decode_video(
        str(media.exotic_codec_video(tmp_path / "e.avi")), DecodeConfig(every_s=1.0)
    )
    assert len(exotic["frames"]) == 3 and exotic["has_audio"]
    silent = media.write_test_video(tmp_path / "s.mp4", seconds=3.0, audio="silent")
    out = decode_video(str(silent), DecodeConfig(every_s=1.0))
    assert out["has_audio"] and np.abs(read_pcm(out["audio"])).max() < 10
    mute = media.write_test_video(tmp_path / "m.mp4", seconds=3.0, audio="none")
    out = decode_video(str(mute), DecodeConfig(every_s=1.0))
    assert out["has_audio"] is False and out["audio"] is None and len(out["frames"]) == 3


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d, v: media.zero_bytes(d / "z.mp4"), "empty"),
        (lambda d, v: media.random_bytes(d / "r.mp4"), "corrupt"),
        (lambda d, v: media.truncated_copy(v, d / "t.mp4"), "corrupt"),
        (lambda d, v: media.html_page(d / "h.mp4"), "corrupt"),
        (lambda d, v: media.audio_only(d / "a.m4a"), "no_video_stream"),
        (lambda d, v: media.unsupported_codec_copy(v, d / "u.mp4"), "unsupported_codec"),
    ],
)
def test_bad_files_fail_with_a_reason(tmp_path: Path, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    good = media.write_test_video(tmp_path / "good.mp4", seconds=3.0)
    bad = make(tmp_path, good)
    with pytest.raises(VideoError) as caught:
        decode_video(str(bad), DecodeConfig())
    assert caught.value.reason == reason
    row = DecodeStage(DecodeConfig())([{"video_id": "x", "source": str(bad)}]).to_pylist()[0]
    assert row["error_stage"] == "decode" and row["error_reason"] == reason


def test_truncated_file_with_index_in_front_keeps_what_decodes(tmp_path: Path) -> None:
    video = media.write_test_video(
        tmp_path / "f.mp4", seconds=6.0, options={"movflags": "+faststart"}
    )
    out = decode_video(
        str(media.truncated_copy(video, tmp_path / "t.mp4")), DecodeConfig(every_s=1.0)
    )
    assert 1 <= len(out["frames"]) < 6


def test_fetched_media_is_deleted_after_decoding(tmp_path: Path) -> None:
    video = media.write_test_video(tmp_path / "v.mp4", seconds=2.0)
    row = {"video_id": "x", "source": "http://h/v.mp4", "media_path": str(video), "scratch": True}
    out = DecodeStage(DecodeConfig())([row]).to_pylist()[0]
    assert out.get("error") is None and not video.exists()
    assert "media_path" not in out and out["source"] == "http://h/v.mp4"


def _shown(frame: dict) -> int:  # type: ignore[type-arg]
    """The x position of the moving block in a sampled JPEG, at the generator's frame size."""
    rgb = np.asarray(Image.open(_bytes_io(frame["image"])).resize((320, 180)))
    return media.block_x(rgb)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("offset.ts", {"seconds": 6.0, "gop_s": 1.0}),  # remuxed to start at 5 s
        ("ends_mid_gop.mp4", {"seconds": 6.56, "gop_s": 2.0}),  # B-frames drained at the end
    ],
)
def test_times_count_from_the_start_of_the_file(tmp_path: Path, name: str, kwargs: dict) -> None:  # type: ignore[type-arg]
    video = media.write_test_video(tmp_path / "v.mp4", fps=25, **kwargs)
    if name.endswith(".ts"):
        cmd = ["ffmpeg", "-v", "error", "-i", str(video), "-c", "copy", "-output_ts_offset", "5"]
        subprocess.run([*cmd, str(tmp_path / name)], check=True)
        video = tmp_path / name
        with av.open(str(video)) as c:
            assert c.start_time / 1e6 > 5.0
    expected = sample_times(kwargs["seconds"], 1.0)
    for strategy in ("seek", "sequential", "keyframes"):
        frames = decode_video(str(video), DecodeConfig(every_s=1.0, strategy=strategy))["frames"]
        assert [f["frame_ts"] for f in frames] == expected, strategy
        for f in frames:
            if strategy == "keyframes":  # the nearest keyframe, at most half a GOP away
                k = round(f["frame_ts"] / kwargs["gop_s"]) * kwargs["gop_s"]
                candidates = {
                    media.block_x(media.synthetic_frame(round(t * 25)))
                    for t in (k, k - kwargs["gop_s"])
                }
                assert _shown(f) in candidates or abs(_shown(f) - min(candidates)) <= 8
            else:
                want = media.block_x(media.synthetic_frame(round(f["frame_ts"] * 25)))
                assert abs(_shown(f) - want) <= 8, (strategy, f["frame_ts"])
