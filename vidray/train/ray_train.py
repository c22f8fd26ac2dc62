"""Ray Train wrapper: the Lightning model on N workers (gloo on CPU, NCCL on GPU), fed by Ray Data."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from vidray.config import TrainConfig
from vidray.dataset import open_dataset
from vidray.sink import read_table
from vidray.train.data import build_vocab, prepare_batch, split_videos

MODEL_FILE = "model.pt"


def train_loop(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: build the model, stream this worker's shards, fit."""
    import lightning.pytorch as pl
    import ray.train
    import torch
    from lightning.pytorch.loggers import CSVLogger
    from ray.train.lightning import (
        RayDDPStrategy,
        RayLightningEnvironment,
        RayTrainReportCallback,
        prepare_trainer,
    )

    from vidray.train.model import ImageWordModel

    torch.manual_seed(config["seed"])
    model = ImageWordModel(**config["model"])
    bs = config["batch_size"]
    # Seeded shuffling over order-preserving shards (DataConfig below): a rerun trains the same.
    train_batches = ray.train.get_dataset_shard("train").iter_torch_batches(
        batch_size=bs,
        local_shuffle_buffer_size=4 * bs,
        local_shuffle_seed=config["seed"] + ray.train.get_context().get_world_rank(),
    )
    val_shard = ray.train.get_dataset_shard("val")
    trainer = pl.Trainer(
        max_epochs=config["epochs"],
        devices="auto",
        accelerator="auto",
        strategy=RayDDPStrategy(),
        plugins=[RayLightningEnvironment()],
        callbacks=[RayTrainReportCallback()],
        logger=CSVLogger(config["log_dir"], name="", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        precision="16-mixed" if torch.cuda.is_available() else "32-true",
    )
    trainer = prepare_trainer(trainer)
    val_batches = val_shard.iter_torch_batches(batch_size=bs) if val_shard is not None else None
    trainer.fit(model, train_dataloaders=train_batches, val_dataloaders=val_batches)


def train(root: str, model_dir: str, cfg: TrainConfig) -> dict[str, Any]:
    """Split by video, build the vocabulary, train with Ray Train, and save checkpoint,
    vocabulary, split and config in `model_dir`."""
    import ray
    import ray.data
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    meta = read_table(root, "frames", ["video_id", "labels"]).to_pylist()
    if not meta:
        raise ValueError(f"no frames under {root}/frames: run `vidray build` first")
    train_ids, heldout_ids = split_videos((r["video_id"] for r in meta), cfg.holdout, cfg.seed)
    train_set = set(train_ids)
    vocab, counts = build_vocab(
        (r["labels"] for r in meta if r["video_id"] in train_set), cfg.min_count, cfg.max_vocab
    )
    if not vocab:
        raise ValueError(
            f"no label occurs on {cfg.min_count}+ training frames: lower train.min_count or add videos"
        )

    out = Path(model_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(
        json.dumps({"words": vocab, "counts": {w: counts[w] for w in vocab}})
    )
    (out / "split.json").write_text(
        json.dumps({"train": train_ids, "heldout": heldout_ids, "root": root})
    )
    (out / "config.yaml").write_text(yaml.safe_dump({"train": dataclasses.asdict(cfg)}))

    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    # Committed files only: a crashed build's leftovers are never trained on.
    frames = open_dataset(
        root, columns=["video_id", "image", "labels", "label_scores"], decode_images=False
    )

    def prepared(ids: list[str]) -> Any:
        ds = frames.map_batches(
            prepare_batch,  # type: ignore[arg-type]
            fn_kwargs={"vocab": vocab, "video_ids": ids, "image_size": cfg.image_size},
            batch_format="numpy",
        )
        # Small datasets are decoded once and kept in Ray's object store; large ones stream
        # from Parquet every epoch.
        return ds.materialize() if cfg.cache_dataset else ds

    datasets = {"train": prepared(train_ids)}
    if heldout_ids:
        datasets["val"] = prepared(heldout_ids)
    model_args = {
        "vocab_size": len(vocab),
        "embed_dim": cfg.embed_dim,
        "widths": cfg.widths,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "contrastive_weight": cfg.contrastive_weight,
        "temperature": cfg.temperature,
        "epochs": cfg.epochs,
    }
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={
            "model": model_args,
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
            "log_dir": str(out / "logs"),
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers,
            use_gpu=cfg.use_gpu,
            resources_per_worker={"CPU": cfg.cpus_per_worker},
        ),
        run_config=RunConfig(
            name="train",
            storage_path=str(out / "ray_results"),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
        ),
        datasets=datasets,
        dataset_config=DataConfig(execution_options=ExecutionOptions(preserve_order=True)),
    )
    start = time.time()
    result = trainer.fit()
    seconds = time.time() - start
    if result.checkpoint is None:
        raise RuntimeError(f"training produced no checkpoint: {result.error}")
    save_checkpoint(result.checkpoint, out, model_args, cfg.image_size)
    metrics = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))}
    summary = {
        "model_dir": str(out),
        "train_videos": len(train_ids),
        "heldout_videos": len(heldout_ids),
        "vocab_size": len(vocab),
        "train_seconds": round(seconds, 1),
        "metrics": metrics,
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def save_checkpoint(
    checkpoint: Any, out: Path, model_args: dict[str, Any], image_size: int
) -> None:
    """Lightning's checkpoint from Ray → a plain `model.pt` (weights + how to rebuild the model)."""
    import torch

    with checkpoint.as_directory() as ckpt_dir:
        state = torch.load(
            Path(ckpt_dir) / "checkpoint.ckpt", map_location="cpu", weights_only=False
        )
    with tempfile.NamedTemporaryFile(dir=out, delete=False) as tmp:
        torch.save(
            {"state_dict": state["state_dict"], "model_args": model_args, "image_size": image_size},
            tmp,
        )
    os.replace(tmp.name, out / MODEL_FILE)
