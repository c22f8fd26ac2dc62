"""Label quality vs. labelling settings on generated narrated videos (stages in-process, no Ray).

Decodes and transcribes each sample video once, then re-runs keywords → shots → dedup → label
for a grid of settings and scores each against the ground truth: label precision (labels said
during the frame's scene) and subject recall (frames whose labels include the scene's subject).

    python bench/labels.py SAMPLE_DIR [--vocabulary FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

from vidray.config import BuildConfig
from vidray.evaluate import load_truths, scene_lemmas
from vidray.sources import expand_inputs
from vidray.stages.decode import DecodeStage
from vidray.stages.dedup import DedupStage
from vidray.stages.keywords import KeywordsStage, load_nlp
from vidray.stages.label import LabelStage
from vidray.stages.shots import ShotsStage
from vidray.stages.transcribe import TranscribeStage


def score(rows: list[dict], truths: dict, said: dict) -> dict[str, float]:
    n_labels = n_right = n_frames = n_subject = 0
    for row in rows:
        name = Path(row["source"]).name
        truth = truths[name]
        for f in row["frames"]:
            idx = next(
                (i for i, s in enumerate(truth.scenes) if s.start <= f["frame_ts"] < s.end), None
            )
            if idx is None:
                continue
            n_frames += 1
            n_subject += truth.scenes[idx].subject in f["labels"]
            n_labels += len(f["labels"])
            n_right += sum(lab in said[name][idx] for lab in f["labels"])
    return {
        "precision": round(n_right / max(n_labels, 1), 3),
        "subject_recall": round(n_subject / max(n_frames, 1), 3),
        "labels_per_frame": round(n_labels / max(n_frames, 1), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("samples")
    ap.add_argument(
        "--vocabulary", help="transcribe.vocabulary (default: the general English model)"
    )
    args = ap.parse_args()
    cfg = BuildConfig()
    cfg.transcribe.vocabulary = args.vocabulary
    truths = load_truths(args.samples)
    nlp = load_nlp("blank:en")
    said = {n: scene_lemmas(t, nlp) for n, t in truths.items()}
    rows = expand_inputs([args.samples])
    t0 = time.time()
    rows = TranscribeStage(cfg.transcribe)(DecodeStage(cfg.decode)(rows)).to_pylist()
    rows = KeywordsStage(cfg.keywords)(rows).to_pylist()
    asr_s = time.time() - t0
    audio_s = sum(r["duration_s"] for r in rows)
    print(
        json.dumps(
            {"videos": len(rows), "audio_s": round(audio_s), "decode_transcribe_s": round(asr_s, 1)}
        )
    )
    grid = itertools.product([True, False], [0.5, 0.7], [3.0, 6.0, 10.0], [0.3, 0.5])
    for shots_on, min_word, window, min_score in grid:
        c = dataclasses.replace(cfg)
        c.shots = dataclasses.replace(cfg.shots, enabled=shots_on)
        c.label = dataclasses.replace(
            cfg.label, min_word_score=min_word, before_s=window, after_s=window, min_score=min_score
        )
        out = LabelStage(c.label)(DedupStage(c.dedup)(ShotsStage(c.shots)(rows))).to_pylist()
        setting = {
            "shots": shots_on,
            "min_word_score": min_word,
            "window_s": window,
            "min_score": min_score,
        }
        print(json.dumps({**setting, **score(out, truths, said)}))


if __name__ == "__main__":
    main()
