"""The dataset report's figures (label counts, co-occurrence, PMI) against brute force, and the
site it writes: every gallery frame has a record and a thumbnail, every label its frames."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidray.report import write_report
from vidray.report.scan import FrameScan, scan_frames
from vidray.report.stats import choose_gallery, cooccurrence, pmi
from vidray.schema import DUPLICATES_SCHEMA, frame_id, to_table
from vidray.sink import open_root, write_table
from vidray.stages.decode import encode_jpeg
from vidray.testing.frames import picture, write_videos

# Which foods are sliced and which shredded: each frame's labels.
KITCHEN = {
    "slicing": [["slice", "tomato", "knife"]] * 6 + [["slice", "cucumber"]] * 4,
    "shredding": [["shred", "cabbage"]] * 5 + [["shred", "carrot", "grater"]] * 5,
    "talking": [["hello"]] * 3 + [[]] * 2,
}


def kitchen_rows(seed: int = 0, broken_image: bool = False) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for name, frames in KITCHEN.items():
        transcript = [
            {"word": w, "start": 1.0 * i, "end": 1.0 * i + 0.5, "score": 0.9, "interpolated": False}
            for i, w in enumerate(f"now we {name} the food".split())
        ]
        rows.append(
            {
                "video_id": name,
                "source": f"/videos/{name}.mp4",
                "title": f"{name} video",
                "duration_s": 2.0 * len(frames) + 2,
                "license": "CC BY 4.0" if name != "talking" else None,
                "frames_sampled": len(frames) + 3,
                "frames_dropped": 3,
                "has_audio": True,
                "speech_ratio": float(rng.uniform(0.3, 0.9)),
                "loudness_db": float(rng.uniform(-30, -10)),
                "transcript": transcript,
                "keywords": [
                    {
                        "lemma": name,
                        "word": name,
                        "start": 2.0,
                        "end": 2.5,
                        "score": 0.9,
                        "salience": 1.0,
                    }
                ],
                "frames": [
                    {
                        "frame_ts": 2.0 * i,
                        "span_start": 2.0 * i,
                        "span_end": 2.0 * i + 2,
                        "merged": 2 if i == 0 else 1,
                        "image": b"not a jpeg"
                        if broken_image and i == 1
                        else encode_jpeg(picture("tomato", rng), 90),
                        "width": 48,
                        "height": 48,
                        "phash": 0,
                        "labels": labels,
                        "label_scores": [0.9] * len(labels),
                        "words": ["now", "we", name],
                    }
                    for i, labels in enumerate(frames)
                ],
            }
        )
    rows.append(
        {
            "video_id": "missing",
            "source": "/videos/missing.mp4",
            "error": "no such file",
            "error_stage": "fetch",
            "error_reason": "not_found",
        }
    )
    return rows


@pytest.fixture(scope="module")
def kitchen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kitchen") / "dataset"
    write_videos(root, kitchen_rows(broken_image=True))
    fs, base = open_root(str(root))
    dup = [
        {
            "kept_id": frame_id("slicing", 0.0),
            "dropped_id": frame_id("shredding", 0.0),
            "similarity": 0.99,
            "cluster": 0,
        }
    ]
    write_table(fs, f"{base}/duplicates/part-0.parquet", to_table(dup, DUPLICATES_SCHEMA))
    return root


def brute_pmi(frames: list[list[str]], a: str, b: str) -> float:
    n = len(frames)
    pa_ = sum(a in f for f in frames) / n
    pb = sum(b in f for f in frames) / n
    pab = sum(a in f and b in f for f in frames) / n
    return math.log(pab / (pa_ * pb))


def test_scan_orders_frames_and_counts_labels(kitchen: Path) -> None:
    scan = scan_frames(str(kitchen), ["shredding", "slicing", "talking"])
    assert scan.frames == 25 and scan.video_ids == ["shredding", "slicing", "talking"]
    assert list(scan.video) == [0] * 10 + [1] * 10 + [2] * 5
    assert np.all(np.diff(scan.frame_ts[scan.video == 1]) > 0)
    counts = dict(zip(scan.labels, scan.counts.tolist(), strict=True))
    assert counts == {
        "slice": 10,
        "tomato": 6,
        "knife": 6,
        "cucumber": 4,
        "shred": 10,
        "cabbage": 5,
        "carrot": 5,
        "grater": 5,
        "hello": 3,
    }
    assert scan.labels_of(10) == ["slice", "tomato", "knife"]
    assert scan.labels_per_frame().tolist()[-2:] == [0, 0]
    assert scan.has_image.all()


def test_pmi_matches_brute_force(kitchen: Path) -> None:
    scan = scan_frames(str(kitchen), [])
    frames = [scan.labels_of(i) for i in range(scan.frames)]
    got = pmi(scan, min_count=3)
    pairs = {(p["a"], p["b"]): p for p in got["pairs"]} | {
        (p["b"], p["a"]): p for p in got["pairs"]
    }
    for a, b in [
        ("slice", "tomato"),
        ("shred", "cabbage"),
        ("carrot", "grater"),
        ("slice", "cucumber"),
    ]:
        assert pairs[a, b]["pmi"] == pytest.approx(brute_pmi(frames, a, b), abs=1e-3)
        assert pairs[a, b]["frames"] == sum(a in f and b in f for f in frames)
    assert ("slice", "cabbage") not in pairs  # never together
    # Tomato goes with slicing, cabbage with shredding.
    assert [w for w, _, _ in got["associates"]["tomato"]][:2] == ["knife", "slice"]
    assert "shred" in [w for w, _, _ in got["associates"]["cabbage"]]
    heat = dict(zip(got["heat_labels"], got["npmi"], strict=True))
    assert heat["slice"][got["heat_labels"].index("cabbage")] == -1.0


def test_cooccurrence_across_frame_blocks_matches_a_dense_product() -> None:
    rng = np.random.default_rng(3)
    n, vocab = 70_000, 12  # more frames than one block of the Gram computation
    sizes = rng.integers(0, 4, n)
    flat = rng.integers(0, vocab, int(sizes.sum())).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    scan = FrameScan(
        [f"w{i}" for i in range(vocab)], np.zeros(vocab, np.int64), flat, offsets,
        np.zeros(n, np.int32), ["v"], np.arange(n, dtype=float), np.arange(n, dtype=float),
        np.arange(n, dtype=float), np.ones(n, np.int32), np.ones(n, bool),
    )  # fmt: skip
    dense = np.zeros((n, vocab), np.int64)
    dense[np.repeat(np.arange(n), sizes), flat] = 1
    labels = np.array([3, 0, 7, 11])
    sub = dense[:, labels]
    assert np.array_equal(cooccurrence(scan, labels), sub.T @ sub)


def test_gallery_spreads_over_the_dataset(kitchen: Path) -> None:
    scan = scan_frames(str(kitchen), [])
    assert len(choose_gallery(scan, 0)) == 25
    picks = choose_gallery(scan, 6)
    assert len(picks) == 6 and set(scan.video[picks].tolist()) == {0, 1, 2}


def load_data(path: Path) -> Any:
    text = path.read_text()
    match = re.fullmatch(r'vidray\.put\("([^"]+)",(.*)\);\n', text, re.S)
    assert match, text[:200]
    return json.loads(match.group(2))


def test_report_site_holds_every_gallery_frame(kitchen: Path, tmp_path: Path) -> None:
    summary = write_report(tmp_path / "site", root=str(kitchen), gallery=20)
    site = Path(summary["out"])
    d = summary["dataset"]
    assert (d["videos"], d["frames"], d["gallery"], d["errors"]) == (3, 25, 20, 1)
    html = (site / "index.html").read_text()
    for anchor in ("overview", "labels", "associations", "gallery", "videos"):
        assert f'id="{anchor}"' in html
    assert "not_found" in html and "CC BY 4.0" in html
    for chart in ("label_frequency", "distributions", "audio", "pmi_heatmap"):
        assert (site / "charts" / f"{chart}.png").stat().st_size > 5000
    records = load_data(site / "data" / "gallery" / "00000.js")
    assert len(records) == 20 and all(len(r) == 6 for r in records)
    thumbs = sorted(site.glob("thumbs/*/*.jpg"))
    # The second frame of each video is not a JPEG: its record stays, with no thumbnail.
    assert 1 <= d["without_thumbnail"] <= 3
    assert len(thumbs) == 20 - d["without_thumbnail"] == sum(r[5] for r in records)
    labels = load_data(site / "data" / "labels.js")
    assert labels[0][:2] in (["slice", 10], ["shred", 10])
    for rank, (name, _, in_gallery) in enumerate(labels):
        if in_gallery:
            frames = load_data(site / "data" / "labels" / f"{rank}.js")
            assert len(frames) == in_gallery
            assert all(name in records[g][2] for g in frames)
    timeline = load_data(site / "data" / "timeline" / "0000" / "0.js")
    assert [w[1] for w in timeline["words"]] == ["now", "we", "shredding", "the", "food"]
    assert timeline["words"][2][2] == "shredding"  # a keyword carries its lemma
    assert timeline["frames"][0][3] == 2 and timeline["frames"][0][5] == 1  # merged, set aside
    assert len(load_data(site / "data" / "videos.js")) == 3


def test_a_bad_report_job_fails_at_once_saying_what_to_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vidray.cli import main

    assert main(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "site")]) == 2
    assert "holds no vidray tables" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert "give a dataset root, a model directory, or both" in capsys.readouterr().err
    assert main(["report", "--model-dir", str(tmp_path)]) == 2
    assert "holds no model.pt" in capsys.readouterr().err
