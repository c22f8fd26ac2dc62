"""Sample videos → build on a local Ray → train with Ray Train → predict: content, not shapes."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from vidray.cli import main
from vidray.config import load_config
from vidray.evaluate import score_dataset, score_model, truth_subjects
from vidray.pipeline import run_build
from vidray.query import load_model
from vidray.sink import read_table
from vidray.testing.media import corrupt_copy, strip_audio
from vidray.testing.sample import make_samples

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four one-minute videos over six subjects, so held-out videos show subjects seen in training."""
    out = tmp_path_factory.mktemp("corpus")
    make_samples(out / "videos", videos=4, minutes=1.0, seed=11, subjects=6)
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
    assert len(seen) == 6  # progress reported for every video
    assert (result.videos, result.errors) == (5, 1)
    return corpus / "out"


def test_every_input_is_accounted_for(built: Path) -> None:
    videos = read_table(str(built), "videos").to_pylist()
    errors = read_table(str(built), "errors").to_pylist()
    assert len(videos) == 5 and len(errors) == 1
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
    assert stats.schema.metadata[b"videos"] == b"5" and stats.num_rows > 10


def test_frames_carry_their_scene_subject(built: Path, corpus: Path) -> None:
    report = score_dataset(str(built), corpus / "videos")
    assert report["videos"] == 4
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


def test_train_then_predict(built: Path, corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = corpus / "model"
    assert (
        main(
            [
                "train",
                str(built),
                "--model-dir",
                str(model_dir),
                "epochs=30",
                "batch_size=8",
                "lr=0.003",
            ]
        )
        == 0
    )
    for name in ("model.pt", "vocab.json", "split.json", "config.yaml"):
        assert (model_dir / name).is_file()
    report = score_model(str(model_dir), str(built), corpus / "videos")
    assert report["heldout_frames"] >= 5
    # The subject of held-out frames is in the top 5 far more often than chance would put it.
    # Subjects never recognised in the training videos are out of its vocabulary; of the rest,
    # most are in the top 5, and overall it beats chance.
    assert report["subject_top5_in_vocab"] >= 0.7, report
    assert report["subject_top5"] > report["chance_top5"], report
    # ... and it ranks the subject first more often than "always the most common word" does.
    assert report["subject_top1"] > report["frequency_baseline_top1"], report

    model = load_model(str(model_dir))
    frame = read_table(str(built), "frames", ["image"]).to_pylist()[0]["image"]
    image = corpus / "frame.jpg"
    image.write_bytes(frame)
    capsys.readouterr()
    assert main(["predict", "--model-dir", str(model_dir), str(image)]) == 0
    line = capsys.readouterr().out.strip()
    words = [w.split()[0] for w in line.split(": ", 1)[1].split(", ")]
    assert len(words) == 5 and all(w in model.vocab for w in words)

    hits = model.search([model.vocab[0]], k=3)
    assert len(hits) == 3 and hits[0]["score"] >= hits[-1]["score"] and hits[0]["image"]
    # words → frames: a subject's name finds frames of that subject far above their base rate
    ids = set(model.split["train"]) | set(model.split["heldout"])
    shown = {
        (f["video_id"], f["frame_ts"]): f["subject"]
        for f in truth_subjects(str(built), corpus / "videos", ids)
    }
    known = sorted({s for s in shown.values() if s in model.vocab})
    assert known
    precision, base_rate = [], []
    for s in known:
        found = model.search([s], k=5, with_images=False)
        precision.append(sum(shown.get((h["video_id"], h["frame_ts"])) == s for h in found) / 5)
        base_rate.append(sum(v == s for v in shown.values()) / len(shown))
    assert sum(precision) >= 1.5 * sum(base_rate), (known, precision, base_rate)
