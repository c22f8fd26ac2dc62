"""Score a built dataset, and a model trained on it, against the ground truth of sample videos."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from vidray.sink import read_table
from vidray.stages.keywords import load_nlp
from vidray.testing.sample import VideoTruth, load_truth, subject_at


def load_truths(truth_dir: str | Path) -> dict[str, VideoTruth]:
    """Ground truth keyed by video file name."""
    return {t.video: t for t in (load_truth(p) for p in sorted(Path(truth_dir).glob("*.json")))}


def scene_lemmas(truth: VideoTruth, nlp: Any) -> list[set[str]]:
    """For each scene, the lemmas of every word said in it."""
    return [
        {(t.lemma_ or t.text).lower() for t in nlp(" ".join(w.word for w in s.words))}
        for s in truth.scenes
    ]


def score_labels(
    frames: list[dict[str, Any]], truths: dict[str, VideoTruth], nlp: Any
) -> dict[str, float]:
    """Label precision (labels said during the frame's scene), subject recall (frames whose
    labels include the scene's subject) and labels per frame, over frames of known videos."""
    said = {name: scene_lemmas(t, nlp) for name, t in truths.items()}
    n_labels = n_right = n_frames = n_subject = 0
    scenes_seen: set[tuple[str, int]] = set()
    scenes_named: set[tuple[str, int]] = set()
    for f in frames:
        name = Path(f["source"]).name
        if name not in truths:
            continue
        scenes = truths[name].scenes
        idx = next((i for i, s in enumerate(scenes) if s.start <= f["frame_ts"] < s.end), None)
        if idx is None:
            continue
        n_frames += 1
        n_subject += scenes[idx].subject in f["labels"]
        scenes_seen.add((name, idx))
        if scenes[idx].subject in f["labels"]:
            scenes_named.add((name, idx))
        n_labels += len(f["labels"])
        n_right += sum(lab in said[name][idx] for lab in f["labels"])
    return {
        "labels": n_labels,
        "labels_per_frame": round(n_labels / max(n_frames, 1), 3),
        "label_precision": round(n_right / max(n_labels, 1), 4),
        "subject_recall": round(n_subject / max(n_frames, 1), 4),
        # share of scenes with at least one kept frame labelled with the scene's subject
        "scene_subject_recall": round(len(scenes_named) / max(len(scenes_seen), 1), 4),
    }


def score_dataset(root: str, truth_dir: str | Path) -> dict[str, Any]:
    """`score_labels` over a built dataset, with frames sampled vs kept."""
    truths = load_truths(truth_dir)
    frames = read_table(root, "frames", ["source", "frame_ts", "labels"]).to_pylist()
    videos = [
        v
        for v in read_table(root, "videos", ["source", "frames_sampled", "frames_kept"]).to_pylist()
        if Path(v["source"]).name in truths
    ]
    return {
        "videos": len(videos),
        "frames_sampled": sum(v["frames_sampled"] or 0 for v in videos),
        "frames_kept": sum(v["frames_kept"] or 0 for v in videos),
        **score_labels(frames, truths, load_nlp("blank:en")),
    }


def truth_subjects(root: str, truth_dir: str | Path, video_ids: set[str]) -> list[dict[str, Any]]:
    """Frames of the given videos with the subject on screen, for scoring predictions."""
    truths = load_truths(truth_dir)
    rows = read_table(root, "frames", ["video_id", "source", "frame_ts", "image"]).to_pylist()
    out = []
    for r in rows:
        truth = truths.get(Path(r["source"]).name)
        if r["video_id"] in video_ids and truth is not None:
            subject = subject_at(truth, r["frame_ts"])
            if subject:
                out.append({**r, "subject": subject})
    return out


def score_search(
    model: Any, frames: list[dict[str, Any]], embeddings: np.ndarray
) -> dict[str, Any]:
    """Words → image on held-out frames: each subject shown there and known to the model is a
    query, ranked by cosine among the held-out frames; relevant: frames showing the subject."""
    from vidray.train.metrics import first_relevant_rank, precision_at_k, recall_at_k

    shown = np.array([f["subject"] for f in frames])
    subjects = sorted({s for s in shown if s in model.word_index})
    if not subjects:
        return {"search_queries": 0}
    queries = np.stack([model.embed_words([s]) for s in subjects])
    sim = queries @ embeddings.T
    relevant = shown[None, :] == np.array(subjects)[:, None]
    recall = recall_at_k(first_relevant_rank(sim, relevant), (1, 5, 10))
    return {
        "search_queries": len(subjects),
        "search_recall_at_1": round(recall[1], 4),
        "search_recall_at_5": round(recall[5], 4),
        "search_recall_at_10": round(recall[10], 4),
        "search_precision_at_5": round(float(precision_at_k(sim, relevant, 5).mean()), 4),
        # precision@5 of a random ranking: the share of held-out frames showing the subject
        "search_base_rate": round(float(relevant.mean(axis=1).mean()), 4),
    }


def score_model(
    model_dir: str, root: str, truth_dir: str | Path, examples: int = 0
) -> dict[str, Any]:
    """Top-5 accuracy of the scene subject on held-out frames, against chance and a frequency
    baseline that always predicts the five most common training labels; and subject names →
    held-out frames (`score_search`)."""
    from vidray.query import load_model

    model = load_model(model_dir)
    frames = truth_subjects(root, truth_dir, set(model.split["heldout"]))
    if not frames:
        return {"heldout_frames": 0}
    embeddings, probs = model.encode([f["image"] for f in frames])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :5]
    preds = [
        [(model.vocab[j], float(p[j])) for j in row] for p, row in zip(probs, top, strict=True)
    ]
    hits = [f["subject"] in [w for w, _ in p] for f, p in zip(frames, preds, strict=True)]
    firsts = [f["subject"] == p[0][0] for f, p in zip(frames, preds, strict=True)]
    common = [w for w, _ in Counter(model.label_counts).most_common(5)]
    base = [f["subject"] in common for f in frames]
    base1 = [f["subject"] == common[0] for f in frames]
    in_vocab = [f["subject"] in model.vocab for f in frames]
    known = [i for i, k in enumerate(in_vocab) if k]

    def share(flags: list[bool], idx: list[int]) -> float:
        return round(sum(flags[i] for i in idx) / max(len(idx), 1), 4)

    report: dict[str, Any] = {
        "heldout_videos": len(model.split["heldout"]),
        "heldout_frames": len(frames),
        "subject_top5": round(sum(hits) / len(frames), 4),
        "frequency_baseline_top5": round(sum(base) / len(frames), 4),
        # A subject never recognised in the training videos cannot be predicted: score the rest too.
        "subject_top5_in_vocab": share(hits, known),
        "frequency_baseline_top5_in_vocab": share(base, known),
        "subject_top1": share(firsts, list(range(len(frames)))),
        "frequency_baseline_top1": share(base1, list(range(len(frames)))),
        "chance_top5": round(min(1.0, 5 / max(len(model.vocab), 1)), 4),
        "subject_in_vocab": round(sum(in_vocab) / len(frames), 4),
        "vocab_size": len(model.vocab),
    }
    report.update(score_search(model, frames, embeddings))
    if examples:
        step = max(1, len(frames) // examples)
        report["examples"] = [
            {
                "video": Path(f["source"]).name,
                "frame_ts": f["frame_ts"],
                "subject": f["subject"],
                "top5": [[w, round(p, 3)] for w, p in pred],
            }
            for f, pred in list(zip(frames, preds, strict=True))[::step][:examples]
        ]
    return report
