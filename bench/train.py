"""Training throughput: the compute ceiling, the input pipeline alone, and Ray Train end to end.

    python bench/train.py [--work /tmp/vidray-bench-train] [--frames 4096] [--frame-size 456x256]
        [--image-size 64] [--batch-size 32] [--epochs 1 3] [--widths 16 32 64 128]
        [--encoder cnn] [--loader-workers 0 2] [--set train.KEY=VALUE ...] [--json OUT]

A synthetic frames dataset (`vidray.testing.frames.picture`, 16 frames per video, 4 words,
JPEG q90 at `--frame-size`, decode's default 456x256; one Parquet part per 8 videos, as a build's
sink batches) is written into `--work` once. The training config is the embedded default with
`train.index=false`, `train.cache_dataset=false` (stream from Parquet every epoch),
`train.holdout=0.1`, `--widths` (by default a CNN smaller than the config's [32, 64, 128,
192], about 3x cheaper per image, so the run stays short), one training worker
(`num_workers=1`, `cpus_per_worker=1`; with CUDA `use_gpu=true`), then `--set` overrides.
On the training videos' labelled frames it measures:

1. reference: `ImageWordModel.training_step` + backward + AdamW step on prepared batches already
   in memory (on the GPU with CUDA, under the precision `train.precision=auto` picks), one
   process, with as many torch threads as Ray gives the worker (floor(cpus_per_worker), >= 1):
   the compute-bound ceiling;
2. input pipeline, no model: Parquet -> JPEG decode -> `prepare_batch` -> batches, through the
   plain `FrameDataModule` loader (per `--loader-workers`) and through Ray Data as `train()`
   builds it (`open_dataset(...).map_batches(prepare_batch)` -> `iter_torch_batches`, Ray
   started with all cores); best of two passes;
3. end to end: `vidray.train.ray_train.train()` for each of `--epochs`: images/s =
   labelled training frames x epochs / train_seconds (worker start-up and the per-epoch
   validation on held-out frames included); steady state = frames x (e2 - e1) / (t2 - t1).
   With CUDA, nvidia-smi is sampled every 0.5 s: the mean GPU utilisation over the run and
   over its busy span (first to last non-zero sample).

The reference is taken again at the end: the pair shows how far other work on the machine
moved the figures. "machine cores busy" is the CPU time of every process on the machine
(/proc/stat, other jobs included) over the wall time: near the core count, the CPU is full.
Ray Data's rate vs the reference says which one bounds training; end to end vs the reference
is the efficiency. Linux; a markdown table on stdout and `--json` (default WORK/train.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

CLK_TCK = os.sysconf("SC_CLK_TCK")
FRAMES_PER_VIDEO = 16
VIDEOS_PER_PART = 8
COLUMNS = ["video_id", "frame_ts", "image", "labels", "label_scores"]


def machine_cpu_s() -> float:
    """CPU seconds all processes on the machine have used since boot (/proc/stat)."""
    user, nice, system, _, _, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def measured(fn: Any, *args: Any) -> dict:
    """`fn(*args)`'s result with its wall time and the whole machine's CPU time meanwhile."""
    c0, t0 = machine_cpu_s(), time.perf_counter()
    out = fn(*args)
    return {**out, "wall_s": time.perf_counter() - t0, "machine_cpu_s": machine_cpu_s() - c0}


def write_frames(root: Path, frames: int, size: tuple[int, int], seed: int = 0) -> None:
    """`frames` labelled frames (rounded down to whole videos) as `vidray build` writes them:
    the rows of `vidray.testing.frames.write_frames_dataset`, at `size`, several parts."""
    from vidray.config import OutputConfig
    from vidray.sink import write_part
    from vidray.stages.decode import encode_jpeg
    from vidray.testing.frames import FILLER, PICTURES, picture

    rng, (w, h) = np.random.default_rng(seed), size
    videos = []
    for v in range(max(len(PICTURES), frames // FRAMES_PER_VIDEO)):
        word = list(PICTURES)[v % len(PICTURES)]
        rows = []
        for i in range(FRAMES_PER_VIDEO):
            side = max(w, h)
            img = np.ascontiguousarray(picture(word, rng, side)[:h, :w])
            label = {"labels": [word, FILLER], "label_scores": [0.9, 0.5]}
            rows.append({"frame_ts": 2.0 * i, "span_start": 2.0 * i, "span_end": 2.0 * i + 2,
                         "merged": 1, "image": encode_jpeg(img, 90), "width": w, "height": h,
                         "phash": 0, "words": ["look", "at", "the", word], **label})  # fmt: skip
        vid = f"{word}-{v}"
        videos.append({"video_id": vid, "source": f"/videos/{vid}.mp4", "frames": rows})
    for k in range(0, len(videos), VIDEOS_PER_PART):
        write_part(str(root), videos[k : k + VIDEOS_PER_PART], OutputConfig())


def loader_rate(root: str, split: dict, vocab: list[str], cfg: Any, workers: int) -> dict:
    """Images/s the plain `FrameDataModule` loader delivers (best of two passes), and the
    batches of the last pass."""
    from vidray.train.datamodule import FrameDataModule

    dm = FrameDataModule(root, vocab, split, cfg.image_size, cfg.batch_size, cfg.mil_neighbours,
                         cfg.mil_window_s, cfg.bag_size, workers, cfg.seed)  # fmt: skip
    loader, best, batches = dm.train_dataloader(), float("inf"), []
    for _ in range(2):
        t0 = time.perf_counter()
        batches = list(loader)
        best = min(best, time.perf_counter() - t0)
    n = sum(len(b["image"]) for b in batches)
    return {"images": n, "seconds": best, "images_per_s": n / best, "batches": batches}


def ray_data_rate(root: str, train_ids: list[str], vocab: list[str], cfg: Any) -> dict:
    """Images/s of the Ray Data path `train()` builds, without the model (best of two passes)."""
    from vidray.dataset import open_dataset
    from vidray.train.data import prepare_batch

    kwargs = {"vocab": vocab, "video_ids": train_ids, "image_size": cfg.image_size,
              "neighbours": cfg.mil_neighbours, "window_s": cfg.mil_window_s,
              "bag_size": cfg.bag_size}  # fmt: skip
    ds = open_dataset(root, columns=COLUMNS, decode_images=False, unique=cfg.unique)
    prepare: Any = prepare_batch
    ds = ds.map_batches(prepare, fn_kwargs=kwargs, batch_format="numpy", batch_size=256)
    best, n = float("inf"), 0
    for _ in range(2):
        t0, n = time.perf_counter(), 0
        for batch in ds.iter_torch_batches(
            batch_size=cfg.batch_size,
            local_shuffle_buffer_size=4 * cfg.batch_size,
            prefetch_batches=cfg.prefetch_batches,
        ):
            n += len(batch["image"])
        best = min(best, time.perf_counter() - t0)
    return {"images": n, "seconds": best, "images_per_s": n / best}


def compute_rate(batches: list[dict], cfg: Any, vocab_size: int, steps: int) -> dict:
    """Images/s of training steps (augment, forward, backward, AdamW) on in-memory batches."""
    import torch

    from vidray.train.model import ImageWordModel
    from vidray.train.ray_train import model_args, precision

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(cfg.seed)
    model = ImageWordModel(**model_args(cfg, vocab_size, steps)).to(device).train()
    opt = model.configure_optimizers()["optimizer"]
    mode = precision(cfg.precision, cuda)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(mode)
    scaler = torch.amp.GradScaler(enabled=mode == "16-mixed")
    on_device = [{k: v.to(device) for k, v in b.items()} for b in batches if len(b["image"])]
    on_device = [b for b in on_device if len(b["image"]) == cfg.batch_size] or on_device

    def step(i: int) -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model.training_step(on_device[i % len(on_device)], i)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    with warnings.catch_warnings():  # self.log() outside a Trainer warns and does nothing
        warnings.simplefilter("ignore")
        for i in range(3):  # warm-up: allocator, cuDNN autotune
            step(i)
        if cuda:
            torch.cuda.synchronize()
        t0, n = time.perf_counter(), 0
        for i in range(steps):
            step(i)
            n += len(on_device[i % len(on_device)]["image"])
        if cuda:
            torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds, "precision": mode,
            "threads": torch.get_num_threads(), "device": str(device)}  # fmt: skip


@contextlib.contextmanager
def gpu_utilisation(period: float = 0.5) -> Iterator[list[float]]:
    """GPU utilisation (%) from nvidia-smi every `period` s while in the `with` block."""
    cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(period):
            out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
            samples.extend(float(x) for x in out.split()[:1])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def end_to_end(root: str, out: Path, cfg: Any, gpu: bool) -> dict:
    """`train()` into a fresh `out`: its images/s, and the mean GPU utilisation over the run
    and over its busy span (first to last non-zero sample)."""
    from vidray.train.ray_train import train

    shutil.rmtree(out, ignore_errors=True)
    sampler: contextlib.AbstractContextManager[list[float]] = (
        gpu_utilisation() if gpu else contextlib.nullcontext([])
    )
    with sampler as util:
        summary = train(root, str(out), cfg)
    images = summary["labelled_train_frames"] * summary["epochs_done"]
    seconds, busy = summary["train_seconds"], [i for i, x in enumerate(util) if x > 0]
    span = util[busy[0] : busy[-1] + 1] if busy else []
    return {"epochs": summary["epochs_done"], "images": images, "seconds": seconds,
            "images_per_s": images / seconds, "rows": sum(summary["rows_per_rank"]),
            "gpu_util_mean": float(np.mean(util)) if util else None, "gpu_samples": len(util),
            "gpu_util_busy_mean": float(np.mean(span)) if span else None}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default="/tmp/vidray-bench-train")
    p.add_argument("--frames", type=int, default=4096, help="dataset size (16 per video)")
    p.add_argument("--frame-size", default="456x256", help="stored JPEG WxH")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, nargs=2, default=[1, 3], help="two end-to-end runs")
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128], help="CNN")
    p.add_argument("--encoder", default="cnn")
    p.add_argument("--loader-workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--steps", type=int, default=60, help="reference training steps")
    p.add_argument("--set", action="append", default=[], help="train.KEY=VALUE override")
    p.add_argument("--json")
    args = p.parse_args(argv)
    import torch

    from vidray.config import load_config
    from vidray.train.ray_train import plan_split

    gpu = torch.cuda.is_available()
    overrides = [
        "train.index=false", "train.cache_dataset=false", "train.holdout=0.1",
        "train.num_workers=1", "train.cpus_per_worker=1", f"train.use_gpu={str(gpu).lower()}",
        f"train.image_size={args.image_size}", f"train.batch_size={args.batch_size}",
        f"train.encoder={args.encoder}",
        f"train.widths={args.widths}", *args.set,
    ]  # fmt: skip
    cfg = load_config(overrides=overrides).train
    work = Path(args.work)
    size = tuple(int(x) for x in args.frame_size.split("x"))
    root = work / f"frames-{args.frames}-{args.frame_size}"
    if not (root / "frames").is_dir():
        write_frames(root, args.frames, size)  # type: ignore[arg-type]
    train_ids, heldout_ids, vocab, labelled = plan_split(str(root), work / "plan", cfg, False)
    split = {"train": train_ids, "heldout": heldout_ids}

    cmd = "python bench/train.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(cmd)
    print(f"{labelled} labelled training frames ({len(train_ids)} videos), vocabulary "
          f"{len(vocab)}; CUDA: {gpu}; load average at start {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores\n", flush=True)  # fmt: skip
    results: dict[str, Any] = {"command": cmd, "overrides": overrides, "labelled": labelled}
    rows: list[tuple[str, dict]] = []
    for workers in args.loader_workers:
        r = measured(loader_rate, str(root), split, vocab, cfg, workers)
        batches = r.pop("batches")
        rows.append((f"input: FrameDataModule, {workers} loader workers", r))
    torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    ref = measured(compute_rate, batches, cfg, len(vocab), args.steps)
    rows.insert(0, (f"reference: train step on in-memory batches ({ref['device']}, "
                    f"{ref['threads']} thread, {ref['precision']})", ref))  # fmt: skip
    import logging

    import ray

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # per-dataset progress lines
    ray.init(num_cpus=os.cpu_count(), log_to_driver=False, include_dashboard=False)
    ray_in = measured(ray_data_rate, str(root), train_ids, vocab, cfg)
    rows.append(("input: Ray Data map_batches -> iter_torch_batches", ray_in))
    runs = []
    for e in args.epochs:
        cfg.epochs = e
        runs.append(measured(end_to_end, str(root), work / f"model-e{e}", cfg, gpu))
        how = "cached in the object store" if cfg.cache_dataset else "streamed from Parquet"
        rows.append((f"end to end: train(), {e} epoch(s), {how}", runs[-1]))
    ray.shutdown()
    (a, b), dt = runs, runs[1]["seconds"] - runs[0]["seconds"]
    images = b["images"] - a["images"]
    steady = {"images": images, "seconds": dt, "images_per_s": images / dt if dt > 0 else 0.0,
              **{k: b[k] - a[k] for k in ("wall_s", "machine_cpu_s")}}  # fmt: skip
    rows.append((f"end to end, steady state ({args.epochs[1]} - {args.epochs[0]} epochs)", steady))
    again = measured(compute_rate, batches, cfg, len(vocab), args.steps)
    rows.append(("reference again, after the runs (drift)", again))

    print("| measurement | images | seconds | images/s | vs reference | machine cores busy "
          "| GPU util % (busy) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        util = ""
        if r.get("gpu_util_mean") is not None:
            util = f"{r['gpu_util_mean']:.0f} ({r['gpu_util_busy_mean']:.0f})"
        print(f"| {name} | {r['images']} | {r['seconds']:.1f} | {r['images_per_s']:.0f} | "
              f"{r['images_per_s'] / ref['images_per_s']:.2f}x | "
              f"{r['machine_cpu_s'] / r['wall_s']:.2f} | {util} |")  # fmt: skip
    feed = ray_in["images_per_s"]  # the path train() streams through
    slower = "the input pipeline" if feed < ref["images_per_s"] else "compute"
    print(f"\nalone, Ray Data delivers {feed:.0f} images/s and the model takes "
          f"{ref['images_per_s']:.0f}: {slower} is the slower part; end to end, steady state "
          f"{steady['images_per_s'] / ref['images_per_s']:.0%} of the reference")  # fmt: skip
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    results["rows"] = [{"name": n, **r} for n, r in rows]
    Path(args.json or work / "train.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
