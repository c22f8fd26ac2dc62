"""`vidray eval`: a trained model on its held-out videos, against a frequency baseline and chance."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidray.train import metrics as M

KS = (1, 5, 10)
PREDICT_K = 1  # per-label precision/recall: a word is predicted when it is the frame's best
BEST_WORST = 10


@dataclass
class HeldOut:
    """Held-out frames with at least one vocabulary label, run through the model."""

    video_ids: list[str]
    frame_ts: np.ndarray
    embeddings: np.ndarray  # [N, D] unit length
    probs: np.ndarray  # [N, V]
    targets: np.ndarray  # [N, V] bool
    skipped: int  # held-out frames with no vocabulary label or no image


def check_model_dir(model_dir: str | Path) -> Path:
    path = Path(model_dir)
    missing = [n for n in ("model.pt", "vocab.json", "split.json") if not (path / n).is_file()]
    if missing:
        raise ValueError(
            f"{path} is not a trained model directory (no {', '.join(missing)}): run "
            f"`vidray train ROOT --model-dir {path}` first"
        )
    return path


def label_targets(labels: list[list[str] | None], index: dict[str, int]) -> np.ndarray:
    """Label lists → a binary [N, V] matrix over the vocabulary; other labels are dropped."""
    out = np.zeros((len(labels), len(index)), bool)
    for i, labs in enumerate(labels):
        for lab in labs or ():
            if lab in index:
                out[i, index[lab]] = True
    return out


def heldout_batches(root: str, video_ids: list[str], batch_size: int) -> Iterator[Any]:
    """Record batches of the held-out videos' frames only (the filter is pushed down)."""
    import pyarrow.dataset as pads

    from vidray.sink import table_dataset

    dataset = table_dataset(root, "frames")
    if dataset is None or not video_ids:
        return
    yield from dataset.to_batches(
        columns=["video_id", "frame_ts", "image", "labels"],
        filter=pads.field("video_id").isin(video_ids),
        batch_size=batch_size,
    )


def run_heldout(model: Any, root: str, batch_size: int) -> HeldOut:
    """Stream the held-out frames through the model, keeping only embeddings, probabilities and
    targets (images are dropped batch by batch)."""
    vids: list[str] = []
    ts, embs, probs, targets = [], [], [], []
    skipped = 0
    for batch in heldout_batches(root, list(model.split["heldout"]), batch_size):
        cols = batch.to_pydict()
        target = label_targets(cols["labels"], model.word_index)
        keep = target.any(axis=1) & np.array([im is not None for im in cols["image"]], bool)
        skipped += int((~keep).sum())
        if not keep.any():
            continue
        emb, prob = model.encode([im for im, k in zip(cols["image"], keep, strict=True) if k])
        vids += [v for v, k in zip(cols["video_id"], keep, strict=True) if k]
        ts.append(np.asarray(cols["frame_ts"], np.float64)[keep])
        embs.append(emb)
        probs.append(prob)
        targets.append(target[keep])
    if not vids:
        raise ValueError(
            f"no held-out video of {root} has frames labelled with words of the model's "
            f"vocabulary ({len(model.split['heldout'])} held-out videos): train with more videos "
            "or a larger train.holdout, or pass --root for the dataset the model was trained on"
        )
    return HeldOut(
        vids, np.concatenate(ts), np.concatenate(embs), np.concatenate(probs),
        np.concatenate(targets), skipped,
    )  # fmt: skip


def image_to_word(
    probs: np.ndarray, targets: np.ndarray, train_counts: np.ndarray
) -> dict[str, Any]:
    """mAP, micro AP, top-1/top-5 and per-label AP and precision/recall, for the model and for
    the frequency baseline (every frame scored by the training label counts)."""
    base = M.frequency_scores(train_counts, len(targets))
    out: dict[str, Any] = {}
    for name, scores in (("model", probs), ("baseline", base)):
        ap = M.per_label_ap(scores, targets)
        mean, n_labels = M.mean_ap(ap)
        pr = M.label_precision_recall(scores, targets, PREDICT_K)
        out[name] = {
            "map": mean,
            "top1": M.top_k_accuracy(scores, targets, 1),
            "top5": M.top_k_accuracy(scores, targets, 5),
            "micro_ap": M.average_precision(np.ravel(scores), np.ravel(targets)),
            "_ap": ap,
            "_pr": pr,
        }
    out["labels_with_positives"] = n_labels
    out["labels_without_positives"] = int(targets.shape[1] - n_labels)
    return out


