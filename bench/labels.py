"""Label quality vs. labelling settings on generated narrated videos (stages in-process, no Ray).

Decodes and transcribes each sample video once, runs keywords → shots → dedup once per shots
setting (none of them depends on the label settings), then re-runs only the label stage for a
grid of settings and scores each against the ground truth: label precision (labels said during
the frame's scene) and subject recall (frames whose labels include the scene's subject).

The grid: the label window before/after each frame's span, symmetric and asymmetric (speech
may lead or lag the picture), with shots on, min_word_score 0.7 and min_score 0.5; a few
contrast rows (shots off, min_word_score 0.5, min_score 0.3); and salience_weight at the
default window and two before-weighted ones. One JSON line per setting, then the results as a markdown table.

    python bench/labels.py SAMPLE_DIR [--vocabulary FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import NamedTuple

from vidray.config import BuildConfig
from vidray.evaluate import load_truths, score_labels
from vidray.sources import expand_inputs
from vidray.stages.decode import DecodeStage
from vidray.stages.dedup import DedupStage
from vidray.stages.keywords import KeywordsStage, load_nlp
from vidray.stages.label import LabelStage
from vidray.stages.shots import ShotsStage
from vidray.stages.transcribe import TranscribeStage


class Setting(NamedTuple):
    shots: bool
    min_word_score: float
    before_s: float
    after_s: float
    min_score: float
    salience_weight: float


# (before_s, after_s): symmetric and asymmetric label windows.
WINDOWS = [(3, 3), (6, 6), (10, 10), (5, 10), (10, 5), (15, 5), (5, 15), (10, 15), (15, 10)]


def grid() -> list[Setting]:
    out = [Setting(True, 0.7, b, a, 0.5, 0.0) for b, a in WINDOWS]
    # Contrast rows: shots off, a lower recognizer-confidence cut, a lower score cut.
    out += [
        Setting(True, 0.5, 3, 3, 0.3, 0.0),
        Setting(True, 0.5, 10, 10, 0.5, 0.0),
        Setting(False, 0.5, 3, 3, 0.3, 0.0),
        Setting(False, 0.5, 10, 10, 0.5, 0.0),
        Setting(False, 0.7, 10, 10, 0.5, 0.0),
    ]
    # Salience folded into the label weight, at the default window (0: the first 10/10 row).
    out += [Setting(True, 0.7, 10, 10, 0.5, w) for w in (0.25, 0.5, 1.0)]
    # ... and at the before-weighted windows.
    out += [Setting(True, 0.7, b, a, 0.5, w) for b, a in [(15, 5), (15, 10)] for w in (0.25, 0.5)]
    return out


def fmt(x: float) -> str:
    return f"{x:g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("samples", help="folder of sample videos with ground-truth JSON")
    ap.add_argument(
        "--vocabulary", help="asr.pocketsphinx.vocabulary (default: the general English model)"
    )
    args = ap.parse_args()
    cfg = BuildConfig()
    cfg.asr.pocketsphinx.vocabulary = args.vocabulary
    truths = load_truths(args.samples)
    nlp = load_nlp("blank:en")
    rows = expand_inputs([args.samples])
    t0 = time.time()
    rows = TranscribeStage(cfg.asr)(DecodeStage(cfg.decode)(rows)).to_pylist()
    rows = KeywordsStage(cfg.keywords)(rows).to_pylist()
    asr_s = time.time() - t0
    audio_s = sum(r.get("duration_s") or 0 for r in rows)
    errors = [(r.get("source"), r.get("error")) for r in rows if r.get("error")]
    print(
        json.dumps(
            {
                "videos": len(rows),
                "errors": errors,
                "audio_s": round(audio_s),
                "decode_transcribe_s": round(asr_s, 1),
            }
        ),
        flush=True,
    )
    settings = grid()
    # Shots and dedup do not depend on the label settings: run them once per shots setting.
    prepared = {}
    for shots_on in sorted({s.shots for s in settings}, reverse=True):
        t1 = time.time()
        shots_cfg = dataclasses.replace(cfg.shots, enabled=shots_on)
        out = DedupStage(cfg.dedup)(ShotsStage(shots_cfg)(rows)).to_pylist()
        bad = [(r.get("source"), r.get("error")) for r in out if r.get("error")]
        prepared[shots_on] = out
        print(
            json.dumps(
                {"shots": shots_on, "shots_dedup_s": round(time.time() - t1, 1), "errors": bad}
            ),
            flush=True,
        )
    results = []
    for s in settings:
        label_cfg = dataclasses.replace(
            cfg.label,
            min_word_score=s.min_word_score,
            before_s=float(s.before_s),
            after_s=float(s.after_s),
            min_score=s.min_score,
            salience_weight=s.salience_weight,
        )
        out = LabelStage(label_cfg)(prepared[s.shots]).to_pylist()
        frames = [{**f, "source": row["source"]} for row in out for f in row.get("frames") or []]
        score = score_labels(frames, truths, nlp)
        results.append((s, score))
        print(json.dumps({**s._asdict(), **score}), flush=True)

    print(
        "\n| shots | min_word_score | before / after | min_score | salience_weight "
        "| precision | subject recall | labels/frame |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for s, r in results:
        print(
            f"| {'on' if s.shots else 'off'} | {fmt(s.min_word_score)} "
            f"| {fmt(s.before_s)} / {fmt(s.after_s)} s | {fmt(s.min_score)} "
            f"| {fmt(s.salience_weight)} | {r['label_precision']:.3f} "
            f"| {r['subject_recall']:.3f} | {r['labels_per_frame']:.1f} |"
        )
    print(f"\ntotal {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
