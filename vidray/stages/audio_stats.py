"""Audio statistics: the 16 kHz track as a time series (loudness, periodicity, speech share)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidray.audio import pcm_chunks
from vidray.config import AudioStatsConfig
from vidray.stages.base import Row, Stage, VideoError

SILENCE_DB = -100.0  # the dB of a digitally silent frame (log of zero)
GATE_DB = -70.0  # EBU R128's absolute gate: quieter frames do not count towards loudness
FLOOR_PERCENTILE = 10.0  # the track's noise floor: the level its quietest tenth stays under
SPEECH_MARGIN_DB = 10.0  # speech frames stand this far above the noise floor
SPEECH_WINDOW_S = 0.5  # the cues are averaged over about two syllables
MIN_FLUX = 0.3  # mean spectral-shape change between frames (0..2) of speech
MIN_MODULATION_DB = 2.0  # mean frame-to-frame loudness change of speech
BANDS_HZ = np.geomspace(100.0, 7600.0, 17)  # 16 log-spaced bands for the spectral shape
STATS = (
    "speech_ratio", "loudness_db", "loudness_trend_db_per_min", "periodicity", "period_s",
    "serial_correlation", "skewness", "kurtosis", "hurst",
)  # fmt: skip


@dataclass
class TrackFeatures:
    """All one streaming pass keeps of a track: two floats per frame and five sample sums."""

    frame_s: float
    db: np.ndarray  # frame RMS in dBFS, SILENCE_DB for digital silence (the loudness envelope)
    flux: np.ndarray  # L1 change of the normalised band spectrum since the previous frame, 0..2
    # n, Σy, Σy², Σy³, Σy⁴ of the samples y = x - (the first chunk's mean), x in [-1, 1): the
    # shift keeps a DC offset from cancelling the digits of the central moments
    moments: np.ndarray


def flac_rate(audio: bytes) -> int:
    """The track's sample rate, from its header: decode's rate is configurable."""
    import av

    with av.open(io.BytesIO(audio)) as container:
        return int(container.streams.audio[0].rate)


def track_features(audio: bytes, frame_ms: float, chunk_s: float = 60.0) -> TrackFeatures:
    """Stream a FLAC track in `chunk_s` pieces into per-frame features; memory is the envelope
    (6 hours at 50 ms: 432k frames) plus one chunk, whatever the length of the track."""
    rate = flac_rate(audio)
    size = max(1, round(frame_ms * rate / 1000))
    edges = np.unique(np.clip(np.round(BANDS_HZ * size / rate).astype(int), 0, size // 2))
    window = np.hanning(size)
    dbs: list[np.ndarray] = []
    fluxes: list[np.ndarray] = []
    moments = np.zeros(5)
    shift: float | None = None
    rest = np.zeros(0)
    prev = None  # the last frame's band shape, so flux runs on across chunk seams
    seen = 0  # samples taken so far
    for start, pcm in pcm_chunks(audio, chunk_s):
        # pcm_chunks lets the last piece reach back over samples already yielded
        x = pcm[max(0, seen - round(start * rate)) :].astype(np.float64) / 32768.0
        seen += len(x)
        if len(x) == 0:
            continue
        shift = float(x.mean()) if shift is None else shift
        y = x - shift
        y2 = y * y
        moments += (len(y), y.sum(), y2.sum(), (y2 * y).sum(), (y2 * y2).sum())
        x = np.concatenate([rest, x])
        n = len(x) // size
        frames, rest = x[: n * size].reshape(n, size), x[n * size :]
        if n == 0:
            continue
        power = (frames * frames).mean(axis=1)
        dbs.append(np.maximum(10 * np.log10(np.maximum(power, 1e-30)), SILENCE_DB))
        shape = band_shape(np.abs(np.fft.rfft(frames * window, axis=1)) ** 2, edges)
        before = np.vstack([shape[:1] if prev is None else prev, shape[:-1]])
        fluxes.append(np.abs(shape - before).sum(axis=1))
        prev = shape[-1:]
    db = np.concatenate(dbs).astype(np.float32) if dbs else np.zeros(0, np.float32)
    flux = np.concatenate(fluxes).astype(np.float32) if fluxes else np.zeros(0, np.float32)
    return TrackFeatures(size / rate, db, flux, moments)


def band_shape(power: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Frames' power spectra → the share of each band [edges[i], edges[i+1]) in their sum (0 for
    a frame with no power there). Bins past the last edge are cut first: reduceat's last band
    would otherwise run on to Nyquist, taking in the 7.6-8 kHz hiss the bands leave out."""
    bands = np.add.reduceat(power[:, : edges[-1]], edges[:-1], axis=1)
    total = bands.sum(axis=1, keepdims=True)
    return np.divide(bands, total, out=np.zeros_like(bands), where=total > 0)


