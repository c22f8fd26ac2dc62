"""Videos of known near-duplicate and distinct shots, with ground truth per sampled frame.

Static, near-static (shake, zoom, flicker, grain, a cursor, a talking head), moving and
hard-negative shots (same layout and colours, slides a line apart) for bench/dedup.py and the
dedup tests; and `narrated_still`, one static shot narrated throughout."""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidray.stages.decode import sample_times
from vidray.testing.draw import Canvas, shape_mask
from vidray.testing.media import h264_stream, mux_rgb
from vidray.testing.subjects import SUBJECTS

if TYPE_CHECKING:
    from vidray.testing.sample import VideoTruth

# What a person calls "the same picture" (static, near_static) and what they do not (moving,
# hard_negative: different pictures that share layout and colours, or slides one line apart).
KINDS: dict[str, tuple[str, ...]] = {
    "static": ("still", "graphic", "slide", "return"),
    "near_static": ("jitter", "zoom", "flicker", "grain", "handheld", "cursor", "talking_head"),
    "moving": ("pan", "objects"),
    "hard_negative": ("layout", "slides"),
}
KIND_OF = {v: k for k, vs in KINDS.items() for v in vs}
SHAPES = ("circle", "ring", "square", "triangle", "diamond", "cross", "hstripes", "vstripes")
WORDS = tuple(
    sorted({w for s in SUBJECTS for line in s.sentences for w in line.split()})
)  # slide text


@dataclass
class Shot:
    variant: str
    start: float
    end: float
    seed: int
    cuts: list[float] = field(default_factory=list)  # a new picture from each (layout, slides)
    same_as: int | None = None  # return: the earlier shot shown again

    @property
    def kind(self) -> str:
        return KIND_OF[self.variant]


@dataclass
class SampledFrame:
    ts: float
    shot: int
    kind: str
    variant: str
    picture: str  # frames showing the same picture share this
    duplicates: list[int]  # indices of the earlier sampled frames showing the same picture


@dataclass
class ScenesTruth:
    video: str
    seed: int
    width: int
    height: int
    fps: int
    every_s: float
    duration: float
    shots: list[Shot]
    frames: list[SampledFrame]


def plan_shots(seed: int, minutes: float, every_s: float = 3.0) -> list[Shot]:
    """Shots cycling through every variant in shuffled rounds; cuts fall midway between
    sample times, so no sampled frame straddles one."""
    rng = np.random.default_rng([seed, 11])
    # moving shots twice a round: each of their frames is distinct, and they are short
    variants = [v for vs in KINDS.values() for v in vs] + list(KINDS["moving"])
    shots: list[Shot] = []
    t = 0.0

    def add(
        variant: str, n: int, cuts: list[int] | None = None, same_as: int | None = None
    ) -> None:
        nonlocal t
        start = t
        t += n * every_s
        picks = [start + c * every_s for c in cuts or []]
        shot_seed = int(rng.integers(1 << 31))
        shots.append(Shot(variant, start, t, shot_seed, picks, same_as))

    while t < minutes * 60.0:
        for variant in rng.permutation(variants):
            if t >= minutes * 60.0:
                break
            if variant == "return":  # a still, a cutaway to a talking head, the still again
                add("still", int(rng.integers(2, 4)))
                add("talking_head", int(rng.integers(2, 4)))
                add("return", int(rng.integers(2, 4)), same_as=len(shots) - 2)
            elif variant in ("layout", "slides"):
                holds = rng.integers(
                    2, 4 if variant == "slides" else 3, size=int(rng.integers(3, 6))
                )
                add(str(variant), int(holds.sum()), [int(c) for c in np.cumsum(holds)[:-1]])
            else:
                add(str(variant), int(rng.integers(3, 6 if KIND_OF[variant] != "moving" else 5)))
    return shots


