import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from vidray.audio import FlacWriter
from vidray.config import AudioStatsConfig, DecodeConfig
from vidray.stages.audio_stats import STATS, AudioStatsStage, audio_stats, hurst, track_features
from vidray.stages.decode import DecodeStage
from vidray.testing.sample import VideoTruth
from vidray.testing.speech import Speaker, Voice

pytestmark = pytest.mark.filterwarnings("error")  # a numpy RuntimeWarning is a failure here

SR = 16_000
TEXT = (
    "Today we will learn how to bake bread at home. Start with flour, water, salt and a "
    "little yeast, then knead the dough for ten minutes until it is smooth and elastic. "
)


def flac(samples: np.ndarray, block_s: float = 10.0) -> bytes:
    """int16-range samples → 16 kHz mono FLAC bytes, written frame by frame like decode does."""
    writer = FlacWriter(SR)
    pcm = np.clip(np.round(samples), -32768, 32767).astype(np.int16)
    step = int(block_s * SR)
    for i in range(0, len(pcm), step):
        frame = av.AudioFrame.from_ndarray(
            pcm[i : i + step].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = SR
        writer.write(frame)
    return writer.close()


def stats(samples: np.ndarray) -> dict[str, Any]:
    return audio_stats(track_features(flac(samples), frame_ms=50.0))


def seconds(s: float) -> np.ndarray:
    return np.arange(int(s * SR)) / SR


def tone(s: float, hz: float = 440.0) -> np.ndarray:
    return 8000 * np.sin(2 * np.pi * hz * seconds(s))


def music(s: float) -> np.ndarray:
    """A steady A-major chord that swells on every beat at 120 bpm, with a kick drum."""
    t = seconds(s)
    chord = sum(np.sin(2 * np.pi * hz * t) for hz in (220.0, 277.2, 329.6, 440.0))
    kick = np.sin(2 * np.pi * 60 * t) * np.exp(-(t % 0.5) / 0.05)
    return 2000 * chord * (0.4 + 0.6 * np.exp(-(t % 0.5) / 0.12)) + 6000 * kick


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """espeak-ng narration resampled to 16 kHz."""
    said = Speaker().say(TEXT * 2, Voice("en-us", 150))
    frame = av.AudioFrame.from_ndarray(said.samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = said.sample_rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SR)
    out = [*resampler.resample(frame), *resampler.resample(None)]
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.float64)