def envelope_floor(db: np.ndarray) -> float:
    """The level below which the envelope's shape is not looked at: GATE_DB, or the track's own
    noise floor (ignoring digital silence) where that is quieter. Digital silence reads as
    SILENCE_DB, 30+ dB under any real pause, so unclipped its steps would make up most of the
    envelope's variance and swamp periodicity, serial correlation and Hurst."""
    heard = db[db > SILENCE_DB]
    if len(heard) == 0:
        return SILENCE_DB
    return min(GATE_DB, float(np.percentile(heard, FLOOR_PERCENTILE)))


def loudness(db: np.ndarray, frame_s: float) -> tuple[float | None, float | None]:
    """(mean loudness in dBFS, least-squares slope in dB per minute) of the frames above the
    gate: power-averaged like EBU R128 (without its K-weighting), so pauses and digital silence
    neither drag the level down nor fake a trend."""
    t = np.nonzero(db > GATE_DB)[0]
    if len(t) == 0:
        return (SILENCE_DB if len(db) else None), None
    level = db[t].astype(np.float64)
    mean_db = float(10 * np.log10(np.mean(10 ** (level / 10))))
    if len(t) < 2:
        return mean_db, None
    minutes = t * frame_s / 60.0
    dt = minutes - minutes.mean()
    return mean_db, float(np.dot(dt, level - level.mean()) / np.dot(dt, dt))


def autocorrelation(x: np.ndarray) -> np.ndarray | None:
    """Normalised autocorrelation at every lag by FFT (O(n log n)), each lag averaged over its
    own n - k products so a far lag is not shrunk; None for a constant series."""
    n = len(x)
    y = x.astype(np.float64)
    y -= y.mean() if n else 0.0
    var = float(np.dot(y, y)) / max(n, 1)
    if n < 2 or var <= 1e-6:  # an envelope steady to a thousandth of a dB has no shape to see
        return None
    spectrum = np.fft.rfft(y, 1 << (2 * n - 1).bit_length())
    acf = np.fft.irfft(spectrum.real**2 + spectrum.imag**2)[:n]
    return np.clip(acf / (n - np.arange(n)) / var, -1.0, 1.0)


