"""`vidray report` on a large synthetic dataset: time by phase, peak RSS, site size, and how fast
the page opens in headless Chromium, against references in the same command.

    python bench/report.py [--frames 200000] [--videos 2000] [--gallery 50000] [--vocab 5000]
                           [--small-frames 1000] [--out /tmp/vidray-bench-report]

The dataset is written by the library's own writer (`vidray.sink.write_part`, a committed part
per batch of videos) into `--out` and reused by later runs with the same settings (delete it
after changing the generator): `--videos` videos holding `--frames` kept frames in all, each a
small JPEG (`--size`, a coloured picture that moves a little from frame to frame) with 3-8
labels drawn from a Zipf-distributed vocabulary of `--vocab` words (a long tail), label scores,
a dozen transcript words, spans and merge counts; each video row has a duration, sampled / kept
/ dropped counts, audio statistics, a license, a transcript of `--words` word structs and its
keywords. One video in a hundred more is an error row. A small dataset (`--small-frames`,
same frames per video) is written the same way.

The generation and each measurement run in a fresh (spawned) process, so a peak RSS (VmHWM)
is that measurement's own:

- `write_report` end to end, with its phases timed by wrapping the functions `dataset_report`
  calls (scan_frames, pmi, the charts, write_gallery, write_label_index, write_timelines);
- reference for the scan: plain `pyarrow.dataset(...).to_table(columns=...)` of the columns
  `scan_frames` needs, without the images, and the same with the image column (which
  `scan_frames` reads to know which frames have one);
- thumbnails, one thread, on the same 2,000 frames' JPEGs and on the same pictures at the size
  `vidray build` stores (short side 256): PIL's naive path (open, convert, `thumbnail`, same
  JPEG settings) against `vidray.report.gallery.thumbnail` (which asks PIL for a `draft` of
  224x224), and a draft of the thumbnail's own box (224x126 for 16:9), the fix it suggests;
- the page in headless Chromium (`vidray.testing.browser.open_page`, Debian's chromium,
  offline) for the large and the small site: time from navigation to the first gallery page
  drawn (`#grid figure` count = min(60, gallery)), measured inside the page
  (`performance.now()`), then to the next page (`#next`) and to the most common label's frames
  (`#label-filter`); and the bytes of the files the page requested by then. Best of
  `--browser-runs` fresh browsers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

SYLLABLES = [a + b for a in "bklmnrt" for b in "aeio"]  # ba be bi bo ka ...
FILLER = ["the", "a", "and", "of", "to", "in", "it", "is", "that", "this", "we", "so", "now"]
PAGE = 60  # gallery frames per page (app.js)


# ---- the synthetic dataset -------------------------------------------------------------------


def vocabulary(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct made-up words of two or three syllables, in rank order (most common first)."""
    two = [a + b for a in SYLLABLES for b in SYLLABLES]
    three = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES[:12]]
    words = np.array(two + three)
    if n > len(words):
        raise ValueError(f"--vocab is at most {len(words)}")
    return words[rng.permutation(len(words))[:n]].tolist()


def zipf_sampler(n: int, s: float = 1.0) -> np.ndarray:
    """The cumulative distribution of ranks 0..n-1 with p(r) proportional to 1 / (r + 1)^s."""
    p = 1.0 / np.arange(1, n + 1) ** s
    return np.cumsum(p / p.sum())


def background(color: np.ndarray, h: int, w: int) -> np.ndarray:
    """A video's colour over a horizontal gradient, kept at most 235 so grain cannot overflow."""
    ramp = np.linspace(0.6, 1.0, w, dtype=np.float32)[None, :, None]
    return np.broadcast_to(np.minimum(color * ramp, 235), (h, w, 3)).astype(np.uint8)


