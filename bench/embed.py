"""Frame embedder throughput on CPU: `EmbedStage` against plain transformers in the same run.

    python bench/embed.py [--work /tmp/vidray-bench-embed] [--tiny-frames 256] [--vitb-frames 64]
                          [--batch-sizes 1 16 64] [--repeat 2] [--json OUT]

Two randomly initialised models, built locally (`vidray.testing.vision_models`): a tiny CLIP
(32 px, width 32) where per-frame overhead dominates, and a CLIP ViT-B/16 image tower (the
architecture of openai/clip-vit-base-patch16, 224 px) where the forward pass does. Frames are
grainy 456x256 JPEGs (decode's default 256 px short side), split into videos of 16 frames.
Each setting loads its own model (timed apart), warms up on two frames, then embeds all the
frames, best of `--repeat` on the tiny model and once on ViT-B/16. Peak RSS is the process's
(Linux VmHWM, reset before each setting's load; torch and transformers themselves included),
with the rise during the setting in brackets:

- `ref loop`: the same transformers model and `CLIPImageProcessor`, one frame at a time
  (PIL decode → processor → model → L2 norm), as a plain script would;
- `ref list`: the processor and model on the whole list of frames in one call;
- `stage bs=N`: `EmbedStage` with `embed.batch_size=N` on the videos as one Ray batch.

Times are the best of the repeats. frames/s is over wall time; frames/CPU-s over the
process's CPU time (all threads), which a busy shared machine disturbs less, so the ratio to
`ref loop` of the same model is taken on it. torch runs `--threads` threads (default 1, as in a
Ray actor with num_cpus=1; more threads on a loaded machine mostly spin). A batch size past
the frame count is one pass of all frames: only the first such size is run.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

VIDEO_FRAMES = 16


def make_jpegs(n: int, seed: int = 0) -> list[bytes]:
    """Camera-like frames: a moving synthetic picture with film grain, JPEG quality 90."""
    from PIL import Image

    from vidray.testing.media import synthetic_frame

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = synthetic_frame(i, (456, 256)).astype(np.int16)
        img += rng.integers(-12, 13, img.shape, dtype=np.int16)
        buf = io.BytesIO()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _reference(model_dir: str) -> tuple[Any, Any]:
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(model_dir).eval()
    return model, CLIPImageProcessor.from_pretrained(model_dir)


def _ref_embed(model: Any, processor: Any, jpegs: list[bytes]) -> np.ndarray:
    import torch
    from PIL import Image

    images = [Image.open(io.BytesIO(j)).convert("RGB") for j in jpegs]
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        emb = model(pixel_values=pixels).image_embeds
        return torch.nn.functional.normalize(emb, dim=-1).numpy().astype(np.float16)


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS) or its peak since the last reset (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Free what earlier settings left, then restart the peak-RSS counter (Linux)."""
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def loader(setting: str, model_dir: str, batch_size: int) -> Callable[[list[bytes]], Any]:
    """Load the setting's model; the function that embeds a list of JPEGs with it."""
    if setting.startswith("ref"):
        model, processor = _reference(model_dir)
        if setting == "ref loop":
            return lambda frames: [_ref_embed(model, processor, [j]) for j in frames]
        return lambda frames: _ref_embed(model, processor, frames)
    from vidray.config import EmbedConfig
    from vidray.stages.embed import EmbedStage

    cfg = EmbedConfig(enabled=True, model=model_dir, device="cpu", batch_size=batch_size)
    stage = EmbedStage(cfg)
    stage([])  # loads the model

    def work(frames: list[bytes]) -> Any:
        rows = [
            {"video_id": f"v{k}", "frames": [{"frame_ts": 3.0 * i, "image": j} for i, j in
                                             enumerate(frames[k : k + VIDEO_FRAMES])]}
            for k in range(0, len(frames), VIDEO_FRAMES)
        ]  # fmt: skip
        out = stage(rows)
        if "error" in out.column_names and any(out.column("error").to_pylist()):
            raise RuntimeError(f"embedding failed: {out.column('error').to_pylist()}")
        return out

    return work


def run_setting(
    setting: str, model_dir: str, batch_size: int, jpegs: list[bytes], repeat: int
) -> dict[str, Any]:
    """Load (timed apart), warm up, then embed all the frames `repeat` times: the best time,
    and the peak RSS from just before loading to the end."""
    reset_peak()
    before = rss_mb()
    t0 = time.perf_counter()
    work = loader(setting, model_dir, batch_size)
    load_s = time.perf_counter() - t0
    work(jpegs[:2])  # warm-up: first-call allocations and kernel choices
    loaded = rss_mb()
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        work(jpegs)
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    wall, cpu = best
    del work
    return {
        "setting": setting,
        "frames": len(jpegs),
        "frames_per_s": len(jpegs) / wall,
        "cpu_s_per_frame": cpu / len(jpegs),
        "load_s": load_s,
        "rss_before_mb": before,
        "rss_loaded_mb": loaded,
        "peak_rss_mb": rss_mb("VmHWM"),
    }


def bench_model(
    name: str, model_dir: Path, jpegs: list[bytes], sizes: list[int], repeat: int
) -> list[dict[str, Any]]:
    settings = [("ref loop", 1), ("ref list", len(jpegs))]
    # A batch size past the frame count is one pass of all of them, like the first such size.
    whole = [n for n in sorted(sizes) if n >= len(jpegs)][:1]
    settings += [(f"stage bs={n}", n) for n in sorted(sizes) if n < len(jpegs) or n in whole]
    results: list[dict[str, Any]] = []
    for setting, bs in settings:
        result = {"model": name, **run_setting(setting, str(model_dir), bs, jpegs, repeat)}
        results.append(result)
        ref = results[0]["cpu_s_per_frame"]
        print(
            f"| {name} | {setting} | {result['frames']} | {result['frames_per_s']:.1f} | "
            f"{1 / result['cpu_s_per_frame']:.1f} | {ref / result['cpu_s_per_frame']:.2f}x | "
            f"{result['peak_rss_mb']:.0f} (+{result['peak_rss_mb'] - result['rss_before_mb']:.0f}) |",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "vidray-bench-embed"))
    p.add_argument("--tiny-frames", type=int, default=256)
    p.add_argument("--vitb-frames", type=int, default=64, help="0 skips the ViT-B/16 model")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--repeat", type=int, default=2, help="best of this many (tiny model)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (a 1-CPU Ray actor: 1)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    from vidray.testing.vision_models import clip_vit_b16_vision, tiny_clip_vision

    torch.set_num_threads(args.threads)

    work = Path(args.work)
    models = {
        "tiny CLIP (32 px)": (tiny_clip_vision(work / "tiny_clip"), args.tiny_frames, args.repeat)
    }
    if args.vitb_frames:  # seconds per pass: once is enough, and the run stays short
        vitb = clip_vit_b16_vision(work / "vit_b16")
        models["CLIP ViT-B/16 (224 px)"] = (vitb, args.vitb_frames, 1)
    print("python bench/embed.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(
        f"torch threads: {torch.get_num_threads()}; load average at start: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n"
    )
    print(
        "| model | setting | frames | frames/s (wall) | frames/CPU-s | vs ref loop (CPU) "
        "| peak RSS MB (+ setting) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    results = []
    for name, (folder, n, repeat) in models.items():
        results += bench_model(name, folder, make_jpegs(n), args.batch_sizes, repeat)
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