def periodicity(acf: np.ndarray | None, frame_s: float) -> tuple[float, float | None]:
    """(height, lag in s) of the highest autocorrelation peak between 0.25 s and min(60 s, a
    third of the track); of peaks within 0.05 of the highest the shortest lag wins, so a
    multiple of the period does not win on noise."""
    if acf is None:
        return 0.0, None
    lo = max(1, math.ceil(0.25 / frame_s))
    hi = min(int(60.0 / frame_s), len(acf) // 3)
    k = np.arange(lo, max(lo, hi))
    k = k[(acf[k] >= acf[k - 1]) & (acf[k] >= acf[k + 1])]  # peaks, not a decaying slope
    if len(k) == 0:
        return 0.0, None
    best = k[np.nonzero(acf[k] >= acf[k].max() - 0.05)[0][0]]
    return float(acf[best]), float(best * frame_s)


def sample_shape(moments: np.ndarray) -> tuple[float | None, float | None]:
    """(skewness, excess kurtosis) from shifted power sums; None when the samples are constant."""
    n, s1, s2, s3, s4 = moments
    if n < 2:
        return None, None
    m = s1 / n
    var = s2 / n - m * m
    if var <= 1e-12:
        return None, None
    mu3 = s3 / n - 3 * m * s2 / n + 2 * m**3
    mu4 = s4 / n - 4 * m * s3 / n + 6 * m * m * s2 / n - 3 * m**4
    return float(mu3 / var**1.5), float(mu4 / var**2 - 3.0)


def _expected_rs(s: int) -> float:
    """E[R/S] of s independent samples (Anis-Lloyd with Peters' small-sample factor)."""
    i = np.arange(1, s)
    gamma = math.exp(math.lgamma((s - 1) / 2) - math.lgamma(s / 2)) / math.sqrt(math.pi)
    return (s - 0.5) / s * gamma * float(np.sum(np.sqrt((s - i) / i)))


def hurst(x: np.ndarray) -> float | None:
    """Hurst exponent by rescaled-range (R/S) analysis over windows of 8, 16, ... up to a quarter
    of the series: 0.5 + the slope of log(R/S / E[R/S]) against log window, where E[R/S] is the
    expectation for white noise, removing plain R/S's upward bias on short windows. ~0.5 for
    white noise, towards 1 for persistent series, below 0.5 for anti-persistent ones (a strictly
    periodic envelope, whose range stops growing, reads near 0); clipped to [0, 1]."""
    sizes = [s for s in (2**p for p in range(3, 40)) if s <= len(x) // 4]
    points = []
    for s in sizes:
        w = x[: len(x) // s * s].astype(np.float64).reshape(-1, s)
        dev = np.cumsum(w - w.mean(axis=1, keepdims=True), axis=1)
        r, sd = np.ptp(dev, axis=1), w.std(axis=1)
        ok = sd > 1e-9
        if ok.any():
            points.append((math.log(s), math.log(float(np.mean(r[ok] / sd[ok])) / _expected_rs(s))))
    if len(points) < 2:
        return None
    logs, logrs = np.array(points).T
    return float(np.clip(0.5 + np.polyfit(logs, logrs, 1)[0], 0.0, 1.0))


def window_sum(x: np.ndarray, width: int) -> np.ndarray:
    """Sum of `x` over a window of `width` centred on each element (cut at the ends)."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(len(x))
    return c[np.minimum(i + width - width // 2, len(x))] - c[np.maximum(i - width // 2, 0)]


def speech_frames(db: np.ndarray, flux: np.ndarray, frame_s: float) -> np.ndarray:
    """Frames that look like speech: all three of

    - energy: at least SPEECH_MARGIN_DB above the track's own noise floor (its 10th percentile
      level) and above GATE_DB, so pauses, hum and steady background are not speech;
    - syllabic modulation: loudness changing by MIN_MODULATION_DB per frame on average over
      SPEECH_WINDOW_S, as it does at speech's 3-8 syllables per second (a tone does not);
    - spectral change: the band-energy *shape* (level-free) moving by MIN_FLUX per frame on
      average among loud frames in the window, as formants and voiced/unvoiced sounds do; a
      chord with a beat changes level, not shape, so it fails here.

    Tuned at the default 50 ms frames (100 ms works too; at 20 ms the band shape of noise is
    noisy enough that amplitude-modulated noise passes). Limits: singing and rap pass as speech; music whose timbre changes every frame (dense
    percussion, fast arpeggios) partly passes; speech quieter than its background fails; a track
    that is all speech without pauses keeps a high floor and shows less speech than it has.
    """
    if len(db) < 2:
        return np.zeros(len(db), bool)
    loud = db > max(float(np.percentile(db, FLOOR_PERCENTILE)) + SPEECH_MARGIN_DB, GATE_DB)
    pairs = np.concatenate([[False], loud[1:] & loud[:-1]])  # flux between two loud frames
    width = max(1, round(SPEECH_WINDOW_S / frame_s))
    change = np.concatenate([[0.0], np.abs(np.diff(db.astype(np.float64)))])
    modulation = window_sum(change, width) / width
    n_pairs = window_sum(pairs.astype(float), width)
    flux_sum = window_sum(np.where(pairs, flux, 0.0), width)
    shape_change = np.divide(flux_sum, n_pairs, out=np.zeros_like(flux_sum), where=n_pairs > 0)
    return loud & (modulation >= MIN_MODULATION_DB) & (shape_change >= MIN_FLUX)


def audio_stats(features: TrackFeatures) -> dict[str, float | None]:
    """The statistics columns of one track; None where a statistic is undefined (no frames, a
    constant envelope, constant samples), never NaN."""
    db, frame_s = features.db, features.frame_s
    mean_db, trend = loudness(db, frame_s)
    envelope = np.maximum(db, envelope_floor(db))
    acf = autocorrelation(envelope)
    peak, lag = periodicity(acf, frame_s)
    skewness, kurtosis = sample_shape(features.moments)
    speech = speech_frames(db, features.flux, frame_s)
    return {
        "speech_ratio": float(speech.mean()) if len(speech) else 0.0,
        "loudness_db": mean_db,
        "loudness_trend_db_per_min": trend,
        "periodicity": peak if acf is not None else None,
        "period_s": lag,
        "serial_correlation": float(acf[1]) if acf is not None else None,
        "skewness": skewness,
        "kurtosis": kurtosis,
        "hurst": hurst(envelope) if acf is not None else None,
    }


class AudioStatsStage(Stage):
    """`audio` (FLAC) → the statistics columns, `audio` kept for transcription; with
    `min_speech_ratio` set, videos with too little speech (music, silence) are `filtered`."""

    name = "audio_stats"

    cfg: AudioStatsConfig

    def process(self, row: Row) -> Row:
        if not self.cfg.enabled:
            return row
        audio = row.get("audio")
        stats: dict[str, Any] = dict.fromkeys(STATS)
        stats["speech_ratio"] = 0.0
        if audio:
            try:
                features = track_features(audio, self.cfg.frame_ms)
            except Exception as exc:  # PyAV raises its own errors for a broken stream
                raise VideoError("corrupt_audio", f"cannot read the decoded audio: {exc}") from exc
            stats = audio_stats(features)
        ratio, least = stats["speech_ratio"], self.cfg.min_speech_ratio
        if least > 0 and ratio < least:
            raise VideoError(
                "filtered", f"speech ratio {ratio:.2f} below audio_stats.min_speech_ratio {least}"
            )
        return {**row, **stats}
