"""Speech recognition quality and speed per backend and setting, on generated narrated videos.

    python bench/asr.py SAMPLE_DIR [--backends pocketsphinx,pocketsphinx+vocabulary,subtitles-cues,whisperx-tiny]
                                   [--repeat 2] [--json OUT]

Decodes every video once (not timed), then for each setting runs `TranscribeStage` in this
process and scores its transcripts against the generator's ground truth (if SAMPLE_DIR holds no
videos, `make_samples` writes `--videos` × `--minutes` first, as `make demo` does):

- WER: word edit distance, truth vs transcript (lower-cased, punctuation stripped), all videos;
- content-word recall: truth words that are not spaCy stop words and have 3+ letters, found in
  the transcript within the same scene, per occurrence;
- word start error (median, p90, ms) over the words the edit-distance alignment matches;
- real time per core: audio seconds / process CPU seconds of the transcribe call (all threads;
  model loading is timed apart), best of `--repeat`; wall time is reported too.

`subtitles-cues` feeds creator-style WebVTT (one cue per sentence, no word times) to the
subtitles backend. `whisperx-tiny` runs the WhisperX pipeline with the tiny random CPU models of
`vidray.testing.asr_models`: its transcripts mean nothing, only its overhead is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from vidray.asr.base import to_float
from vidray.audio import pcm_chunks
from vidray.config import AsrConfig, DecodeConfig, WhisperXConfig
from vidray.evaluate import load_truths
from vidray.sources import expand_inputs
from vidray.stages.base import Row
from vidray.stages.decode import DecodeStage
from vidray.stages.keywords import load_nlp
from vidray.stages.transcribe import TranscribeStage
from vidray.testing.sample import VideoTruth, make_samples

SETTINGS = "pocketsphinx,pocketsphinx+vocabulary,subtitles-cues,whisperx-tiny"
# Goals for the PocketSphinx default: (key, aim, higher is better)
GOALS = [
    ("content_recall", 0.6, True),
    ("start_err_median_ms", 50.0, False),
    ("rtf_cpu", 10.0, True),
]
_PUNCT = re.compile(r"[^\w\s]")


def norm(word: str) -> str:
    return _PUNCT.sub("", word.lower()).strip()


def align(ref: list[str], hyp: list[str]) -> tuple[int, list[tuple[int, int]]]:
    """Word edit distance, and the (ref, hyp) index pairs the alignment keeps as the same word."""
    n, m = len(ref), len(hyp)
    d = [list(range(m + 1))] + [[i] + [0] * m for i in range(1, n + 1)]
    for i in range(1, n + 1):
        prev, row, r = d[i - 1], d[i], ref[i - 1]
        for j in range(1, m + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != hyp[j - 1]))
    pairs, i, j = [], n, m
    while i and j:
        if d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            if ref[i - 1] == hyp[j - 1]:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif d[i][j] == d[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return d[n][m], pairs[::-1]


def score_video(truth: VideoTruth, transcript: list[Row], stop: set[str]) -> dict[str, Any]:
    """Edits, truth words, start errors (s) of matched words, content words said and found."""
    ref = [(norm(w.word), w.start) for s in truth.scenes for w in s.words if norm(w.word)]
    hyp = [(norm(w["word"]), w["start"]) for w in transcript if norm(w["word"])]
    edits, pairs = align([w for w, _ in ref], [w for w, _ in hyp])
    said = found = 0
    for scene in truth.scenes:
        want = Counter(
            w for w in (norm(x.word) for x in scene.words) if len(w) >= 3 and w not in stop
        )
        heard = Counter(w for w, t in hyp if scene.start <= t < scene.end)
        said += sum(want.values())
        found += sum((want & heard).values())
    errors = [abs(hyp[j][1] - ref[i][1]) for i, j in pairs]
    return {"edits": edits, "words": len(ref), "errors": errors, "said": said, "found": found}


def quality(rows: list[Row], truths: dict[str, VideoTruth], stop: set[str]) -> dict[str, Any]:
    parts = [
        score_video(truths[Path(r["source"]).name], r.get("transcript") or [], stop) for r in rows
    ]
    errors_ms = np.array([e for p in parts for e in p["errors"]]) * 1000
    said = sum(p["said"] for p in parts)
    return {
        "wer": round(sum(p["edits"] for p in parts) / max(sum(p["words"] for p in parts), 1), 4),
        "content_recall": round(sum(p["found"] for p in parts) / max(said, 1), 4),
        "content_words": said,
        "matched_words": len(errors_ms),
        "start_err_median_ms": percentile(errors_ms, 50),
        "start_err_p90_ms": percentile(errors_ms, 90),
        "failed": [r["error"] for r in rows if r.get("error")],
    }


def percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def vtt_clock(t: float) -> str:
    ms = round(t * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def cue_vtt(truth: VideoTruth) -> str:
    """Creator captions: one cue per sentence, from its first word's start to its last word's end."""
    lines = ["WEBVTT", ""]
    for scene in truth.scenes:
        words = iter(scene.words)
        for sentence in scene.sentences:
            said = [next(words) for _ in sentence.split()]
            text = sentence[:1].upper() + sentence[1:] + "."
            lines += [f"{vtt_clock(said[0].start)} --> {vtt_clock(said[-1].end)}", text, ""]
    return "\n".join(lines)


def with_captions(rows: list[Row], truths: dict[str, VideoTruth]) -> list[Row]:
    return [
        {**r, "subtitles": [{"lang": "en", "ext": "vtt", "automatic": False,
                             "text": cue_vtt(truths[Path(r["source"]).name])}]}
        for r in rows
    ]  # fmt: skip


def timed(
    cfg: AsrConfig, rows: list[Row], repeat: int
) -> tuple[dict[str, Any], list[Row], TranscribeStage]:
    """Load the backend once (timed apart), then transcribe `repeat` times; the best CPU time."""
    stage = TranscribeStage(cfg)
    t0 = time.perf_counter()
    if cfg.backend != "subtitles":
        stage.recognizer  # noqa: B018 - loads the model outside the timed calls
    load_s = time.perf_counter() - t0
    runs = []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        out = stage(rows).to_pylist()
        runs.append((time.process_time() - c0, time.perf_counter() - w0))
    audio_s = sum(r["duration_s"] for r in rows)
    cpu_s, wall_s = min(runs)
    speed = {"audio_s": round(audio_s, 1), "load_s": round(load_s, 2), "cpu_s": round(cpu_s, 2)}
    speed |= {"wall_s": round(wall_s, 2), "cpu_s_runs": [round(c, 2) for c, _ in runs]}
    speed |= {"rtf_cpu": round(audio_s / cpu_s, 1), "rtf_wall": round(audio_s / wall_s, 1)}
    return speed, out, stage


def whisperx_models(work: Path) -> tuple[str, str] | str:
    """(whisper folder, aligner folder) of tiny random models, or why WhisperX cannot run here."""
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYANNOTE_METRICS_ENABLED="0")
    try:
        import nltk
        import whisperx  # noqa: F401

        from vidray.testing.asr_models import whisperx_models as build
    except Exception as exc:  # torchaudio's libraries can fail with OSError too
        return f"whisperx-tiny skipped: {type(exc).__name__}: {exc} (see vidray/asr/whisperx.py)"
    models = build(work)
    nltk.data.path.insert(0, str(models.nltk_data))  # align() would download punkt_tab
    return str(models.whisper), str(models.aligner)


def speech_segments(stage: TranscribeStage, rows: list[Row]) -> int:
    """How many VAD speech segments WhisperX decodes for these rows (counted untimed)."""
    recognizer: Any = stage.recognizer  # a WhisperXRecognizer
    clips = (to_float(pcm) for r in rows for _, pcm in pcm_chunks(r["audio"], stage.cfg.chunk_s))
    return sum(len(recognizer.speech_segments(c)) for c in clips)


def whisperx_runs(rows: list[Row], batch_sizes: list[int], repeat: int) -> list[Row]:
    models = whisperx_models(Path(tempfile.mkdtemp(prefix="vidray-bench-asr-")))
    if isinstance(models, str):
        print(models, flush=True)
        return []
    import torch

    results = []
    for size in batch_sizes:
        wx = WhisperXConfig(*models, device="cpu", compute_type="int8", batch_size=size)
        speed, _, stage = timed(AsrConfig(backend="whisperx", whisperx=wx), rows, repeat)
        c0 = time.process_time()  # VAD again, alone: how much of cpu_s it is
        batches = -(-speech_segments(stage, rows) // size)
        speed["vad_cpu_s"] = round(time.process_time() - c0, 2)
        speed["ms_per_audio_s"] = round(1000 * speed["wall_s"] / speed["audio_s"], 1)
        speed["s_per_batch"] = round(speed["wall_s"] / max(batches, 1), 3)
        speed["torch_threads"] = torch.get_num_threads()
        results.append(emit({"setting": f"whisperx-tiny b{size}", "batches": batches, **speed}))
    return results


def emit(result: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps(result), flush=True)
    return result


def goals(result: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, aim, higher in GOALS:
        value = result[key]
        met = value is not None and (value >= aim if higher else value <= aim)
        out[key] = f"{'met' if met else 'missed'}: {value} {'>=' if higher else '<='} {aim}"
    return out


def table(results: list[Row]) -> str:
    cols = ["setting", "wer", "content_recall", "start_err_median_ms", "start_err_p90_ms",
            "rtf_cpu", "rtf_wall", "cpu_s", "wall_s", "load_s", "s_per_batch"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "–")) for c in cols) + " |" for r in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("samples")
    p.add_argument("--backends", default=SETTINGS)
    p.add_argument("--repeat", type=int, default=2, help="timed runs per setting; the best is kept")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16], help="whisperx-tiny")
    p.add_argument("--videos", type=int, default=8, help="generated when SAMPLE_DIR has no videos")
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write every result here")
    args = p.parse_args(argv)
    unknown = set(args.backends.split(",")) - set(SETTINGS.split(","))
    if unknown:
        p.error(f"unknown --backends {', '.join(sorted(unknown))}; known: {SETTINGS}")
    if not list(Path(args.samples).glob("*.mp4")):
        make_samples(args.samples, videos=args.videos, minutes=args.minutes, seed=args.seed)
    truths = load_truths(args.samples)
    stop = set(load_nlp("blank:en").Defaults.stop_words)
    rows = DecodeStage(DecodeConfig())(expand_inputs([args.samples])).to_pylist()
    rows = [r for r in rows if Path(r["source"]).name in truths]
    voices = sorted({f"{t.voice} {t.rate}" for t in truths.values()})
    audio_s = round(sum(r["duration_s"] for r in rows), 1)
    corpus = {"videos": len(rows), "audio_s": audio_s, "voices": voices}
    print(json.dumps(corpus), flush=True)
    vocabulary = str(Path(args.samples) / "vocabulary.txt")
    configs = {
        "pocketsphinx": AsrConfig(),
        "pocketsphinx+vocabulary": AsrConfig(),
        "subtitles-cues": AsrConfig(backend="subtitles"),
    }
    configs["pocketsphinx+vocabulary"].pocketsphinx.vocabulary = vocabulary
    results = []
    for name in args.backends.split(","):
        if name == "whisperx-tiny":
            results += whisperx_runs(rows, args.batch_sizes, args.repeat)
            continue
        batch = with_captions(rows, truths) if name == "subtitles-cues" else rows
        speed, out, _ = timed(configs[name], batch, args.repeat if name != "subtitles-cues" else 1)
        result = {"setting": name, **quality(out, truths, stop), **speed}
        if name == "pocketsphinx":
            result["goals"] = goals(result)
        results.append(emit(result))
    print("\n" + table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"corpus": corpus, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
