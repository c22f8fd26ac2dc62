"""Sample videos → build on a local Ray → train with Ray Train → predict: content, not shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from vidray.cli import main
from vidray.config import load_config
from vidray.evaluate import score_dataset, score_model
from vidray.pipeline import run_build
from vidray.query import load_model
from vidray.sink import read_table
from vidray.testing.browser import artifact_dir, open_page
from vidray.testing.media import corrupt_copy, strip_audio
from vidray.testing.sample import make_samples

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve one-minute videos over six subjects: three held-out videos, and every subject
    in several training videos."""
    out = tmp_path_factory.mktemp("corpus")
    make_samples(out / "videos", videos=12, minutes=1.0, seed=11, subjects=6)
    return out


@pytest.fixture(scope="module")
def built(corpus: Path, local_ray) -> Path:  # type: ignore[no-untyped-def]
    broken = corpus / "broken"
    broken.mkdir()
    strip_audio(corpus / "videos" / "sample_000.mp4", broken / "no_audio.mp4")
    corrupt_copy(corpus / "videos" / "sample_001.mp4", broken / "corrupt.mp4")
    cfg = load_config(
        overrides=[f"build.asr.pocketsphinx.vocabulary={corpus / 'videos' / 'vocabulary.txt'}"]
    ).build
    seen: list[str] = []
    result = run_build(
        [str(corpus / "videos"), str(broken)],
        str(corpus / "out"),
        cfg,
        progress=lambda s, i, n: seen.append(s["video_id"]),
    )
    assert len(seen) == 14  # progress reported for every video
    assert (result.videos, result.errors) == (13, 1)
    return corpus / "out"


def test_every_input_is_accounted_for(built: Path) -> None:
    videos = read_table(str(built), "videos").to_pylist()
    errors = read_table(str(built), "errors").to_pylist()
    assert len(videos) == 13 and len(errors) == 1
    assert errors[0]["source"].endswith("corrupt.mp4") and errors[0]["stage"] == "decode"
    silent = next(v for v in videos if v["source"].endswith("no_audio.mp4"))
    assert silent["has_audio"] is False and silent["n_labels"] == 0 and silent["frames_kept"] > 0
    assert all(v["asr_backend"] == "pocketsphinx" for v in videos)
    spoken = [v for v in videos if v["has_audio"]]
    # Narrated videos are mostly speech; their keywords carry salience; the run's document
    # frequencies are written for later runs.
    assert all(0.3 < v["speech_ratio"] <= 1 and v["hurst"] is not None for v in spoken)
    assert silent["speech_ratio"] == 0 and silent["keywords"] == []
    assert all(v["keywords"] and max(k["salience"] for k in v["keywords"]) == 1 for v in spoken)
    stats = pq.read_table(built / "corpus_stats.parquet")
    assert stats.schema.metadata[b"videos"] == b"13" and stats.num_rows > 10


def test_frames_carry_their_scene_subject(built: Path, corpus: Path) -> None:
    report = score_dataset(str(built), corpus / "videos")
    assert report["videos"] == 12
    assert report["frames_kept"] < report["frames_sampled"]  # static scenes collapsed
    assert report["scene_subject_recall"] > 0.5, report  # most scenes carry their subject
    assert report["subject_recall"] >= 0.4, report
    assert report["label_precision"] >= 0.7, report
    frames = read_table(str(built), "frames").to_pylist()
    labelled = [f for f in frames if f["labels"]]
    assert all(
        len(f["labels"]) == len(f["label_scores"]) and f["image"][:2] == b"\xff\xd8"
        for f in labelled
    )
    assert all(f["words"] for f in labelled)


@pytest.fixture(scope="module")
def model_dir(built: Path, corpus: Path) -> Path:
    out = corpus / "model"
    assert main(["train", str(built), "--model-dir", str(out), "epochs=30"]) == 0
    return out


def test_train_then_predict(
    built: Path, corpus: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("model.pt", "vocab.json", "split.json", "config.yaml", "metrics.csv"):
        assert (model_dir / name).is_file()
    report = score_model(str(model_dir), str(built), corpus / "videos")
    assert report["heldout_videos"] == 3 and report["heldout_frames"] >= 20
    # Held-out videos: the scene's subject is among the five words the model gives a frame,
    # far more often than "always the five most common words".
    assert report["subject_top5"] >= 0.8, report
    assert report["subject_top5"] >= report["frequency_baseline_top5"] + 0.4, report
    # Words -> frames over the held-out frames: a subject's name finds frames of it.
    assert report["search_recall_at_5"] >= 0.8, report
    assert report["search_precision_at_5"] >= report["search_base_rate"] + 0.4, report

    # `vidray eval` judges the model by the dataset's own labels, against the baseline.
    capsys.readouterr()
    assert main(["eval", "--model-dir", str(model_dir)]) == 0
    assert "image -> words: mAP" in capsys.readouterr().err  # stdout holds the JSON summary
    metrics = json.loads((model_dir / "eval" / "metrics.json").read_text())
    i2w, w2i = metrics["image_to_word"], metrics["word_to_image"]
    assert i2w["map"] > i2w["baseline"]["map"] and i2w["top5"] > i2w["baseline"]["top5"]
    assert w2i["recall_at_5"] > w2i["chance"]["recall_at_5"]
    assert list((model_dir / "eval").glob("*.png"))

    model = load_model(str(model_dir))
    frame = read_table(str(built), "frames", ["image"]).to_pylist()[0]["image"]
    image = corpus / "frame.jpg"
    image.write_bytes(frame)
    capsys.readouterr()
    assert main(["predict", "--model-dir", str(model_dir), str(image)]) == 0
    line = capsys.readouterr().out.strip()
    words = [w.split()[0] for w in line.split(": ", 1)[1].split(", ")]
    assert len(words) == 5 and all(w in model.vocab for w in words)
    hits = model.search([model.vocab[0]], k=3, with_images=True)
    assert len(hits) == 3 and hits[0]["score"] >= hits[-1]["score"] and hits[0]["image"]


def test_the_report_as_a_person_sees_it(
    built: Path, corpus: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = corpus / "report"
    capsys.readouterr()
    assert main(["report", str(built), "--model-dir", str(model_dir), "--out", str(site)]) == 0
    summary = json.loads(capsys.readouterr().out)  # not a terminal: one JSON line
    assert summary["dataset"]["videos"] == 13 and summary["dataset"]["errors"] == 1
    assert summary["model"]["evaluated"] and summary["model"]["examples"] > 0
    html = (site / "index.html").read_text()
    assert "corrupt" in html or "decode" in html  # the broken file, by stage and reason
    with open_page(site, height=1000) as checked:
        page = checked.page
        page.wait_for_selector("#grid figure")
        page.wait_for_selector("svg.timeline line.keyword", state="attached")  # keywords marked
        report = checked.report(screenshot=artifact_dir() / "report-end-to-end.png")
        assert report.ok, report.problems
        assert report.images > 60 and report.svgs >= 1
        label = page.locator("#grid .chip").first.inner_text()
        page.locator("#grid .chip").first.click()
        page.wait_for_function(
            f"document.querySelector('#page-info').textContent.includes({json.dumps(label)})"
        )
        cards = page.locator("#grid figure")
        assert all(label in cards.nth(i).inner_text() for i in range(cards.count()))
        assert checked.report().ok
