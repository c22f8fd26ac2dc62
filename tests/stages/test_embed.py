"""Frame embedder: the real transformers loading and forward code on tiny random models (built
here, offline) of every supported format, over frames of a generated video and synthetic JPEGs.

Random weights mean nothing, so these tests check the plumbing: shapes, unit length, float16
storage, batching across videos, per-video failures and job-level configuration errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from vidray.config import ConfigError, DecodeConfig, EmbedConfig
from vidray.schema import FRAMES_SCHEMA, to_table
from vidray.stages.base import rows_to_table
from vidray.stages.decode import DecodeStage, encode_jpeg
from vidray.stages.embed import (
    EmbedStage,
    VisionEncoder,
    batches,
    check_config,
    decode_image,
    embed_rows,
    model_family,
    resolve_device,
    unit_rows,
)
from vidray.testing.media import synthetic_frame
from vidray.testing.vision_models import TINY_MODELS

DIMS = {"clip": 16, "clip_vision_model": 16, "siglip": 32, "siglip_vision_model": 32, "dinov2": 32}
HALF = pa.list_(pa.float16())


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vision_models")
    return {kind: build(root / kind) for kind, build in TINY_MODELS.items()}


def _cfg(model: Path | str | None, **kw: Any) -> EmbedConfig:
    return EmbedConfig(enabled=True, model=str(model) if model else None, device="cpu", **kw)


def _jpeg(index: int, size: tuple[int, int] = (96, 64)) -> bytes:
    return encode_jpeg(synthetic_frame(index, size), 90)


def _video(video_id: str, jpegs: list[bytes]) -> dict[str, Any]:
    frames = [{"frame_ts": 1.5 + 3 * i, "image": j} for i, j in enumerate(jpegs)]
    return {"video_id": video_id, "source": f"{video_id}.mp4", "frames": frames}


def _vectors(row: dict[str, Any]) -> np.ndarray:
    return np.array([f["embedding"] for f in row["frames"]], dtype=np.float32)


# -- pure functions --------------------------------------------------------------------------


def test_model_family_names_the_supported_types() -> None:
    assert [model_family(t) for t in DIMS] == ["clip", "clip", "siglip", "siglip", "dinov2"]
    with pytest.raises(ConfigError, match=r"'vit'.*supported: clip, clip_vision_model, siglip"):
        model_family("vit")


def test_auto_device_is_cuda_with_float16_else_cpu_with_float32() -> None:
    assert resolve_device("auto", "auto", cuda_available=True) == ("cuda", "float16")
    assert resolve_device("auto", "auto", cuda_available=False) == ("cpu", "float32")
    assert resolve_device("cuda", "bfloat16", cuda_available=True) == ("cuda", "bfloat16")
    with pytest.raises(ConfigError, match=r"embed\.device"):
        resolve_device("tpu", "auto", cuda_available=True)
    with pytest.raises(ConfigError, match=r"embed\.dtype"):
        resolve_device("cpu", "int8", cuda_available=True)
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda", "auto", cuda_available=False)


def test_batches_cross_video_boundaries() -> None:
    assert list(batches([2, 0, 3], 2)) == [[(0, 0), (0, 1)], [(2, 0), (2, 1)], [(2, 2)]]
    assert list(batches([1, 1, 1], 64)) == [[(0, 0), (1, 0), (2, 0)]]
    assert list(batches([], 4)) == []


def test_unit_rows_are_float16_of_length_one() -> None:
    out = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0]]))
    assert out.dtype == np.float16
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], atol=1e-3)


def test_a_failing_pass_is_retried_video_by_video() -> None:
    """A pass holding a "poison" image fails; retried per video, only its video fails."""
    calls: list[int] = []

    def embed(images: Any) -> np.ndarray:
        calls.append(len(images))
        if any(im.width == 7 for im in images):
            raise RuntimeError("poison")
        return np.array([[im.width, 1.0] for im in images])

    rows = [
        _video("a", [_jpeg(0), _jpeg(1)]),
        _video("b", [_jpeg(2), encode_jpeg(synthetic_frame(3, (7, 7)), 90)]),
        _video("c", [_jpeg(4)]),
        {"video_id": "d", "error": "earlier failure", "error_stage": "decode"},
    ]
    a, b, c, d = embed_rows(rows, embed, batch_size=8)
    assert calls == [5, 2, 2, 1]  # one pass, then video by video
    assert b["error"] == "poison" and b["error_stage"] == "embed" and "frames" not in b
    assert _vectors(a).shape == (2, 2) and _vectors(c).shape == (1, 2)
    assert d == rows[3]


# -- the real stage on tiny models -----------------------------------------------------------


@pytest.fixture(scope="module")
def decoded(sample_video: Path) -> pa.Table:
    return DecodeStage(DecodeConfig(every_s=4.0, short_side=128))(
        [{"video_id": "v", "source": str(sample_video)}]
    )


@pytest.mark.parametrize("kind", list(TINY_MODELS))
def test_frames_of_a_decoded_video_get_unit_float16_embeddings(
    kind: str, models: dict[str, Path], decoded: pa.Table
) -> None:
    out = EmbedStage(_cfg(models[kind], batch_size=4))(decoded)
    (row,) = out.to_pylist()
    assert row.get("error") is None
    n = len(decoded.to_pylist()[0]["frames"])
    vectors = _vectors(row)
    assert vectors.shape == (n, DIMS[kind])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=2e-3)
    assert out.schema.field("frames").type.value_type.field("embedding").type == HALF
    # Into the frames table as the sink writes it: float16 kept.
    frames = [{**f, "video_id": row["video_id"]} for f in row["frames"]]
    table = to_table(frames, FRAMES_SCHEMA)
    assert table.schema.field("embedding").type == HALF
    np.testing.assert_array_equal(np.array(table["embedding"].to_pylist(), np.float32), vectors)


def test_batching_across_videos_gives_the_vectors_of_one_by_one(models: dict[str, Path]) -> None:
    rows = [
        _video("a", [_jpeg(i) for i in range(5)]),
        _video("b", [_jpeg(10 + i, (64, 96)) for i in range(3)]),  # portrait
        _video("c", [_jpeg(20 + i, (200, 120)) for i in range(4)]),
    ]
    stage = EmbedStage(_cfg(models["clip"], batch_size=4))
    together = stage(rows).to_pylist()
    alone = [EmbedStage(_cfg(models["clip"], batch_size=1))([r]).to_pylist()[0] for r in rows]
    for t, a in zip(together, alone, strict=True):
        np.testing.assert_allclose(_vectors(t), _vectors(a), atol=2e-3)
    # Distinct pictures, distinct vectors (random weights still separate them).
    assert len({v.tobytes() for v in _vectors(together[0])}) == 5


def test_identical_images_give_identical_vectors(models: dict[str, Path]) -> None:
    same = _jpeg(3)
    rows = [_video("a", [same, _jpeg(4), same]), _video("b", [same])]
    a, b = EmbedStage(_cfg(models["siglip"], batch_size=8))(rows).to_pylist()
    va, vb = _vectors(a), _vectors(b)
    np.testing.assert_array_equal(va[0], va[2])
    np.testing.assert_array_equal(va[0], vb[0])
    assert not np.array_equal(va[0], va[1])


def test_a_bad_jpeg_fails_only_its_video(models: dict[str, Path]) -> None:
    good = [_jpeg(i) for i in range(3)]
    rows = [
        _video("a", good),
        _video("b", [good[0], _jpeg(9)[:300]]),  # truncated
        _video("c", [b"not a jpeg"]),
        _video("d", good[:1]),
    ]
    a, b, c, d = EmbedStage(_cfg(models["dinov2"], batch_size=2))(rows).to_pylist()
    for bad in (b, c):
        assert bad["error_stage"] == "embed" and bad["error_reason"] == "corrupt_frame"
        assert bad["frames"] is None  # failed rows drop their payload
    assert "frame at 4.5 s" in b["error"] and "BytesIO" not in c["error"]
    assert _vectors(a).shape == (3, 32) and _vectors(d).shape == (1, 32)
    np.testing.assert_allclose(_vectors(a)[0], _vectors(d)[0], atol=2e-3)  # other passes


def test_pixels_match_the_image_processor(models: dict[str, Path]) -> None:
    """The stage's own resize/crop/normalise gives the processor's `pixel_values`."""
    sizes = [(96, 64), (64, 96), (50, 50), (97, 33), (20, 12)]
    images = [decode_image(_jpeg(i, s)) for i, s in enumerate(sizes)]
    for kind in ("clip", "siglip", "dinov2"):
        encoder = VisionEncoder(_cfg(models[kind]))
        assert encoder.recipe is not None
        want = encoder.processor(images=images, return_tensors="pt")["pixel_values"]
        np.testing.assert_allclose(encoder.pixels(images).numpy(), want.numpy(), atol=1e-5)


def test_rows_without_frames_and_failed_rows_pass(models: dict[str, Path]) -> None:
    rows = [
        {"video_id": "a", "frames": []},
        {"video_id": "b", "error": "gone", "error_stage": "fetch"},
    ]
    a, b = EmbedStage(_cfg(models["clip"]))(rows).to_pylist()
    assert a["frames"] == [] and a.get("error") is None
    assert b["error"] == "gone" and b["error_stage"] == "fetch"


def test_disabled_passes_rows_through_untouched(decoded: pa.Table) -> None:
    stage = EmbedStage(EmbedConfig(enabled=False, model="/no/such/folder"))
    assert stage(decoded) is decoded
    rows = [_video("a", [_jpeg(0)])]
    assert stage(rows).to_pylist() == rows_to_table(rows).to_pylist()
    assert stage.encoder is None


# -- job-level errors ------------------------------------------------------------------------


@pytest.fixture
def vit_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "vit"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "vit"}))
    return folder


def test_configuration_errors_are_clear_and_early(tmp_path: Path, vit_folder: Path) -> None:
    cases = {
        str(tmp_path / "missing"): "neither a model folder nor a hub name",
        str(tmp_path): "holds no config.json",
        str(vit_folder): r"'vit'.*supported: clip, clip_vision_model, siglip, siglip_vision_model",
        "vidray-tests/no-such-model": "offline",
        "./relative/missing": "neither a model folder nor a hub name",
    }
    for model, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            EmbedStage(_cfg(model))  # on construction: nothing is loaded
    with pytest.raises(ConfigError, match=r"embed\.model is not set"):
        check_config(_cfg(None))
    with pytest.raises(ConfigError, match=r"embed\.device"):
        check_config(EmbedConfig(enabled=True, model=str(vit_folder), device="gpu"))
    with pytest.raises(ConfigError, match="batch_size"):
        check_config(_cfg(vit_folder, batch_size=0))
    check_config(EmbedConfig(enabled=False, model="/no/such/folder"))  # off: not looked at


def test_a_checkpoint_of_another_family_fails_to_load(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    """A folder whose config says dinov2 but whose weights are CLIP's: a ConfigError at load."""
    folder = tmp_path / "mislabelled"
    folder.mkdir()
    for f in models["clip"].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    dinov2 = json.loads((models["dinov2"] / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dinov2))
    with pytest.raises(ConfigError, match="lacks weights of its image tower"):
        EmbedStage(_cfg(folder))([_video("a", [_jpeg(0)])])