def frame_truth(shots: list[Shot], duration: float, every_s: float) -> list[SampledFrame]:
    """Which picture each sampled frame shows, and which earlier sampled frames show it too."""
    frames: list[SampledFrame] = []
    seen: dict[str, list[int]] = {}
    for ts in sample_times(duration, every_s):
        i = next(i for i, s in enumerate(shots) if s.start <= ts < s.end)
        shot = shots[i]
        if shot.kind == "moving":
            picture = f"{i}@{ts:g}"
        elif shot.same_as is not None:
            picture = f"{shot.same_as}.0"
        else:
            picture = f"{i}.{sum(c <= ts for c in shot.cuts)}"
        frames.append(
            SampledFrame(ts, i, shot.kind, shot.variant, picture, list(seen.get(picture, [])))
        )
        seen.setdefault(picture, []).append(len(frames) - 1)
    return frames


def smooth_noise(rng: np.random.Generator, w: int, h: int, octaves: int = 5) -> np.ndarray:
    """Fractal value noise in [0, 1]: bicubic-upscaled random grids, coarse ones strongest."""
    from PIL import Image

    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for o in range(octaves):
        cw = 3 * 2**o
        small = rng.random((max(2, round(cw * h / w)) + 1, cw + 1)).astype(np.float32)
        out += amp * np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))
        amp *= 0.55
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def photo(rng: np.random.Generator, w: int, h: int, shapes: int = 4) -> np.ndarray:
    """A float RGB 'photograph': textured colour fields under a light fall-off, with objects."""
    v = smooth_noise(rng, w, h)[..., None]
    c0, c1, c2 = rng.uniform(15, 240, (3, 3)).astype(np.float32)
    img = np.where(v < 0.5, c0 + (c1 - c0) * 2 * v, c1 + (c2 - c1) * (2 * v - 1))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(shapes):
        r = float(rng.uniform(0.08, 0.2)) * h
        mask = shape_mask(
            str(rng.choice(SHAPES)), xx - rng.uniform(0, w), yy - rng.uniform(0, h), r
        )
        img = np.where(mask[..., None], rng.uniform(0, 255, 3).astype(np.float32), img)
    img += 18 * (smooth_noise(rng, w, h, 7)[..., None] - 0.5)  # surface detail
    return img * (1.0 - 0.2 * yy / h)[..., None]