def word_to_image(model: Any, embeddings: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """Each held-out frame's label set as a query among the held-out frames; relevant: frames
    with the identical label set. A query's result depends only on its label set, so each
    distinct set is searched once and counted once per frame that has it."""
    sets, group = np.unique(targets, axis=0, return_inverse=True)
    group = group.ravel()
    queries = model.embed_weights(sets.astype(np.float32))
    ranks = M.group_ranks(queries, embeddings, np.arange(len(sets)), group)[group]
    sizes = np.bincount(group)[group]
    recall = M.recall_at_k(ranks, KS)
    return {
        "queries": len(group),
        "distinct_label_sets": len(sets),
        **{f"recall_at_{k}": recall[k] for k in KS},
        "chance": {f"recall_at_{k}": M.chance_recall_at_k(len(group), sizes, k) for k in KS},
    }


def label_table(vocab: list[str], counts: np.ndarray, i2w: dict[str, Any]) -> list[dict[str, Any]]:
    model, base = i2w["model"], i2w["baseline"]
    rows = []
    for j, word in enumerate(vocab):
        support = int(model["_pr"]["support"][j])
        if not support and not model["_pr"]["predicted"][j]:
            continue
        rows.append(
            {
                "word": word,
                "support": support,
                "train_count": int(counts[j]),
                "ap": _num(model["_ap"][j]),
                "baseline_ap": _num(base["_ap"][j]),
                "precision": _num(model["_pr"]["precision"][j]),
                "recall": _num(model["_pr"]["recall"][j]),
                "predicted": int(model["_pr"]["predicted"][j]),
            }
        )
    return sorted(rows, key=lambda r: (-r["support"], r["word"]))


def _num(x: float) -> float | None:
    """JSON has no NaN: an undefined value is null."""
    return None if np.isnan(x) else round(float(x), 4)


def evaluate(
    model_dir: str | Path,
    root: str | None = None,
    out_dir: str | Path | None = None,
    batch_size: int = 256,
    plots: bool = True,
) -> dict[str, Any]:
    """Evaluate a model directory on its held-out videos; write `metrics.json` and PNG plots to
    `out_dir` (default `MODEL_DIR/eval`) and return the metrics."""
    from vidray.query import load_model

    path = check_model_dir(model_dir)
    model = load_model(path)
    root = root or model.split.get("root")
    if not root:
        raise ValueError(f"{path}/split.json names no dataset root: pass --root ROOT")
    if not model.split.get("heldout"):
        raise ValueError(
            f"{path} was trained with no held-out video: retrain with train.holdout > 0 on "
            "two or more videos"
        )
    held = run_heldout(model, root, batch_size)
    counts = np.array([model.label_counts.get(w, 0) for w in model.vocab], np.float32)
    i2w = image_to_word(held.probs, held.targets, counts)
    w2i = word_to_image(model, held.embeddings, held.targets)
    labels = label_table(model.vocab, counts, i2w)
    ranked = sorted((r for r in labels if r["ap"] is not None), key=lambda r: -r["ap"])
    summary = {k: _num(i2w["model"][k]) for k in ("map", "micro_ap", "top1", "top5")}
    report: dict[str, Any] = {
        "model_dir": str(path),
        "root": root,
        "heldout_videos": len(set(held.video_ids)),
        "frames": len(held.video_ids),
        "frames_skipped": held.skipped,
        "vocab_size": len(model.vocab),
        "image_to_word": {
            **summary,
            "baseline": {k: _num(i2w["baseline"][k]) for k in summary},
            "labels_with_positives": i2w["labels_with_positives"],
            "labels_without_positives": i2w["labels_without_positives"],
            "map_note": (
                f"mean AP over the {i2w['labels_with_positives']} vocabulary labels with at "
                f"least one held-out frame; {i2w['labels_without_positives']} labels with none "
                "are left out (their AP is undefined)"
            ),
            "precision_recall_rule": (
                f"a word is predicted for a frame when it is among the frame's top {PREDICT_K} "
                "scored words (a rank rule, so the baseline is judged the same way)"
            ),
            "baseline_rule": "every frame scored by the training frame count of each word",
        },
        "word_to_image": {
            **{k: _num(v) if isinstance(v, float) else v for k, v in w2i.items() if k != "chance"},
            "chance": {k: _num(v) for k, v in w2i["chance"].items()},
            "relevance": "a frame's label set is the query; relevant: frames with that exact set",
        },
        "labels": labels,
        "best_labels": [r["word"] for r in ranked[:BEST_WORST]],
        "worst_labels": [r["word"] for r in ranked[::-1][:BEST_WORST]],
    }
    out = Path(out_dir) if out_dir else path / "eval"
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        from vidray.train.plots import write_plots

        curves = {
            "model": M.micro_pr_curve(held.probs, held.targets),
            "frequency baseline": M.micro_pr_curve(
                M.frequency_scores(counts / max(counts.max(), 1), len(held.targets)), held.targets
            ),
        }
        report["plots"] = write_plots(out, labels, report["word_to_image"], curves)
    report["metrics_file"] = str(out / "metrics.json")
    (out / "metrics.json").write_text(json.dumps(report, indent=1))
    return report
