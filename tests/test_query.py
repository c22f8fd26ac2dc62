"""The query API and CLI on a tiny model of coloured frames: predict from every kind of input,
the Parquet frame index, exact cosine search."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from vidray.cli import main
from vidray.query import (
    INDEX_DIR,
    INDEX_FILE,
    VidrayModel,
    cosine_top_k,
    expand_images,
    load_model,
    top_k,
)
from vidray.sink import read_table
from vidray.testing.tiny_model import COLOURS, jpeg

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Path) -> Path:
    return tiny_model_dir


@pytest.fixture(scope="module")
def model(model_dir: Path) -> VidrayModel:
    return load_model(model_dir, device="cpu")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for i, (word, rgb) in enumerate(COLOURS.items()):
        (folder / f"{i}_{word}.jpg").write_bytes(jpeg(rgb, seed=99))
    (folder / "notes.txt").write_text("not an image")
    return folder


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def http_root(images: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(images)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_predict_every_kind_of_input(model: VidrayModel, images: Path, http_root: str) -> None:
    from PIL import Image

    path = images / "0_tomato.jpg"
    data = path.read_bytes()
    pil = Image.open(path)
    inputs = [
        path,
        str(path),
        data,
        pil,
        np.asarray(pil.convert("RGB")),
        f"{http_root}/0_tomato.jpg",
    ]
    preds = model.predict(inputs, k=3)
    assert len(preds) == len(inputs)
    for p in preds:
        assert [w for w, _ in p] == [w for w, _ in preds[0]]
        assert np.allclose([x for _, x in p], [x for _, x in preds[0]], atol=1e-6)
    assert preds[0][0][0] == "tomato"  # the red picture
    assert model.predict(pil, k=3) == model.predict([pil], k=3)  # one image on its own
    probs = [x for _, x in preds[0]]
    assert probs == sorted(probs, reverse=True) and all(0 <= x <= 1 for x in probs)


def test_a_folder_stands_for_its_images_sorted(model: VidrayModel, images: Path) -> None:
    named = expand_images([images])
    assert [Path(n).name for n, _ in named] == [f"{i}_{w}.jpg" for i, w in enumerate(COLOURS)]
    preds = model.predict(images, k=1)
    assert [p[0][0] for p in preds] == list(COLOURS)  # each colour's own word comes first


def test_batches_give_the_same_answers(model: VidrayModel, images: Path) -> None:
    paths = sorted(images.glob("*.jpg")) * 3
    one = model.predict(paths, k=5, batch_size=1)
    many = model.predict(paths, k=5, batch_size=5)
    assert [[w for w, _ in p] for p in one] == [[w for w, _ in p] for p in many]
    assert np.allclose(
        [[x for _, x in p] for p in one], [[x for _, x in p] for p in many], atol=1e-5
    )


def test_bad_inputs_say_what_is_wrong(model: VidrayModel, images: Path, http_root: str) -> None:
    with pytest.raises(OSError, match=r"could not fetch .*missing\.jpg"):
        model.predict([f"{http_root}/missing.jpg"])
    with pytest.raises(FileNotFoundError, match=r"nope\.jpg"):
        model.predict([images / "nope.jpg"])
    with pytest.raises(ValueError, match=r"notes\.txt"):
        model.predict([images / "notes.txt"])
    assert model.predict([]) == []


def test_index_is_parquet_with_every_frame(model: VidrayModel, model_dir: Path) -> None:
    info = model.build_index()
    root = json.loads((model_dir / "split.json").read_text())["root"]
    frames = read_table(root, "frames", ["video_id", "frame_ts", "labels"])
    table = pq.read_table(model_dir / INDEX_DIR / INDEX_FILE)
    assert info["rows"] == table.num_rows == frames.num_rows == 32
    assert table.column_names == ["video_id", "frame_ts", "source", "labels", "embedding"]
    emb = np.stack(table.column("embedding").to_pylist())
    assert emb.shape == (32, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)

    def frame_keys(t: Any) -> list[tuple[str, float]]:
        return sorted(zip(t["video_id"].to_pylist(), t["frame_ts"].to_pylist(), strict=True))

    assert frame_keys(table) == frame_keys(frames)


def test_search_finds_the_frames_whose_labels_match(model: VidrayModel) -> None:
    for word in COLOURS:
        hits = model.search([word], k=4)
        assert len(hits) == 4 and all(word in h["labels"] for h in hits), (word, hits)
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1
    # inflections go through the lemmatizer; many queries give what one at a time gives
    many = model.search_many([["tomatoes"], ["lemons"]], k=3)
    assert [h["video_id"] for h in many[0]] == [h["video_id"] for h in model.search(["tomato"], 3)]
    assert all("lemon" in h["labels"] for h in many[1])


def test_search_attaches_the_hits_images(model: VidrayModel, model_dir: Path) -> None:
    hits = model.search(["lettuce"], k=2, with_images=True)
    root = json.loads((model_dir / "split.json").read_text())["root"]
    frames = read_table(root, "frames", ["video_id", "frame_ts", "image"]).to_pylist()
    images = {(f["video_id"], f["frame_ts"]): f["image"] for f in frames}
    assert all(h["image"] == images[(h["video_id"], h["frame_ts"])] for h in hits)


def test_unknown_words_are_listed(model: VidrayModel) -> None:
    with pytest.raises(ValueError, match="zebra, quokka"):
        model.search(["tomato", "zebra", "quokka"])


def test_a_missing_or_stale_index_is_rebuilt(model_dir: Path) -> None:
    fresh = load_model(model_dir, device="cpu")
    (model_dir / INDEX_DIR / INDEX_FILE).unlink(missing_ok=True)
    assert fresh.index_info() is None
    assert len(fresh.search(["lemon"], k=2)) == 2  # builds it
    assert fresh.index_info() is not None
    stamp = (model_dir / "model.pt").stat().st_mtime + 10
    os.utime(model_dir / "model.pt", (stamp, stamp))  # a retrained model outdates the index
    assert fresh.index_info() is None


def test_not_a_model_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="vidray train"):
        load_model(tmp_path)


def test_exact_search_matches_a_full_sort() -> None:
    import torch

    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(500, 8)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    queries = matrix[:7] + 0.1
    reference = np.argsort(-(queries @ matrix.T), axis=1)[:, :10]
    idx, val = cosine_top_k(matrix, queries, 10, batch=3)
    assert idx.tolist() == reference.tolist()
    assert np.all(np.diff(val, axis=1) <= 0)
    tidx, _ = cosine_top_k(torch.from_numpy(matrix), queries, 10, batch=4)
    assert tidx.tolist() == reference.tolist()
    assert top_k(np.array([[0.1, 0.5, 0.3]]), 5)[0].tolist() == [[1, 2, 0]]


def test_cli(
    model_dir: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--model-dir", str(model_dir), "-k", "2", str(images)]) == 0
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith(str(images / "0_tomato.jpg") + ": tomato")
    assert "4 images" in out.err and "next: vidray search" in out.err  # stdout: results only

    assert (
        main(["predict", "--model-dir", str(model_dir), "--json", str(images / "1_lettuce.jpg")])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["words"][0][0] == "lettuce"

    assert main(["index", "--model-dir", str(model_dir)]) == 0
    out = capsys.readouterr()  # stdout is no terminal: a JSON line, the summary on stderr
    assert json.loads(out.out)["rows"] == 32 and "indexed 32 frames" in out.err

    save = tmp_path / "hits"
    assert (
        main(
            [
                "search",
                "--model-dir",
                str(model_dir),
                "-k",
                "3",
                "--json",
                "--save",
                str(save),
                "blueberries",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    hits = [json.loads(line) for line in out.out.splitlines()]
    assert len(hits) == 3 and all("blueberry" in h["labels"] for h in hits)
    assert len(list(save.glob("*.jpg"))) == 3 and " ms " in out.err
    assert f"next: look at the frames in {save}" in out.err

    assert main(["search", "--model-dir", str(model_dir), "zebra"]) == 2
    assert "zebra" in capsys.readouterr().err