# -- GPU -------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_on_cuda_with_float16(models: dict[str, Path]) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    rows = [_video("a", [_jpeg(i) for i in range(5)]), _video("b", [_jpeg(9)])]
    cfg = EmbedConfig(enabled=True, model=str(models["clip"]))  # device and dtype auto
    stage = EmbedStage(cfg)
    out = stage(rows).to_pylist()
    assert stage.encoder is not None
    assert stage.encoder.device.type == "cuda" and stage.encoder.dtype == torch.float16
    assert next(stage.encoder.model.parameters()).dtype == torch.float16
    cpu = EmbedStage(_cfg(models["clip"]))(rows).to_pylist()
    for g, c in zip(out, cpu, strict=True):
        np.testing.assert_allclose(np.linalg.norm(_vectors(g), axis=1), 1.0, atol=2e-3)
        np.testing.assert_allclose(_vectors(g), _vectors(c), atol=2e-2)


def test_non_finite_embeddings_fail_instead_of_being_stored() -> None:
    from vidray.stages.embed import unit_rows

    assert np.allclose(unit_rows(np.array([[3.0, 4.0]])), [[0.6, 0.8]], atol=1e-3)
    with pytest.raises(ValueError, match="non-finite"):
        unit_rows(np.array([[np.inf, 1.0]], np.float16))