def slide(lines: list[str], w: int, h: int, title: str, accent: tuple[int, ...]) -> np.ndarray:
    """A presentation slide: a title band and bullet lines of text."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (w, h), (246, 245, 240))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, w, round(0.16 * h)], fill=accent)
    draw.text(
        (round(0.05 * w), round(0.04 * h)),
        title,
        (255, 255, 255),
        ImageFont.load_default(round(0.07 * h)),
    )
    font = ImageFont.load_default(round(0.055 * h))
    for k, line in enumerate(lines):
        y = round((0.24 + 0.11 * k) * h)
        draw.ellipse([round(0.06 * w), y + 6, round(0.06 * w) + 8, y + 14], fill=(60, 60, 60))
        draw.text((round(0.09 * w), y), line, (30, 30, 30), font)
    return np.asarray(img, np.float32)


def sentence(rng: np.random.Generator) -> str:
    return " ".join(str(w) for w in rng.choice(WORDS, int(rng.integers(3, 7))))


class Painter:
    """Draws one shot's frames; `frame(t, rng)` takes `rng` for what changes frame to frame."""

    def __init__(self, shot: Shot, w: int, h: int, every_s: float) -> None:
        self.shot, self.w, self.h = shot, w, h
        rng = np.random.default_rng(shot.seed)
        v = shot.variant
        self.pad = 8 if v in ("jitter", "handheld", "talking_head") else 0
        if v == "pan":  # 40% of the frame width per sample interval
            self.speed = 0.4 * w / every_s
            span = round(w + self.speed * (shot.end - shot.start)) + 2
            self.pictures = [photo(rng, span, h, shapes=12)]
        elif v in ("slide", "slides", "cursor"):
            accent = tuple(int(c) for c in rng.integers(20, 160, 3))
            title = sentence(rng).title()
            lines = [sentence(rng) for _ in range(int(rng.integers(2, 4)))]
            self.pictures = [slide(lines, w, h, title, accent)]
            for _ in shot.cuts:
                if len(lines) < 6 and rng.random() < 0.6:  # a build: one more line
                    lines = [*lines, sentence(rng)]
                else:  # one line rewritten
                    lines = list(lines)
                    lines[int(rng.integers(len(lines)))] = sentence(rng)
                self.pictures.append(slide(lines, w, h, title, accent))
            from PIL import ImageFont

            font = ImageFont.load_default(round(0.055 * h))
            self.cursor_at = (
                round(0.09 * w + font.getlength(lines[-1] + " ")),
                round((0.24 + 0.11 * (len(lines) - 1)) * h),
            )
        elif v == "layout":  # same backdrop colours, object colour, place and size; new shape
            c0, c1 = rng.uniform(30, 230, (2, 3)).astype(np.float32)
            colour = rng.uniform(0, 255, 3).astype(np.float32)
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            cx, cy, r = (
                w * rng.uniform(0.35, 0.65),
                h * rng.uniform(0.4, 0.6),
                h * rng.uniform(0.25, 0.35),
            )
            shapes = [str(s) for s in rng.permutation(SHAPES)]
            self.pictures = []
            for k in range(len(shot.cuts) + 1):
                v_ = smooth_noise(rng, w, h)[..., None]
                img = c0 + (c1 - c0) * (0.7 * yy[..., None] / h + 0.3 * v_)
                mask = shape_mask(shapes[k % len(shapes)], xx - cx, yy - cy, r)
                self.pictures.append(np.where(mask[..., None], colour, img))
        elif v == "graphic":  # a flat drawing, as the narrated sample videos show
            colour, ground = rng.uniform(0, 255, (2, 3)).astype(np.float32)
            r = float(rng.uniform(0.22, 0.32)) * h
            x, y = rng.uniform(0.35, 0.65, 2) * (w, h)
            drawing = Canvas(w, h).draw(str(rng.choice(SHAPES)), colour, ground, x, y, r)
            self.pictures = [drawing.astype(np.float32)]
        elif v == "objects":
            self.pictures = [photo(rng, w, h, shapes=2)]
            n = 3
            self.obj_r = rng.uniform(0.18, 0.26, n) * h
            self.obj_xy = rng.uniform(0, 1, (n, 2)) * (w, h)
            angle = rng.uniform(0, 2 * np.pi, n)
            speed = 2.2 * self.obj_r / every_s  # more than an object's width per sample interval
            self.obj_v = np.stack([np.cos(angle), np.sin(angle)], 1) * speed[:, None]
            self.obj_c = rng.uniform(0, 255, (n, 3)).astype(np.float32)
            self.obj_s = [str(s) for s in rng.choice(SHAPES, n)]
        else:
            self.pictures = [photo(rng, w + 2 * self.pad, h + 2 * self.pad)]
        if v == "talking_head":
            self.face_x, self.face_y = w * rng.uniform(0.35, 0.65), h * 0.5
            self.skin = rng.uniform(120, 230, 3).astype(np.float32)

    def frame(self, t: float, rng: np.random.Generator) -> np.ndarray:
        v, w, h, pad = self.shot.variant, self.w, self.h, self.pad
        u = t - self.shot.start
        k = sum(c <= t for c in self.shot.cuts)
        img = self.pictures[min(k, len(self.pictures) - 1)]
        if v in ("still", "graphic", "return", "slide", "layout", "slides"):
            return _u8(img)
        if v in ("jitter", "handheld", "talking_head"):
            amp = {"jitter": 4, "handheld": 6, "talking_head": 2}[v]
            dx, dy = rng.integers(-amp, amp + 1, 2)
            img = img[pad + dy : pad + dy + h, pad + dx : pad + dx + w]
        if v == "pan":
            x = u * self.speed
            x0 = int(x)
            img = img[:, x0 : x0 + w] * (1 - (x - x0)) + img[:, x0 + 1 : x0 + 1 + w] * (x - x0)
        elif v == "zoom":  # 10% over the shot
            from PIL import Image

            c = (1 - 1 / (1.0 + 0.1 * u / (self.shot.end - self.shot.start))) / 2
            box = (w * c, h * c, w * (1 - c), h * (1 - c))
            img = np.asarray(
                Image.fromarray(_u8(img)).resize((w, h), Image.Resampling.BILINEAR, box)
            )
        elif v == "objects":
            img = img.copy()
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            for j in range(len(self.obj_r)):
                x, y = _bounce(self.obj_xy[j] + self.obj_v[j] * u, (w, h))
                mask = shape_mask(self.obj_s[j], xx - x, yy - y, float(self.obj_r[j]))
                img = np.where(mask[..., None], self.obj_c[j], img)
        elif v == "cursor" and int(t * 2) % 2 == 0:  # blinks twice a second
            img = img.copy()
            x, y = self.cursor_at
            img[y : y + round(0.055 * h), x : x + 3] = 20
        elif v == "talking_head":
            img = self._face(img.copy(), u, rng)
        if v in ("flicker", "handheld"):
            gain = 1.0 + (0.08 if v == "flicker" else 0.04) * np.sin(2 * np.pi * 0.7 * t)
            img = img * (gain + rng.normal(0, 0.03 if v == "flicker" else 0.01))
        if v in ("grain", "handheld"):
            img = img + rng.normal(0, 14 if v == "grain" else 7, img.shape)
        return _u8(img)

    def _face(self, img: np.ndarray, u: float, rng: np.random.Generator) -> np.ndarray:
        """A presenter: head and shoulders, eyes that blink, a mouth that opens as they talk."""
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        fx, fy, r = self.face_x + 2 * np.sin(1.3 * u), self.face_y, 0.2 * h
        dx, dy = xx - fx, yy - fy
        body = (dx / (2.2 * r)) ** 2 + ((yy - h * 1.05) / (1.1 * r)) ** 2 <= 1
        img[body] = (40, 50, 90)
        img[(dx / (0.8 * r)) ** 2 + (dy / r) ** 2 <= 1] = self.skin
        img[
            ((dx / (0.85 * r)) ** 2 + ((dy + 0.35 * r) / (0.75 * r)) ** 2 <= 1) & (dy < -0.55 * r)
        ] = (50, 35, 25)
        eye_h = 0.02 * r if rng.random() < 0.1 else 0.09 * r
        for ex in (-0.33 * r, 0.33 * r):
            img[((dx - ex) / (0.12 * r)) ** 2 + ((dy + 0.1 * r) / eye_h) ** 2 <= 1] = (25, 25, 25)
        mouth_h = float(rng.uniform(0.02, 0.16)) * r
        img[(dx / (0.28 * r)) ** 2 + ((dy - 0.45 * r) / mouth_h) ** 2 <= 1] = (110, 30, 40)
        return img