def picture(base: np.ndarray, i: int, rng: np.random.Generator) -> np.ndarray:
    """Frame i of a video: its background, a bar that moves along it, some grain."""
    h, w, _ = base.shape
    img = base.copy()
    x = (i * 7) % max(1, w - w // 4)
    img[h // 3 : 2 * h // 3, x : x + w // 4] = 235 - base[0, 0]
    img += rng.integers(0, 20, img.shape, np.uint8)
    return img


def video_row(
    v: int, frames: int, args: argparse.Namespace, words: list[str], cdf: np.ndarray
) -> dict[str, Any]:
    """One finished video row as the sink receives it, with its kept frames."""
    from vidray.stages.decode import encode_jpeg

    rng = np.random.default_rng([args.seed, v])
    w, h = args.width, args.height
    base = background(rng.uniform(40, 215, 3).astype(np.float32), h, w)
    merged = 1 + (rng.random(frames) < 0.3) * rng.integers(1, 3, frames)
    span_start = np.concatenate([[0.0], np.cumsum(3.0 * merged)[:-1]])
    duration = float(3.0 * merged.sum())
    n_words = args.words
    starts = np.sort(rng.uniform(0, duration, n_words)).astype(np.float32)
    content = rng.random(n_words) < 0.4
    said = [
        words[int(np.searchsorted(cdf, rng.random()))] if c else FILLER[rng.integers(len(FILLER))]
        for c in content
    ]
    transcript = [
        {"word": t, "start": float(s), "end": float(s) + 0.3, "score": 0.9, "interpolated": False}
        for t, s in zip(said, starts, strict=True)
    ]
    keywords = [
        {
            "lemma": t,
            "word": t,
            "start": float(s),
            "end": float(s) + 0.3,
            "score": 0.9,
            "salience": 0.5,
        }
        for t, s, c in zip(said, starts, content, strict=True)
        if c
    ]
    ranks = np.searchsorted(cdf, rng.random((frames, 16)))
    counts = rng.integers(3, 9, frames)
    rows = []
    for i in range(frames):
        labels = [words[r] for r in dict.fromkeys(ranks[i].tolist())][: counts[i]]
        ts = float(span_start[i] + 1.5)
        near = int(np.searchsorted(starts, ts))
        rows.append(
            {
                "frame_ts": ts,
                "span_start": float(span_start[i]),
                "span_end": float(span_start[i] + 3.0 * merged[i]),
                "merged": int(merged[i]),
                "image": encode_jpeg(picture(base, i, rng), 90),
                "width": w,
                "height": h,
                "phash": int(rng.integers(-(2**62), 2**62)),
                "labels": labels,
                "label_scores": sorted(rng.uniform(0.5, 1.0, len(labels)).round(3), reverse=True),
                "words": said[max(0, near - 6) : near + 6],
            }
        )
    audio = rng.normal(0, 1, 8)
    return {
        "video_id": f"youtube:{v:07d}",
        "source": f"https://www.youtube.com/watch?v=bench{v:07d}",
        "url": f"https://www.youtube.com/watch?v=bench{v:07d}",
        "extractor": "youtube",
        "title": f"synthetic video {v}",
        "uploader": f"channel {v % 97}",
        "channel": f"channel {v % 97}",
        "license": ["Creative Commons Attribution license (reuse allowed)", None][v % 2],
        "language": "en",
        "duration_s": duration,
        "width": w,
        "height": h,
        "fps": 30.0,
        "has_audio": True,
        "speech_ratio": float(0.6 + 0.1 * audio[0]),
        "loudness_db": float(-23 + 3 * audio[1]),
        "loudness_trend_db_per_min": float(0.1 * audio[2]),
        "periodicity": float(0.3 + 0.1 * audio[3]),
        "period_s": 2.0,
        "serial_correlation": float(0.8 + 0.05 * audio[4]),
        "skewness": float(0.1 * audio[5]),
        "kurtosis": float(1 + 0.5 * audio[6]),
        "hurst": float(0.7 + 0.05 * audio[7]),
        "asr_backend": "pocketsphinx",
        "transcript": transcript,
        "keywords": keywords,
        "n_keywords": len({k["lemma"] for k in keywords}),
        "frames_sampled": int(merged.sum()),
        "frames_kept": frames,
        "frames_dropped": int(merged.sum() - frames),
        "n_labels": len({label for r in rows for label in r["labels"]}),
        "frames": rows,
    }


def make_dataset(root: Path, frames: int, videos: int, args: argparse.Namespace) -> dict[str, Any]:
    """Write the dataset into `root` unless a finished one is there; return its notes."""
    notes_path = root / "bench.json"
    if notes_path.exists():
        return dict(json.loads(notes_path.read_text()))
    from vidray.config import OutputConfig
    from vidray.sink import write_part

    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    words = vocabulary(args.vocab, np.random.default_rng(args.seed))
    cdf = zipf_sampler(args.vocab)
    per_video = np.full(videos, frames // videos) + (np.arange(videos) < frames % videos)
    batch = 50  # videos per committed part: a few MB of rows in memory at a time
    for lo in range(0, videos, batch):
        rows = [
            video_row(v, int(per_video[v]), args, words, cdf)
            for v in range(lo, min(videos, lo + batch))
        ]
        rows += [
            {
                "video_id": f"youtube:err{v:07d}",
                "source": f"https://www.youtube.com/watch?v=err{v:07d}",
                "error": "HTTP Error 404: Not Found",
                "error_stage": "fetch",
                "error_reason": "not_found",
                "error_type": "DownloadError",
                "attempts": 1,
            }
            for v in range(lo, min(videos, lo + batch))
            if v % 100 == 99
        ]
        write_part(str(root), rows, OutputConfig())
    notes = {
        "frames": frames,
        "videos": videos,
        "seconds": round(time.perf_counter() - start, 1),
        "bytes": folder_size(root)[0],
    }
    notes_path.write_text(json.dumps(notes))
    return notes


def folder_size(path: Path) -> tuple[int, int, int]:
    """(bytes on disk, apparent bytes, files) under `path`."""
    disk = apparent = files = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            disk, apparent, files = disk + st.st_blocks * 512, apparent + st.st_size, files + 1
    return disk, apparent, files


# ---- measurements, each in a fresh process -------------------------------------------------------


def peak_mb() -> float:
    """This process's peak RSS in MB. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    fork and exec, so a spawned child would report its parent's size at the spawn."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_fresh_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run_report(root: str, site: str, gallery: int) -> dict[str, Any]:
    """write_report with the functions dataset_report calls timed; peak RSS of this process."""
    import vidray.report.charts as charts
    import vidray.report.dataset as ds
    from vidray.progress import set_mode
    from vidray.report import write_report

    set_mode("none")
    phases: dict[str, float] = {}
    peaks: dict[str, float] = {}  # the process's peak RSS when the phase last ended

    def timed(module: Any, name: str, phase: str) -> None:
        fn = getattr(module, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - start
                peaks[phase] = peak_mb()

        setattr(module, name, wrapper)

    timed(ds, "read_videos", "read videos/ and errors/")
    timed(ds, "read_table", "read videos/ and errors/")
    timed(ds, "scan_frames", "scan frames/ (labels as ids)")
    timed(ds, "pmi", "PMI of the top 200 labels")
    for name in ("label_frequency_chart", "histograms_chart", "audio_chart", "pmi_heatmap"):
        timed(charts, name, "charts (matplotlib)")
    timed(ds, "write_gallery", "gallery: thumbnails + record chunks")
    timed(ds, "write_label_index", "per-label index files")
    timed(ds, "write_timelines", "timelines (one file per video)")
    before = peak_mb()
    start = time.perf_counter()
    summary = write_report(site, root=root, gallery=gallery)
    total = time.perf_counter() - start
    phases["other (overview, JSON of labels/videos, HTML)"] = total - sum(phases.values())
    return {
        "seconds": total,
        "phases": phases,
        "peaks": peaks,
        "peak_mb": peak_mb(),
        "before_mb": before,
        "summary": {k: summary["dataset"][k] for k in ("frames", "gallery", "labels", "videos")},
    }


def read_floor(root: str, with_images: bool) -> dict[str, Any]:
    """The scan's columns read whole by plain pyarrow: the floor for `scan_frames`."""
    import pyarrow.dataset as pads

    from vidray.report.scan import SCAN_COLUMNS

    columns = [c for c in SCAN_COLUMNS if with_images or c != "image"]
    start = time.perf_counter()
    table = pads.dataset(f"{root}/frames", format="parquet").to_table(columns=columns)
    return {"seconds": time.perf_counter() - start, "peak_mb": peak_mb(), "rows": table.num_rows}


def thumbnails(jpegs: list[bytes]) -> dict[str, float]:
    """Frames per second, one thread, best of 3: naive PIL, vidray, and a draft sized to the
    thumbnail's box (what `thumbnail` would ask for with the frame's aspect ratio)."""
    from PIL import Image

    from vidray.report.gallery import THUMB_PX, THUMB_QUALITY, thumbnail

    def save(im: Image.Image) -> bytes:
        out = io.BytesIO()
        im.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
        return out.getvalue()

    def naive(jpeg: bytes) -> bytes:
        im = Image.open(io.BytesIO(jpeg)).convert("RGB")
        im.thumbnail((THUMB_PX, THUMB_PX))
        return save(im)

    def boxed_draft(jpeg: bytes) -> bytes:
        with Image.open(io.BytesIO(jpeg)) as im:
            scale = THUMB_PX / max(im.size)
            im.draft("RGB", (max(1, int(im.width * scale)), max(1, int(im.height * scale))))
            small = im.convert("RGB")
        small.thumbnail((THUMB_PX, THUMB_PX))
        return save(small)

    speeds = {}
    for name, fn in (("naive", naive), ("vidray", thumbnail), ("boxed", boxed_draft)):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for j in jpegs:
                fn(j)
            best = min(best, time.perf_counter() - start)
        speeds[name] = len(jpegs) / best
    return speeds


def sample_jpegs(root: Path, n: int, args: argparse.Namespace) -> tuple[list[bytes], list[bytes]]:
    """n of the dataset's frame JPEGs (evenly spread), and n pictures of the same generator at
    the size `vidray build` stores (short side 256)."""
    import pyarrow.dataset as pads

    from vidray.stages.decode import encode_jpeg

    table = pads.dataset(f"{root}/frames", format="parquet").to_table(columns=["image"])
    picks = np.linspace(0, table.num_rows - 1, min(n, table.num_rows)).astype(np.int64)
    small = table.column("image").take(picks).to_pylist()
    rng = np.random.default_rng(args.seed)
    h, w = 256, round(256 * args.width / args.height)
    base = background(rng.uniform(40, 215, 3).astype(np.float32), h, w)
    large = [encode_jpeg(picture(base, i, rng), 90) for i in range(len(small))]
    return small, large


# ---- the page in headless Chromium -------------------------------------------------------------

RENDERED_JS = "(n) => document.querySelectorAll('#grid figure').length >= n && performance.now()"
CHANGED_JS = "(t) => document.querySelector('#page-info').textContent !== t && performance.now()"
HAS_LABEL_JS = (
    "(l) => document.querySelector('#page-info').textContent.includes(l) && performance.now()"
)
# The page scrolls itself to the first video's timeline once that has loaded, maybe after the
# grid was scrolled into view: scroll it back until its thumbnails are in view.
THUMBS_SHOWN_JS = """() => {
  const seen = [...document.querySelectorAll('#grid img')].filter((img) => {
    const box = img.getBoundingClientRect();
    return box.bottom > 0 && box.top < innerHeight;
  });
  if (!seen.length) document.getElementById('grid').scrollIntoView();
  return seen.length > 0 && seen.every((img) => img.complete && img.naturalWidth > 0)
    && performance.now();
}"""


def open_site(site: Path, gallery: int, label: str) -> dict[str, Any]:
    """In-page milliseconds to the first gallery page, its thumbnails in view, the next page and
    the label filter; bytes of the site's files requested by the first page."""
    from vidray.testing.browser import open_page, page_url

    with open_page("about:blank", timeout_s=60, deadline_s=300) as checked:
        page = checked.page
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        start = time.perf_counter()
        page.goto(page_url(site), wait_until="commit")
        first = page.wait_for_function(RENDERED_JS, arg=min(PAGE, gallery), polling="raf")
        out: dict[str, Any] = {"first_ms": first.json_value()}
        out["first_wall_ms"] = 1000 * (time.perf_counter() - start)
        out["bytes"] = requested_bytes(site, requested)
        t0 = page.evaluate("performance.now()")
        out["thumbs_ms"] = page.wait_for_function(THUMBS_SHOWN_JS, polling="raf").json_value() - t0
        info = page.inner_text("#page-info")
        t0 = page.evaluate("performance.now()")
        page.click("#next")
        out["next_ms"] = (
            page.wait_for_function(CHANGED_JS, arg=info, polling="raf").json_value() - t0
        )
        t0 = page.evaluate("performance.now()")
        page.fill("#label-filter", label)
        page.dispatch_event("#label-filter", "change")
        done = page.wait_for_function(HAS_LABEL_JS, arg=label, polling="raf").json_value()
        out["filter_ms"] = done - t0
        out["filter_frames"] = page.locator("#grid figure").count()
        out["problems"] = [
            *(m.text for m in checked.console if m.is_error),
            *checked.page_errors,
            *(f"{r.url} {r.reason}" for r in checked.failed_requests),
        ]
    return out


def requested_bytes(site: Path, urls: list[str]) -> dict[str, Any]:
    """Bytes of the site's requested files: each data script, thumbnails, and the rest."""
    sizes: dict[str, Any] = {"data": {}, "thumbs": 0, "other": 0}
    root = site.resolve()
    for url in urls:
        parts = urlsplit(url)
        path = Path(unquote(parts.path))
        if parts.scheme != "file" or not path.exists():
            continue
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        if rel.startswith("data/"):
            sizes["data"][rel] = path.stat().st_size
        else:
            sizes["thumbs" if rel.startswith("thumbs/") else "other"] += path.stat().st_size
    return sizes


def browser_best(site: Path, gallery: int, label: str, runs: int) -> dict[str, Any]:
    results = [open_site(site, gallery, label) for _ in range(runs)]
    best = dict(results[0])
    for key in ("first_ms", "first_wall_ms", "thumbs_ms", "next_ms", "filter_ms"):
        best[key] = min(r[key] for r in results)
    best["problems"] = sorted({p for r in results for p in r["problems"]})
    return best


def top_label(site: Path) -> str:
    text = (site / "data" / "labels.js").read_text(encoding="utf-8")
    return str(json.loads(text[text.index(",") + 1 : text.rindex(")")])[0][0])


# ---- the command ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--videos", type=int, default=2_000)
    p.add_argument("--gallery", type=int, default=50_000, help="write_report's gallery limit")
    p.add_argument("--vocab", type=int, default=5_000, help="distinct labels (Zipf ranks)")
    p.add_argument("--words", type=int, default=400, help="transcript words per video")
    p.add_argument("--size", default="96x54", help="frame JPEG size, WxH")
    p.add_argument("--small-frames", type=int, default=1_000, help="the small dataset's frames")
    p.add_argument("--thumbs", type=int, default=2_000, help="frames for the thumbnail reference")
    p.add_argument("--browser-runs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="/tmp/vidray-bench-report")
    args = p.parse_args(argv)
    args.width, args.height = (int(x) for x in args.size.split("x"))
    out = Path(args.out)
    tag = f"v{args.vocab}-w{args.words}-{args.size}-s{args.seed}"
    small_videos = max(1, round(args.small_frames * args.videos / args.frames))
    sets = {
        "large": (args.frames, args.videos),
        "small": (args.small_frames, small_videos),
    }
    notes, report, browser = {}, {}, {}
    for name, (frames, videos) in sets.items():
        root = out / f"data-f{frames}-n{videos}-{tag}"
        notes[name] = in_fresh_process(make_dataset, root, frames, videos, args)
        site = out / f"site-{name}"
        shutil.rmtree(site, ignore_errors=True)  # not the report's work: a fresh folder
        report[name] = in_fresh_process(run_report, str(root), str(site), args.gallery)
        report[name]["site"] = folder_size(site)
    large = out / f"data-f{args.frames}-n{args.videos}-{tag}"
    floor = in_fresh_process(read_floor, str(large), False)
    floor_images = in_fresh_process(read_floor, str(large), True)
    idle = in_fresh_process(run_nothing)
    small_jpegs, build_jpegs = sample_jpegs(large, args.thumbs, args)
    thumbs = {"dataset": thumbnails(small_jpegs), "build": thumbnails(build_jpegs)}
    label = top_label(out / "site-large")
    for name in sets:
        gallery = report[name]["summary"]["gallery"]
        browser[name] = browser_best(
            out / f"site-{name}",
            gallery,
            label if name == "large" else top_label(out / "site-small"),
            args.browser_runs,
        )

    print_results(args, notes, report, floor, floor_images, idle, thumbs, browser, label)
    print(f"command: python bench/report.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    return 0 if not any(b["problems"] for b in browser.values()) else 1


def run_nothing() -> dict[str, Any]:
    """The peak RSS of a fresh process that imported what `run_report` imports."""
    import vidray.report.dataset  # noqa: F401
    from vidray.report import write_report  # noqa: F401

    return {"peak_mb": peak_mb()}


def print_results(
    args: argparse.Namespace,
    notes: dict[str, Any],
    report: dict[str, Any],
    floor: dict[str, Any],
    floor_images: dict[str, Any],
    idle: dict[str, Any],
    thumbs: dict[str, dict[str, float]],
    browser: dict[str, Any],
    label: str,
) -> None:
    big, small = report["large"], report["small"]
    n = big["summary"]
    load = os.getloadavg()
    print(
        f"vidray report: {n['frames']:,} frames of {n['videos']:,} videos, {n['labels']:,} labels, "
        f"gallery {n['gallery']:,}; frames {args.size} JPEG; {os.cpu_count()} CPUs, "
        f"load {load[0]:.1f}/{load[1]:.1f}"
    )
    for name, d in notes.items():
        print(
            f"{name} dataset: {d['frames']:,} frames, {d['bytes'] / 2**20:.0f} MiB, "
            f"written by write_part in {d['seconds']:.1f} s (when first made)"
        )
    print(f"\n{'write_report phase (large)':<48} {'seconds':>8} {'share':>6} {'peak RSS MB':>11}")
    for phase, secs in sorted(big["phases"].items(), key=lambda kv: -kv[1]):
        peak = big["peaks"].get(phase)
        rss = f"{peak:>11.0f}" if peak else ""
        print(f"{phase:<48} {secs:>8.2f} {secs / big['seconds']:>6.0%} {rss}")
    print(f"{'total':<48} {big['seconds']:>8.2f}")
    scan_s = big["phases"]["scan frames/ (labels as ids)"]
    print(f"\n{'measurement':<64} {'seconds':>8} {'frames/s':>10} {'peak RSS MB':>11}")
    rows = [
        ("write_report, large (end to end)", big["seconds"], n["frames"], big["peak_mb"]),
        ("write_report, small (end to end)", small["seconds"], small["summary"]["frames"], small["peak_mb"]),
        ("  scan_frames inside it (large)", scan_s, n["frames"], None),
        ("reference: pyarrow to_table, scan columns without image", floor["seconds"], floor["rows"], floor["peak_mb"]),
        ("reference: pyarrow to_table, scan columns with image", floor_images["seconds"], floor_images["rows"], floor_images["peak_mb"]),
        ("reference: fresh process, vidray.report imported", 0.0, 0, idle["peak_mb"]),
    ]  # fmt: skip
    for name, secs, frames, rss in rows:
        rate = f"{frames / secs:>10,.0f}" if secs and frames else f"{'':>10}"
        print(f"{name:<64} {secs:>8.3f} {rate} {'' if rss is None else f'{rss:>11.0f}'}")
    for name in ("large", "small"):
        disk, apparent, files = report[name]["site"]
        print(
            f"site {name}: {files:,} files, {apparent / 2**20:.1f} MiB ({disk / 2**20:.1f} MiB on disk)"
        )
    print(f"\n{'thumbnails, 1 thread, frames/s':<44} {args.size:>10} {'456x256':>10}")
    for key, name in (
        ("naive", "reference: PIL open, convert, thumbnail"),
        ("vidray", "vidray.report.gallery.thumbnail"),
        ("boxed", "draft sized to the thumbnail's box"),
    ):
        print(f"{name:<44} {thumbs['dataset'][key]:>10,.0f} {thumbs['build'][key]:>10,.0f}")
    print(
        f"\n{'headless Chromium, best of ' + str(args.browser_runs):<44} {'large':>12} {'small':>12}"
    )
    lines = [
        ("gallery frames", lambda b, r: f"{r['summary']['gallery']:,}"),
        ("first gallery page drawn (in page), ms", lambda b, r: f"{b['first_ms']:.0f}"),
        ("  same, from page.goto in Python, ms", lambda b, r: f"{b['first_wall_ms']:.0f}"),
        ("page 1 thumbnails in view loaded, ms", lambda b, r: f"{b['thumbs_ms']:.0f}"),
        ("next page, ms", lambda b, r: f"{b['next_ms']:.0f}"),
        ("filter by the top label, ms", lambda b, r: f"{b['filter_ms']:.0f}"),
        ("data/ scripts loaded for page 1", lambda b, r: f"{len(b['bytes']['data'])}"),
        ("  their size, KiB", lambda b, r: f"{sum(b['bytes']['data'].values()) / 1024:,.1f}"),
        ("other files loaded for page 1, KiB", lambda b, r: f"{(b['bytes']['other'] + b['bytes']['thumbs']) / 1024:,.1f}"),
    ]  # fmt: skip
    for name, cell in lines:
        cells = [cell(browser[k], report[k]) for k in ("large", "small")]
        print(f"{name:<44} {cells[0]:>12} {cells[1]:>12}")
    print(f"top label of the large dataset: {label!r}")
    for name, b in browser.items():
        files = ", ".join(f"{k} {v / 1024:,.1f}" for k, v in sorted(b["bytes"]["data"].items()))
        print(f"data/ scripts for page 1 ({name}), KiB: {files}")
    for name, b in browser.items():
        for problem in b["problems"]:
            print(f"PAGE PROBLEM ({name}): {problem}")


if __name__ == "__main__":
    sys.exit(main())
