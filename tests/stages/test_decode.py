from pathlib import Path

from vidray.config import DecodeConfig
from vidray.stages.decode import DecodeStage, sample_times, scaled_size


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
    audio_s = len(row["audio"]) / 2 / 16_000  # int16 mono at 16 kHz
    assert abs(audio_s - sample_truth.duration) < 0.2
    ts = [f["frame_ts"] for f in row["frames"]]
    assert ts == sample_times(sample_truth.duration, 2.0)
    first = row["frames"][0]
    assert (first["width"], first["height"]) == (228, 128)
    assert first["image"][:2] == b"\xff\xd8"  # JPEG
    assert first["spans"] == [[0.0, 2.0]]


def test_broken_inputs_become_rows_not_crashes(broken: dict[str, Path]) -> None:
    rows = DecodeStage(DecodeConfig())(
        [
            {"video_id": "a", "source": str(broken["corrupt"])},
            {"video_id": "b", "source": str(broken["no_audio"])},
        ]
    ).to_pylist()
    bad, silent = rows
    assert bad["error_stage"] == "decode" and "Invalid data" in bad["error"]
    assert silent.get("error") is None and silent["has_audio"] is False and silent["audio"] is None
    assert len(silent["frames"]) > 5