def test_hurst_half_for_white_noise_higher_for_persistent() -> None:
    rng = np.random.default_rng(0)
    noise = stats(rng.normal(0, 3000, 120 * SR))
    # loudness wandering as a random walk in dB, one step per 50 ms frame
    walk = np.cumsum(rng.normal(0, 1.0, 2400))
    walk = -30 + 20 * (walk - walk.min()) / np.ptp(walk)
    gain = np.repeat(10 ** (walk / 20), SR // 20)
    persistent = stats(rng.normal(0, 32768, len(gain)) * gain)
    assert abs(noise["hurst"] - 0.5) < 0.15
    assert persistent["hurst"] > 0.85 > noise["hurst"] + 0.2
    assert abs(noise["serial_correlation"]) < 0.1 < 0.9 < persistent["serial_correlation"]
    assert hurst(rng.normal(size=20_000)) == pytest.approx(0.5, abs=0.1)  # the function alone


def test_pulsed_tone_is_periodic_at_its_period() -> None:
    t = seconds(30)
    pulsed = stats(tone(30) * ((t % 2.0) < 1.0))  # 1 s on, 1 s off
    assert pulsed["periodicity"] > 0.8
    assert pulsed["period_s"] == pytest.approx(2.0, abs=0.05)
    noise = stats(np.random.default_rng(1).normal(0, 3000, 30 * SR))
    assert noise["periodicity"] < 0.3


def test_fade_in_has_its_slope_in_db_per_minute() -> None:
    t = seconds(90)
    level_db = -50 + 30 * t / 90  # 20 dB per minute
    rising = np.random.default_rng(2).normal(0, 32768 * 10 ** (level_db / 20) / 1.2)
    out = stats(rising)
    assert out["loudness_trend_db_per_min"] == pytest.approx(20.0, abs=1.0)
    assert -40 < out["loudness_db"] < -20
    assert stats(tone(30))["loudness_trend_db_per_min"] == pytest.approx(0.0, abs=0.01)


def test_sample_moments_gaussian_versus_spiky() -> None:
    rng = np.random.default_rng(3)
    gaussian = stats(rng.normal(0, 3000, 60 * SR))
    assert abs(gaussian["skewness"]) < 0.05 and abs(gaussian["kurtosis"]) < 0.05
    spiky = np.zeros(60 * SR)
    spiky[rng.choice(len(spiky), 600, replace=False)] = 20_000
    out = stats(spiky + rng.normal(0, 30, len(spiky)))
    assert out["kurtosis"] > 100 and out["skewness"] > 5


def test_speech_ratio_separates_speech_from_tone_and_music(speech: np.ndarray) -> None:
    noisy = speech + np.random.default_rng(4).normal(0, 300, len(speech))
    ratios = {
        "speech": stats(speech)["speech_ratio"],
        "noisy speech": stats(noisy)["speech_ratio"],
        "tone": stats(tone(30))["speech_ratio"],
        "music": stats(music(30))["speech_ratio"],
        "silence": stats(np.zeros(10 * SR))["speech_ratio"],
    }
    print(ratios)
    assert ratios["speech"] > 0.6 and ratios["noisy speech"] > 0.5
    assert max(ratios["tone"], ratios["music"], ratios["silence"]) < 0.1
    assert stats(music(30))["periodicity"] > 0.9  # the beat, seen by periodicity instead


def test_decoded_narrated_video_speech_ratio_matches_its_words(
    sample_video: Path, sample_truth: VideoTruth
) -> None:
    row = DecodeStage(DecodeConfig(every_s=10.0))(
        [{"video_id": "v", "source": str(sample_video)}]
    ).to_pylist()[0]
    out = AudioStatsStage(AudioStatsConfig(min_speech_ratio=0.3))([row]).to_pylist()[0]
    assert out.get("error") is None
    # the narrator pauses between sentences and scenes: speech is the time inside words
    t = np.arange(0.0, sample_truth.duration, 0.01)
    inside = np.zeros(len(t), bool)
    for word in (w for scene in sample_truth.scenes for w in scene.words):
        inside |= (t >= word.start) & (t < word.end)
    assert out["speech_ratio"] == pytest.approx(inside.mean(), abs=0.1)
    assert out["audio"] == row["audio"]  # kept for transcription
    assert -40 < out["loudness_db"] < -5


def test_digital_silence_reads_like_a_noise_floor(speech: np.ndarray) -> None:
    # quiet speech (about -50 dBFS) broken by a second of pause every 3 s, the pauses digitally
    # silent (as is espeak's own) or the whole track over a -60 dBFS noise floor: at -100 dB the
    # silence's steps would outweigh the speech's own envelope in every shape statistic
    step = 3 * SR
    pieces = [
        np.concatenate([speech[i : i + step], np.zeros(SR)]) for i in range(0, len(speech), step)
    ]
    silent = 0.03 * np.concatenate(pieces)
    noisy = silent + np.random.default_rng(8).normal(0, 32768e-3, len(silent))
    a, b = stats(silent), stats(noisy)
    for key, tolerance in (("periodicity", 0.12), ("serial_correlation", 0.12), ("hurst", 0.05)):
        assert a[key] == pytest.approx(b[key], abs=tolerance), key
    assert a["period_s"] == pytest.approx(b["period_s"], abs=0.1)


def test_band_shape_leaves_out_the_bins_past_the_last_band() -> None:
    # a steady 1 kHz tone with a 7.9 kHz one (above the 7.6 kHz top band) switched on and off:
    # the shape of the bands must not move
    t = seconds(10)
    x = tone(10, 1000.0) + tone(10, 7900.0) * ((t % 0.5) < 0.25)
    assert float(track_features(flac(x), frame_ms=50.0).flux.max()) < 0.05


def test_a_corrupt_track_fails_its_video_as_corrupt_audio() -> None:
    cut = {"video_id": "c", "audio": flac(tone(5))[:100], "has_audio": True}
    garbage = {"video_id": "g", "audio": b"not flac" * 100, "has_audio": True}
    for out in AudioStatsStage(AudioStatsConfig())([cut, garbage]).to_pylist():
        assert (out["error_stage"], out["error_reason"]) == ("audio_stats", "corrupt_audio")
        assert out["error"].startswith("cannot read the decoded audio: ")


@pytest.mark.parametrize("seconds_long", [0.0, 0.01, 0.12, 0.6, 10.0])
def test_degenerate_tracks_give_no_nan(seconds_long: float) -> None:
    n = int(seconds_long * SR)
    for samples in (np.zeros(n), np.full(n, 1000.0), tone(seconds_long)):
        out = stats(samples)
        assert set(out) == set(STATS) and out["speech_ratio"] == 0.0
        assert not any(isinstance(v, float) and math.isnan(v) for v in out.values())
    assert stats(np.zeros(10 * SR))["loudness_db"] == -100.0


def test_stage_filters_music_only_videos_and_passes_through_when_off() -> None:
    row = {"video_id": "t", "audio": flac(tone(20)), "has_audio": True}
    quiet = {"video_id": "q", "audio": None, "has_audio": False}
    strict = AudioStatsStage(AudioStatsConfig(min_speech_ratio=0.2))
    tone_out, quiet_out = strict([row, quiet]).to_pylist()
    for out in (tone_out, quiet_out):
        assert (out["error_stage"], out["error_reason"]) == ("audio_stats", "filtered")
    assert "speech ratio 0.00 below audio_stats.min_speech_ratio 0.2" in tone_out["error"]
    kept = AudioStatsStage(AudioStatsConfig())([row, quiet]).to_pylist()
    assert kept[0]["speech_ratio"] == 0.0 and kept[0]["periodicity"] is None
    assert kept[0]["audio"] == row["audio"] and kept[0]["loudness_db"] < -10
    assert kept[1]["speech_ratio"] == 0.0 and kept[1]["hurst"] is None
    off = AudioStatsStage(AudioStatsConfig(enabled=False))([row]).to_pylist()[0]
    assert off == row


@pytest.mark.slow
def test_two_hour_track_in_bounded_memory() -> None:
    rng = np.random.default_rng(5)
    block = np.sin(2 * np.pi * 300 * seconds(10))
    writer = FlacWriter(SR)
    for _ in range(720):  # 2 hours in 10 s frames: never more than one frame of samples here
        pcm = (block * rng.uniform(500, 4000) + rng.integers(-4, 5, len(block))).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SR
        writer.write(frame)
    audio = writer.close()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    features = track_features(audio, frame_ms=50.0)
    out = audio_stats(features)
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / (
        1 << 20 if sys.platform == "darwin" else 1 << 10
    )
    print(f"2-hour track: {took:.1f} s ({cpu:.1f} s CPU), peak RSS grew {grew_mb:.0f} MB")
    assert len(features.db) == len(features.flux) == 2 * 3600 * 20
    assert features.moments[0] == 2 * 3600 * SR
    # the samples as float64 would be 920 MB; one 60 s chunk and the envelope are ~50 MB
    assert grew_mb < 300
    assert out["speech_ratio"] == 0.0 and out["loudness_db"] is not None