def _bounce(p: np.ndarray, size: tuple[int, int]) -> tuple[float, float]:
    """Position `p` folded back into the frame, as a ball bounces off its edges."""
    x, y = (abs((c + s) % (2 * s) - s) for c, s in zip(p, size, strict=True))
    return float(x), float(y)


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).astype(np.uint8)


def write_scenes_video(path: Path, truth: ScenesTruth) -> None:
    """H.264 (x264 veryfast, CRF 23, 2 s GOP) without audio; still shots drawn once."""
    import av

    n_frames = round(truth.duration * truth.fps)
    with av.open(str(path), "w", options={"fflags": "+bitexact"}) as container:
        video = h264_stream(container, truth.width, truth.height, truth.fps)
        current: Shot | None = None
        painter: Painter | None = None
        still: np.ndarray | None = None
        for i in range(n_frames):
            t = i / truth.fps
            shot = next(s for s in truth.shots if s.start <= t < s.end)
            if shot is not current:  # a return draws the shot it returns to
                drawn = shot if shot.same_as is None else truth.shots[shot.same_as]
                painter = Painter(drawn, truth.width, truth.height, truth.every_s)
                current, still = shot, None
            moves = shot.variant not in ("still", "graphic", "return", "slide")
            if moves or still is None:
                assert painter is not None
                still = painter.frame(t, np.random.default_rng([truth.seed, shot.seed, i]))
            mux_rgb(container, video, still, i, truth.fps)
        container.mux(video.encode(None))


