"""Dedup quality and speed on generated scenes whose near-duplicates are known.

    python bench/dedup.py --work /tmp/vidray-dedup [--videos 6] [--minutes 4] [--seed 0]
                          [--distances 4 6 8 10 12]

`vidray.testing.scenes` draws videos (640x360, H.264) of static shots (photos, flat drawings,
slides, a shot returned to after a cutaway), near-static ones (camera shake, slow zoom,
flicker, grain, a blinking cursor, a talking head), moving ones (pans, objects crossing the
frame) and hard negatives (different pictures sharing layout and colours, slides one line of
text apart), with ground truth for every sampled frame: which earlier sampled frames show the
same picture. They are made once into `--work` and reused (delete it after changing the
generator).

The real DecodeStage samples them (one frame every 3 s); the real DedupStage runs at each
`max_distance`, next to phash alone (the method before the local-change check) for comparison. Per scene
kind and overall:

- duplicates removed: sampled frames showing the same picture as an earlier one that were
  dropped into a kept frame of that picture (goal >= 95%);
- distinct wrongly removed: frames showing a picture not seen before that were dropped
  (goal <= 2%).

Speed: DedupStage frames/s against, in the same run and on the same JPEGs, PIL decoding them to
grey alone and a plain numpy phash (decode + 32x32 resize + DCT). Embedding dedup is not
measured: offline only tiny random image models exist, whose similarities mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
import time
from collections import Counter
from typing import Any

import numpy as np

from vidray.config import DecodeConfig, DedupConfig
from vidray.stages.decode import DecodeStage
from vidray.stages.dedup import (
    MAX_CHANGED,
    DedupStage,
    Look,
    changed_windows,
    dedup_frames,
    distance,
    jpeg_look,
    phash,
    phash_pixels,
)
from vidray.testing.scenes import (
    KINDS,
    ScenesTruth,
    dedup_outcomes,
    load_scenes_truth,
    make_scene_videos,
)

GOAL_REMOVED, GOAL_WRONG = 0.95, 0.02


def score(results: list[tuple[list[str], ScenesTruth]]) -> dict[str, tuple[int, int, int, int]]:
    """kind → (duplicates, of them removed, distinct, of them removed), plus `all`."""
    c: Counter[tuple[str, str]] = Counter()
    for outs, truth in results:
        for o, f in zip(outs, truth.frames, strict=True):
            for kind in (f.kind, "all"):
                c[kind, "dup"] += bool(f.duplicates)
                c[kind, "dup_removed"] += bool(f.duplicates) and o == "removed"
                c[kind, "distinct"] += not f.duplicates
                c[kind, "distinct_removed"] += not f.duplicates and o != "kept"
    return {
        k: (c[k, "dup"], c[k, "dup_removed"], c[k, "distinct"], c[k, "distinct_removed"])
        for k in [*KINDS, "all"]
    }


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "–"


def phash_only(frame: dict[str, Any]) -> Look:
    return Look(phash(frame["image"]))


def margins(rows: list[dict[str, Any]], truths: list[ScenesTruth], cfg: DedupConfig) -> str:
    """The local check's closest calls: the most changed windows between a frame and the last
    earlier frame of its picture, and the fewest between frames of different pictures (up to
    10 samples apart) that look alike overall."""
    same: tuple[int, str] = (0, "")
    other: tuple[int, str] = (1 << 30, "")
    for row, truth in zip(rows, truths, strict=True):
        looks = [jpeg_look(f["image"]) for f in row["frames"]]
        for i, f in enumerate(truth.frames):
            for j in range(max(0, i - 10), i):
                is_same = truth.frames[j].picture == f.picture
                alike = distance(looks[j], looks[i], cfg.max_distance, cfg.min_similarity)
                if (is_same and j != f.duplicates[-1]) or (not is_same and alike is None):
                    continue
                a, b = looks[j].thumb, looks[i].thumb
                assert a is not None and b is not None
                n = changed_windows(a, b)
                same, other = (
                    (max(same, (n, f.variant)), other)
                    if is_same
                    else (same, min(other, (n, f.variant)))
                )
    return (
        f"local check margins (different pictures: more than {MAX_CHANGED} changed windows): "
        f"same picture at most {same[0]} ({same[1]}), different pictures alike overall at "
        f"least {other[0]} ({other[1]})"
    )


def best_of(n: int, fn: Any) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/vidray-dedup")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distances", type=int, nargs="+", default=[4, 6, 8, 10, 12])
    args = ap.parse_args(argv)
    t0 = time.time()
    paths = make_scene_videos(args.work, args.videos, args.minutes, args.seed)
    made_s = time.time() - t0
    truths = [load_scenes_truth(p) for p in paths]
    rows = DecodeStage(DecodeConfig())(
        [{"video_id": p.stem, "source": str(p)} for p in paths]
    ).to_pylist()
    for row, truth in zip(rows, truths, strict=True):
        assert not row.get("error"), row.get("error")
        assert [f["frame_ts"] for f in row["frames"]] == [f.ts for f in truth.frames]
    n_frames = sum(len(t.frames) for t in truths)
    video_s = sum(t.duration for t in truths)
    print(f"{len(paths)} videos, {video_s / 60:.0f} min, {n_frames} sampled frames "
          f"(made or found in {made_s:.0f} s)\n")  # fmt: skip

    cfg = DedupConfig()
    kinds = [*KINDS, "all"]
    print("| max_distance | method | "
          + " | ".join(f"{k}: dup removed / distinct removed" for k in kinds) + " |")  # fmt: skip
    print("| --- | --- |" + " --- |" * len(kinds))
    table: dict[tuple[int, str], dict[str, tuple[int, int, int, int]]] = {}
    for d in args.distances:
        for method in ("phash", "dedup"):
            results = []
            for row, truth in zip(rows, truths, strict=True):
                if method == "dedup":
                    c = dataclasses.replace(cfg, max_distance=d)
                    kept = DedupStage(c)([row]).to_pylist()[0]["frames"]
                else:
                    kept = dedup_frames(row["frames"], d, cfg.window, look=phash_only)
                results.append((dedup_outcomes(kept, truth), truth))
            s = table[d, method] = score(results)
            name = "phash + local check (DedupStage)" if method == "dedup" else "phash alone"
            cells = [f"{pct(s[k][1], s[k][0])} / {pct(s[k][3], s[k][2])}" for k in kinds]
            bold = "**" if d == cfg.max_distance and method == "dedup" else ""
            print(f"| {bold}{d}{bold} | {name} | " + " | ".join(cells) + " |")
    counts = table[args.distances[0], "dedup"]
    print("\nframes per kind (duplicates / distinct): "
          + ", ".join(f"{k} {counts[k][0]} / {counts[k][2]}" for k in kinds))  # fmt: skip
    if cfg.max_distance in args.distances:
        a = table[cfg.max_distance, "dedup"]["all"]
        met = a[1] / a[0] >= GOAL_REMOVED and a[3] / a[2] <= GOAL_WRONG
        print(f"goals at the default max_distance={cfg.max_distance} (overall): "
              f"removed {pct(a[1], a[0])} (>= 95%), wrongly removed {pct(a[3], a[2])} (<= 2%): "
              f"{'met' if met else 'MISSED'}")  # fmt: skip

    print(margins(rows, truths, cfg))
    jpegs = [f["image"] for row in rows for f in row["frames"]]

    def pil_grey() -> None:
        from PIL import Image

        for j in jpegs:
            Image.open(io.BytesIO(j)).convert("L").load()

    def numpy_phash() -> None:
        from PIL import Image

        for j in jpegs:
            img = Image.open(io.BytesIO(j)).convert("L").resize((32, 32))
            phash_pixels(np.asarray(img))

    stage = DedupStage(cfg)
    speeds = {
        "DedupStage (default config)": best_of(3, lambda: stage(rows)),
        "reference: PIL decode to grey alone": best_of(3, pil_grey),
        "reference: plain numpy phash (decode + resize + DCT)": best_of(3, numpy_phash),
    }
    ref = speeds["reference: PIL decode to grey alone"]
    print("\n| step | frames/s | time vs PIL decode alone |\n| --- | --- | --- |")
    for name, secs in speeds.items():
        print(f"| {name} | {n_frames / secs:,.0f} | {secs / ref:.2f}x |")
    print(f"\ncommand: python bench/dedup.py {' '.join(sys.argv[1:] if argv is None else argv)}")


if __name__ == "__main__":
    main()
