"""`vidray eval` on a tiny model of coloured frames: files written, values sane, baseline by hand."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidray.cli import main
from vidray.sink import read_table
from vidray.train.evaluate import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Path) -> Path:
    return tiny_model_dir


@pytest.fixture(scope="module")
def report(model_dir: Path) -> dict[str, Any]:
    return evaluate(model_dir)


def unit_values(tree: Any) -> Iterator[float]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key not in ("queries", "distinct_label_sets") and not key.startswith("labels_"):
                yield from unit_values(value)
    elif isinstance(tree, float):
        yield tree


def test_writes_metrics_and_plots(model_dir: Path, report: dict[str, Any]) -> None:
    saved = json.loads((model_dir / "eval" / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(report))
    for name in ("label_ap.png", "recall_at_k.png", "precision_recall.png"):
        png = (model_dir / "eval" / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 1000
    i2w, w2i = report["image_to_word"], report["word_to_image"]
    for key in ("map", "micro_ap", "top1", "top5"):
        assert key in i2w and key in i2w["baseline"]
    for k in (1, 5, 10):
        assert f"recall_at_{k}" in w2i and f"recall_at_{k}" in w2i["chance"]
    assert "left out" in i2w["map_note"] and "top 1" in i2w["precision_recall_rule"]
    values = list(unit_values({"i": i2w, "w": w2i}))
    assert values and all(0 <= v <= 1 for v in values)
    for row in report["labels"]:
        assert {
            "word",
            "support",
            "train_count",
            "ap",
            "baseline_ap",
            "precision",
            "recall",
        } <= set(row)
    assert report["frames"] == 8 and report["heldout_videos"] == 1
    assert set(report["best_labels"]) == {r["word"] for r in report["labels"]}


def test_model_beats_the_baselines(report: dict[str, Any]) -> None:
    i2w, w2i = report["image_to_word"], report["word_to_image"]
    assert i2w["map"] > i2w["baseline"]["map"] and i2w["top1"] > i2w["baseline"]["top1"]
    assert w2i["recall_at_1"] > w2i["chance"]["recall_at_1"]


def test_frequency_baseline_by_hand(model_dir: Path, report: dict[str, Any]) -> None:
    split = json.loads((model_dir / "split.json").read_text())
    vocab = json.loads((model_dir / "vocab.json").read_text())["words"]
    rows = read_table(split["root"], "frames", ["video_id", "labels"]).to_pylist()
    held = [set(r["labels"]) & set(vocab) for r in rows if r["video_id"] in split["heldout"]]
    # always the most common training word first: top-1 is the share of frames that have it
    assert report["image_to_word"]["baseline"]["top1"] == round(
        sum(vocab[0] in h for h in held) / len(held), 4
    )
    assert report["image_to_word"]["baseline"]["top5"] == round(
        sum(bool(h & set(vocab[:5])) for h in held) / len(held), 4
    )
    # one score per word for every frame: each label's AP is its held-out rate
    rates = [sum(w in h for h in held) / len(held) for w in vocab]
    assert report["image_to_word"]["baseline"]["map"] == round(float(np.mean(rates)), 4)
    by_word = {r["word"]: r for r in report["labels"]}
    assert [by_word[w]["baseline_ap"] for w in vocab] == [round(r, 4) for r in rates]
    # chance recall@1: the identical label set is 1 of the 8 frames (each set occurs once)
    assert report["word_to_image"]["chance"]["recall_at_1"] == round(1 / 8, 4)


def test_refuses_what_it_cannot_evaluate(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vidray train"):
        evaluate(tmp_path)
    copy = shutil.copytree(model_dir, tmp_path / "model", ignore=shutil.ignore_patterns("eval"))
    split = json.loads((copy / "split.json").read_text())
    (copy / "split.json").write_text(json.dumps({**split, "heldout": ["test:elsewhere"]}))
    with pytest.raises(ValueError, match="no held-out video"):
        evaluate(copy)
    (copy / "split.json").write_text(json.dumps({**split, "heldout": []}))
    with pytest.raises(ValueError, match="holdout"):
        evaluate(copy)


def test_cli_eval(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--model-dir", str(model_dir), "--out", str(tmp_path / "ev")]) == 0
    out, err = capsys.readouterr()  # stdout is no terminal: a JSON line, the summary on stderr
    assert "mAP" in err and "R@5" in err and "next:" in err and str(tmp_path / "ev") in err
    summary = json.loads(out)
    assert summary["metrics_file"] == str(tmp_path / "ev" / "metrics.json")
    assert "labels" not in summary and summary["image_to_word"]["map"] is not None
    assert (tmp_path / "ev" / "metrics.json").is_file()
    assert main(["eval", "--model-dir", str(tmp_path)]) == 2


def test_truth_search_scores(model_dir: Path) -> None:
    from vidray.evaluate import score_search
    from vidray.query import load_model

    model = load_model(model_dir, device="cpu")
    split = model.split
    rows = read_table(split["root"], "frames", ["video_id", "image", "labels"]).to_pylist()
    frames = [{**r, "subject": r["labels"][0]} for r in rows if r["video_id"] in split["heldout"]]
    embeddings, _ = model.encode([f["image"] for f in frames])
    scores = score_search(model, frames, embeddings)
    assert scores["search_queries"] == 4 and scores["search_base_rate"] == 0.25
    assert scores["search_recall_at_5"] == 1.0 and scores["search_recall_at_10"] == 1.0
    assert scores["search_precision_at_5"] > scores["search_base_rate"]