def make_scene_video(
    path: str | Path,
    seed: int = 0,
    minutes: float = 2.0,
    size: tuple[int, int] = (640, 360),
    fps: int = 5,
    every_s: float = 3.0,
    shots: list[Shot] | None = None,
) -> ScenesTruth:
    """Write one scenes video (`shots`, or a plan of about `minutes`) and its ground truth
    (JSON next to it); same seed, same output."""
    path = Path(path)
    shots = shots or plan_shots(seed, minutes, every_s)
    duration = shots[-1].end
    truth = ScenesTruth(
        path.name, seed, *size, fps, every_s, duration, shots, frame_truth(shots, duration, every_s)
    )
    write_scenes_video(path, truth)
    path.with_suffix(".json").write_text(json.dumps(asdict(truth), indent=1))
    return truth


def make_scene_videos(
    out_dir: str | Path, videos: int, minutes: float, seed: int = 0
) -> list[Path]:
    """`videos` scenes videos in `out_dir`, drawn in parallel; ones already there are kept."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"scenes_{seed}_{i:03d}.mp4" for i in range(videos)]
    todo = [
        (p, seed * 1000 + i, minutes)
        for i, p in enumerate(paths)
        if not p.with_suffix(".json").exists()
    ]
    if todo:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(len(todo), os.cpu_count() or 1), mp_context=ctx) as pool:
            list(pool.map(_make, todo))
    return paths


def _make(job: tuple[Path, int, float]) -> Any:
    return make_scene_video(job[0], job[1], job[2])


def load_scenes_truth(path: str | Path) -> ScenesTruth:
    """Read the ground truth written next to a scenes video."""
    data = json.loads(Path(path).with_suffix(".json").read_text())
    shots = [Shot(**s) for s in data.pop("shots")]
    frames = [SampledFrame(**f) for f in data.pop("frames")]
    return ScenesTruth(**data, shots=shots, frames=frames)


def dedup_outcomes(kept: list[dict[str, Any]], truth: ScenesTruth) -> list[str]:
    """What dedup did with each sampled frame, from the frames it kept (their merged `spans`):
    `kept`, `removed` into a kept frame of the same picture, or `misplaced` into another's."""
    index = {f.ts: i for i, f in enumerate(truth.frames)}
    out = []
    for f in truth.frames:
        into = next(k for k in kept if any(s < f.ts < e for s, e in k["spans"]))
        if into["frame_ts"] == f.ts:
            out.append("kept")
        else:
            out.append("removed" if index[into["frame_ts"]] in f.duplicates else "misplaced")
    return out


def narrated_still(path: str | Path, seconds: float = 40.0, subject: int = 0) -> VideoTruth:
    """One static shot of a catalogue subject, narrated from start to end by espeak-ng (its
    sentences in turn): H.264 + AAC like the sample videos. Returns its ground truth."""
    from vidray.testing.sample import VOICES, Scene, SceneWord, VideoTruth, write_video
    from vidray.testing.speech import Speaker

    speaker, voice, item = Speaker(), VOICES[0], SUBJECTS[subject]
    scene = Scene(0.0, seconds, item.name, static=True)
    pieces, t, k = [], 0.5, 0
    while True:
        text = item.sentences[k % len(item.sentences)]
        utt = speaker.say(text, voice)
        if t + len(utt.samples) / speaker.sample_rate > seconds - 0.5:
            break
        pieces.append((t, utt.samples))
        scene.sentences.append(text)
        scene.words += [SceneWord(w, round(t + a, 3), round(t + b, 3)) for w, a, b in utt.words]
        t += len(utt.samples) / speaker.sample_rate + 0.6
        k += 1
    audio = np.zeros(int(seconds * speaker.sample_rate) + 1, np.float32)
    for start, samples in pieces:
        i = int(start * speaker.sample_rate)
        audio[i : i + len(samples)] += samples.astype(np.float32) / 32768.0
    truth = VideoTruth(Path(path).name, 0, voice.name, voice.rate, 480, 270, 12, seconds, [scene])
    write_video(Path(path), truth, audio, speaker.sample_rate)
    return truth
