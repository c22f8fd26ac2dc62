"""Narrated sample videos with ground truth: espeak-ng speech, drawn subjects, PyAV H.264 + AAC."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidray.testing.draw import Canvas
from vidray.testing.media import h264_stream, mux_rgb
from vidray.testing.speech import Speaker, Voice
from vidray.testing.subjects import FILLERS, SUBJECTS, Subject

# Voices and speeds vary across videos; espeak-ng's "+f3" and "+m3" variants are left out
# because PocketSphinx's English model recognises well under half of their subject words.
VOICES = (
    Voice("en-us", 150),
    Voice("en-us+f2", 145, 55),
    Voice("en-gb-x-rp", 140, 50),
    Voice("en-us+m1", 135, 45),
    Voice("en", 155, 50),
)
NOISE_DBFS = -50.0  # a faint floor: espeak's digital silence is unrealistically easy (and hard)


@dataclass
class SceneWord:
    word: str
    start: float
    end: float


@dataclass
class Scene:
    start: float
    end: float
    subject: str
    static: bool
    sentences: list[str] = field(default_factory=list)
    words: list[SceneWord] = field(default_factory=list)
    # how the subject is drawn in this scene
    x: float = 0.5
    y: float = 0.5
    size: float = 0.3
    phase: float = 0.0


@dataclass
class VideoTruth:
    video: str
    seed: int
    voice: str
    rate: int
    width: int
    height: int
    fps: int
    duration: float
    scenes: list[Scene]


def subject_deck(seed: int, subjects: int = len(SUBJECTS)) -> Iterator[Subject]:
    """An endless, balanced stream of the first `subjects` subjects: each once per shuffled round."""
    rng = np.random.default_rng([seed, 1])
    pool = SUBJECTS[: max(1, min(subjects, len(SUBJECTS)))]
    while True:
        yield from (pool[i] for i in rng.permutation(len(pool)))


def plan_video(
    index: int,
    minutes: float,
    seed: int,
    deck: Iterator[Subject],
    speaker: Speaker,
    size: tuple[int, int],
    fps: int,
) -> tuple[VideoTruth, np.ndarray]:
    """Lay out scenes and speech for one video; returns its ground truth and its audio track."""
    rng = np.random.default_rng([seed, 2, index])
    voice = VOICES[(index + seed) % len(VOICES)]
    sr = speaker.sample_rate
    scenes: list[Scene] = []
    pieces: list[tuple[float, np.ndarray]] = []
    t = 0.0
    while t < minutes * 60.0 - 4.0:
        subject = next(deck)
        scene = Scene(
            start=round(t, 3),
            end=0.0,
            subject=subject.name,
            static=bool(rng.random() < 0.5),
            x=float(rng.uniform(0.35, 0.65)),
            y=float(rng.uniform(0.4, 0.6)),
            size=float(rng.uniform(0.22, 0.32)),
            phase=float(rng.uniform(0, 2 * np.pi)),
        )
        speech_t = t + float(rng.uniform(0.6, 1.2))
        n_sentences = 2 + int(rng.random() < 0.5)
        for k in rng.choice(len(subject.sentences), size=n_sentences, replace=False):
            text = subject.sentences[int(k)]
            if rng.random() < 0.3:
                text = f"{FILLERS[int(rng.integers(len(FILLERS)))]} {text}"
            utt = speaker.say(text, voice)
            pieces.append((speech_t, utt.samples))
            scene.sentences.append(text)
            scene.words += [
                SceneWord(w, round(speech_t + a, 3), round(speech_t + b, 3))
                for w, a, b in utt.words
            ]
            speech_t += len(utt.samples) / sr + float(rng.uniform(0.5, 1.0))
        scene.end = round(max(t + float(rng.uniform(8.0, 15.0)), speech_t + 0.3), 3)
        scenes.append(scene)
        t = scene.end
    duration = round(np.ceil(t * fps) / fps, 3)
    audio = np.zeros(int(duration * sr) + 1, np.float32)
    for start, samples in pieces:
        i = int(start * sr)
        chunk = samples[: len(audio) - i].astype(np.float32) / 32768.0
        audio[i : i + len(chunk)] += chunk
    audio += rng.normal(0.0, 10 ** (NOISE_DBFS / 20), len(audio)).astype(np.float32)
    truth = VideoTruth(
        video=f"sample_{index:03d}.mp4",
        seed=seed,
        voice=voice.name,
        rate=voice.rate,
        width=size[0],
        height=size[1],
        fps=fps,
        duration=duration,
        scenes=scenes,
    )
    return truth, np.clip(audio, -1.0, 1.0)


def frame_at(truth: VideoTruth, scene: Scene, t: float, canvas: Canvas) -> np.ndarray:
    subject = next(s for s in SUBJECTS if s.name == scene.subject)
    w, h = truth.width, truth.height
    cx, cy = scene.x * w, scene.y * h
    if not scene.static:  # sweep across the frame so frames a few seconds apart look different
        u = t - scene.start
        cx += 0.28 * w * np.sin(2 * np.pi * u / 6.0 + scene.phase)
        cy += 0.18 * h * np.cos(2 * np.pi * u / 4.5 + scene.phase)
    return canvas.draw(
        subject.shape,
        np.array(subject.color, np.float32),
        np.array(subject.background, np.float32),
        cx,
        cy,
        scene.size * h,
    )


def write_video(path: Path, truth: VideoTruth, audio: np.ndarray, sample_rate: int) -> None:
    import av

    canvas = Canvas(truth.width, truth.height)
    n_frames = round(truth.duration * truth.fps)
    with av.open(str(path), "w", options={"fflags": "+bitexact"}) as container:
        video = h264_stream(container, truth.width, truth.height, truth.fps)
        sound = container.add_stream("aac", rate=sample_rate, layout="mono")
        sound.bit_rate = 64_000
        chunk, audio_pos = 1024, 0
        scene_i, cached = 0, None
        for i in range(n_frames):
            t = i / truth.fps
            while scene_i + 1 < len(truth.scenes) and t >= truth.scenes[scene_i].end:
                scene_i, cached = scene_i + 1, None
            scene = truth.scenes[scene_i]
            if scene.static and cached is not None:
                img = cached
            else:
                img = frame_at(truth, scene, t, canvas)
                cached = img
            mux_rgb(container, video, img, i, truth.fps)
            while audio_pos < min(len(audio), (i + 1) / truth.fps * sample_rate):
                block = audio[audio_pos : audio_pos + chunk]
                aframe = av.AudioFrame.from_ndarray(block[None, :], format="fltp", layout="mono")
                aframe.sample_rate, aframe.pts = sample_rate, audio_pos
                aframe.time_base = Fraction(1, sample_rate)
                container.mux(sound.encode(aframe))
                audio_pos += len(block)
        container.mux(video.encode(None))
        container.mux(sound.encode(None))


def make_samples(
    out_dir: str | Path,
    videos: int = 3,
    minutes: float = 1.0,
    seed: int = 0,
    subjects: int = len(SUBJECTS),
    size: tuple[int, int] = (480, 270),
    fps: int = 12,
) -> list[Path]:
    """Write `videos` narrated mp4s with a ground-truth JSON next to each, and the corpus's
    `vocabulary.txt`; same seed, same output. `subjects` limits how many subjects appear, so a
    small corpus still shows each one in several videos."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    Speaker()  # fail early, with the install hint, if espeak-ng is missing
    # libespeak-ng keeps state between utterances (and a voice switch can silence the next one),
    # so each video is voiced in a fresh process: same seed, same bytes, whatever ran before.
    ctx = multiprocessing.get_context("spawn")
    jobs = [(out, index, minutes, seed, subjects, size, fps) for index in range(videos)]
    workers = max(1, min(videos, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers, mp_context=ctx, max_tasks_per_child=1) as pool:
        paths = list(pool.map(_make_video, jobs))
    vocab = domain_vocabulary()
    (out / "vocabulary.txt").write_text("".join(f"{w} {c}\n" for w, c in vocab.items()))
    return paths


def domain_vocabulary() -> dict[str, int]:
    """Every word the sample narrators may say, with how often the catalogue uses it: the
    corpus's domain vocabulary for `transcribe.vocabulary`. Like a cooking channel's word
    list, it says which words occur and how common they are, nothing of order or timing."""
    texts = [t for s in SUBJECTS for t in s.sentences] + list(FILLERS)
    counts = Counter(w.lower() for t in texts for w in re.findall(r"[A-Za-z']+", t))
    return dict(sorted(counts.items()))


def _make_video(job: tuple[Path, int, float, int, int, tuple[int, int], int]) -> Path:
    out, index, minutes, seed, subjects, size, fps = job
    speaker = Speaker()
    deck = subject_deck(seed, subjects)
    for _ in range(index * max_scenes(minutes)):  # each video takes its own stretch of the deck
        next(deck)
    truth, audio = plan_video(index, minutes, seed, deck, speaker, size, fps)
    path = out / truth.video
    write_video(path, truth, audio, speaker.sample_rate)
    path.with_suffix(".json").write_text(json.dumps(asdict(truth), indent=1))
    return path


def max_scenes(minutes: float) -> int:
    """How many scenes a video of `minutes` can hold at most (scenes last 8 s or more)."""
    return int(minutes * 60.0 / 8.0) + 1


def load_truth(path: str | Path) -> VideoTruth:
    """Read a ground-truth JSON written next to a sample video."""
    data = json.loads(Path(path).read_text())
    scenes = [
        Scene(**{**s, "words": [SceneWord(**w) for w in s["words"]]}) for s in data.pop("scenes")
    ]
    return VideoTruth(**data, scenes=scenes)


def subject_at(truth: VideoTruth, ts: float) -> str | None:
    """The subject on screen at time `ts`."""
    return next((s.subject for s in truth.scenes if s.start <= ts < s.end), None)
