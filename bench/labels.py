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

from vidray.config import BuildConfig
from vidray.evaluate import load_truths, score_labels
from vidray.sources import expand_inputs
from vidray.stages.decode import DecodeStage
from vidray.stages.dedup import DedupStage
from vidray.stages.keywords import KeywordsStage, load_nlp
from vidray.stages.label import LabelStage
from vidray.stages.shots import ShotsStage
from vidray.stages.transcribe import TranscribeStage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("samples")
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
    audio_s = sum(r["duration_s"] for r in rows)
    print(
        json.dumps(
            {"videos": len(rows), "audio_s": round(audio_s), "decode_transcribe_s": round(asr_s, 1)}
        )
    )
    grid = [
        (shots_on, min_word, window, min_score, 0.0)
        for shots_on, min_word, window, min_score in itertools.product(
            [True, False], [0.5, 0.7], [3.0, 6.0, 10.0], [0.3, 0.5]
        )
    ]
    # Salience folded into the label weight, at the default settings otherwise.
    d = cfg.label
    grid += [(True, d.min_word_score, d.before_s, d.min_score, w) for w in (0.25, 0.5, 1.0)]
    for shots_on, min_word, window, min_score, salience in grid:
        c = dataclasses.replace(cfg)
        c.shots = dataclasses.replace(cfg.shots, enabled=shots_on)
        c.label = dataclasses.replace(
            cfg.label,
            min_word_score=min_word,
            before_s=window,
            after_s=window,
            min_score=min_score,
            salience_weight=salience,
        )
        out = LabelStage(c.label)(DedupStage(c.dedup)(ShotsStage(c.shots)(rows))).to_pylist()
        setting = {
            "shots": shots_on,
            "min_word_score": min_word,
            "window_s": window,
            "min_score": min_score,
            "salience_weight": salience,
        }
        frames = [{**f, "source": row["source"]} for row in out for f in row["frames"]]
        print(json.dumps({**setting, **score_labels(frames, truths, nlp)}))


if __name__ == "__main__":
    main()
