import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from vidray.testing.vision_models import tiny_clip_vision, tiny_dinov2, tiny_siglip
from vidray.train.encoders import PretrainedEncoder
from vidray.train.model import ImageWordModel, warmup_cosine

V = 6


def tiny_vit(folder: Path) -> Path:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


BUILDERS = {
    "clip": tiny_clip_vision,
    "siglip": tiny_siglip,
    "dinov2": tiny_dinov2,
    "vit": tiny_vit,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy machine OpenMP's spinning threads
    make a one-second training take thirty."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def towers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("towers")
    return {name: build(root / name) for name, build in BUILDERS.items()}


def cnn(**kw: object) -> ImageWordModel:
    args: dict = {"vocab_size": V, "widths": [8, 16], "embed_dim": 16, **kw}
    return ImageWordModel(**args)


def images(n: int = 4, size: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def batch_for(imgs: torch.Tensor, labels: list[list[int]], k: int = 2) -> dict[str, torch.Tensor]:
    """Targets from each frame's labels; bag 0 its own labels, bag 1 the next frame's (absent
    for the last frame), further bags absent."""
    n, width = len(labels), max(len(x) for x in labels)
    target = torch.zeros(n, V)
    bags = torch.full((n, k, width), -1, dtype=torch.long)
    for i, labs in enumerate(labels):
        target[i, labs] = 1.0
        bags[i, 0, : len(labs)] = torch.tensor(labs)
        if i + 1 < n and k > 1:
            bags[i, 1, : len(labels[i + 1])] = torch.tensor(labels[i + 1])
    return {"image": imgs, "target": target, "bags": bags, "bag_weights": (bags >= 0).float()}


def test_cnn_forward_takes_uint8_or_float_pixels() -> None:
    model = cnn().eval()
    x = images()
    emb, logits = model(x)
    assert emb.shape == (4, 16) and logits.shape == (4, V) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(model(x.float())[1], logits)
    args = json.loads(json.dumps(model.export_args()))
    assert args["widths"] == [8, 16] and args["encoder_config"] is None
    rebuilt = ImageWordModel(**args)
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt.eval()(x), (emb, logits))


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_pretrained_tower_rebuilds_offline(
    kind: str, towers: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = shutil.copytree(towers[kind], tmp_path / kind)
    model = ImageWordModel(vocab_size=V, encoder=str(folder), embed_dim=16).eval()
    x = images(size=24)  # not the tower's 32 px: resized inside
    emb, logits = model(x)
    assert emb.shape == (4, 16) and logits.shape == (4, V)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(4))

    args = json.loads(json.dumps(model.export_args()))
    shutil.rmtree(folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rebuilt = ImageWordModel(**args)
    assert not torch.allclose(rebuilt.eval()(x)[0], emb)  # random weights until loaded
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt.eval()(x), (emb, logits))
    assert rebuilt.export_args()["encoder_config"] == args["encoder_config"]


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_tower_sees_what_its_processor_makes(kind: str, towers: dict[str, Path]) -> None:
    from transformers import AutoImageProcessor

    model = ImageWordModel(vocab_size=V, encoder=str(towers[kind])).eval()
    assert isinstance(model.encoder, PretrainedEncoder)
    seen: dict[str, torch.Tensor] = {}
    model.encoder.backbone.register_forward_pre_hook(
        lambda _m, _a, kw: seen.update(kw), with_kwargs=True
    )
    x = images(n=2, size=32)
    model(x)
    processor = AutoImageProcessor.from_pretrained(towers[kind], use_fast=False)
    expected = processor(images=list(x.permute(0, 2, 3, 1).numpy()), return_tensors="pt")
    torch.testing.assert_close(seen["pixel_values"], expected["pixel_values"], atol=1e-4, rtol=0)


def test_losses_are_float32_under_autocast() -> None:
    batch = batch_for(images(), [[0], [1, 2], [3], [0, 4]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cnn(loss="asl").losses(batch)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out.values())


def test_frozen_tower_takes_no_gradient_and_stays_in_eval(towers: dict[str, Path]) -> None:
    model = ImageWordModel(vocab_size=V, encoder=str(towers["clip"]), freeze_encoder=True)
    model.train()
    encoder = model.encoder
    assert isinstance(encoder, PretrainedEncoder)
    backbone = encoder.backbone
    assert not backbone.training and encoder.proj.training
    model.losses(batch_for(images(), [[0], [1, 2], [3], [0, 4]]))["loss"].backward()
    assert all(p.grad is None for p in backbone.parameters())
    assert encoder.proj.weight.grad is not None
    optimised = {
        id(p) for g in model.configure_optimizers()["optimizer"].param_groups for p in g["params"]
    }
    assert not optimised & {id(p) for p in backbone.parameters()}


def test_fine_tuned_tower_learns_at_a_scaled_rate(towers: dict[str, Path]) -> None:
    model = ImageWordModel(vocab_size=V, encoder=str(towers["vit"]), lr=1e-3, encoder_lr_scale=0.1)
    groups = model.configure_optimizers()["optimizer"].param_groups
    assert isinstance(model.encoder, PretrainedEncoder)
    tower = {id(p) for p in model.encoder.backbone.parameters()}
    for g in groups:
        ids = {id(p) for p in g["params"]}
        assert ids <= tower or not ids & tower
        assert g["lr"] == pytest.approx(1e-4 if ids <= tower else 1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_bad_settings_name_their_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"train\.loss"):
        cnn(loss="focal")
    with pytest.raises(ValueError, match=r"train\.encoder"):
        ImageWordModel(vocab_size=V, encoder=str(tmp_path / "missing"))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match=r"train\.encoder.*bert"):
        ImageWordModel(vocab_size=V, encoder=str(tmp_path / "bert"))
    with pytest.raises(ValueError, match=r"train\.freeze_encoder"):
        cnn(freeze_encoder=True)


def test_embed_bags_agrees_with_embed_words() -> None:
    model = cnn()
    ids = torch.tensor([[0, 3, -1], [5, -1, -1], [-1, -1, -1]])
    weights = torch.tensor([[0.9, 0.3, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    dense = torch.zeros(3, V)
    dense[0, 0], dense[0, 3], dense[1, 5] = 0.9, 0.3, 0.5
    bags = model.embed_bags(ids, weights)
    torch.testing.assert_close(bags, model.embed_words(dense))
    torch.testing.assert_close(bags[:2].norm(dim=-1), torch.ones(2))
    assert torch.equal(bags[2], torch.zeros(16))  # an empty bag: zero, not NaN


def test_losses_report_every_part() -> None:
    batch = batch_for(images(), [[0], [1, 2], [3], [0, 4]], k=3)
    for loss in ("bce", "asl"):
        out = cnn(loss=loss).losses(batch)
        assert {"loss", "multilabel", "contrastive", "top5_hit"} <= set(out)
        assert all(v.ndim == 0 and torch.isfinite(v) for v in out.values())
        expected = out["multilabel"] + 0.5 * out["contrastive"]
        torch.testing.assert_close(out["loss"], expected)


def test_warmup_then_cosine() -> None:
    assert [warmup_cosine(s, 4, 14) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warmup_cosine(9, 4, 14) == pytest.approx(0.5)
    assert warmup_cosine(14, 4, 14) == pytest.approx(0.0)
    assert warmup_cosine(99, 4, 14) == pytest.approx(0.0)
    assert warmup_cosine(0, 0, 10) == 1.0

    model = cnn(lr=0.1, warmup_steps=2, total_steps=6)
    conf = model.configure_optimizers()
    assert conf["lr_scheduler"]["interval"] == "step"
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(7):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.05, 0.1, 0.1, 0.1 * (1 + math.cos(math.pi / 4)) / 2, 0.05]
    assert seen[:5] == pytest.approx(expected)
    assert seen[6] == pytest.approx(0.0)


def test_a_tiny_model_overfits_two_colours() -> None:
    torch.manual_seed(0)
    red = torch.tensor([220, 30, 30], dtype=torch.uint8).view(3, 1, 1)
    blue = torch.tensor([30, 30, 220], dtype=torch.uint8).view(3, 1, 1)
    imgs = torch.stack([(red if i % 2 == 0 else blue).expand(3, 16, 16) for i in range(8)])
    imgs = (imgs.int() + torch.randint(-20, 20, imgs.shape)).clamp(0, 255).to(torch.uint8)
    batch = batch_for(imgs, [[i % 2] for i in range(8)])
    model = cnn(lr=1e-2, total_steps=30)
    before = model.eval().losses(batch)["loss"].item()
    model.train()  # Lightning keeps the modes it is given
    trainer = pl.Trainer(
        max_steps=30,
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader: DataLoader = DataLoader([batch] * 30, batch_size=None)  # type: ignore[arg-type]  # one epoch
    trainer.fit(model, train_dataloaders=loader)
    model.eval()
    with torch.no_grad():
        after = model.losses(batch)["loss"].item()
        top1 = model(imgs)[1].argmax(dim=1)
    assert after < before / 2
    assert top1.tolist() == [i % 2 for i in range(8)]
    assert trainer.callback_metrics["train_loss"] < before
    trainer.validate(model, DataLoader([batch], batch_size=None), verbose=False)  # type: ignore[arg-type]
    assert trainer.callback_metrics["val_top5_hit"] == 1.0
    assert {"val_loss", "val_multilabel", "val_contrastive"} <= set(trainer.callback_metrics)
