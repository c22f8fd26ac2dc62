"""Ray Train wrapper: the Lightning model on N workers (gloo on CPU, NCCL on GPU), fed by
Ray Data shards streamed from `frames/`; checkpoints (local or s3://) and resume."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from vidray.config import ConfigError, TrainConfig
from vidray.progress import Progress, current_mode, polling
from vidray.semdedup import unique_filter
from vidray.sink import read_table
from vidray.storage import open_root
from vidray.train.data import build_vocab, prepare_batch, split_videos

MODEL_FILE = "model.pt"
RUN_NAME = "train"
LOGGERS = ("csv", "tensorboard", "wandb")
PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")


def check_train_config(cfg: TrainConfig) -> None:
    """Refuse, before Ray starts, settings that could only fail later on a worker."""
    if cfg.loss not in ("bce", "asl"):
        raise ConfigError(f"train.loss is {cfg.loss!r}: use bce or asl")
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"train.precision is {cfg.precision!r}: use one of {PRECISIONS}")
    unknown = [x for x in cfg.loggers if x not in LOGGERS]
    if unknown:
        raise ConfigError(f"train.loggers has {unknown}: choose from {list(LOGGERS)}")
    if "wandb" in cfg.loggers and not cfg.wandb_project:
        raise ConfigError("train.loggers has wandb: set train.wandb_project too")
    if not 0 <= cfg.holdout < 1:
        raise ConfigError(f"train.holdout is {cfg.holdout}: a share in [0, 1)")
    for key in ("epochs", "batch_size", "accumulate_grad_batches", "num_workers", "bag_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"train.{key} must be at least 1")


def precision(setting: str, cuda: bool) -> str:
    """`auto` → mixed precision on a GPU (bf16 where it has it), full precision on CPU."""
    if setting != "auto":
        return setting
    if not cuda:
        return "32-true"
    import torch

    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def weights_digest(model: Any) -> str:
    """A digest of every parameter: equal on ranks whose replicas are in sync. (Buffers such
    as BatchNorm's running statistics are each rank's own until DDP broadcasts rank 0's.)"""
    h = hashlib.sha1()
    for name, tensor in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class ProgressBoard:
    """Where rank 0 posts its training progress and the driver reads it: a tiny Ray actor, so
    the driver, blocked in `trainer.fit()`, can show it from another thread on any cluster."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def post(self, state: dict[str, Any]) -> None:
        self.state = state

    def read(self) -> dict[str, Any]:
        return self.state


def show_training(bar: Progress, state: dict[str, Any], per_epoch: int) -> None:
    """Rank 0's last post → the driver's bar: images done (rank 0's count × the world size),
    epoch, step and losses. Epochs restored from a checkpoint count as done, not in the rate."""
    if not state:
        return
    if bar.done == 0 and state["start_epoch"]:
        bar.skip(state["start_epoch"] * per_epoch)
    done = state["epoch"] * per_epoch + min(state["rows"], per_epoch)
    losses = "".join(
        f", {key} {state[key]:.3f}" for key in ("loss", "val_loss") if state.get(key) is not None
    )
    bar.note(f"epoch {state['epoch'] + 1}/{state['epochs']}, step {state['step']}{losses}")
    if done > bar.done:  # a worker group restarted from a checkpoint goes back: wait for it
        bar.update(done - bar.done)


def train_loop(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: build the model, stream this worker's shard, fit from
    the last checkpoint if the run is being resumed, then check the replicas agree."""
    import lightning.pytorch as pl
    import ray
    import ray.train
    import torch
    import torch.distributed as dist
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
    from ray.train.lightning import (
        RayDDPStrategy,
        RayLightningEnvironment,
        RayTrainReportCallback,
        prepare_trainer,
    )

    from vidray.train.model import ImageWordModel

    class Bookkeeping(pl.Callback):
        """Stores how to rebuild the model offline in each checkpoint; at the last epoch,
        gathers every rank's weight digest and row count into the reported metrics (before
        RayTrainReportCallback reports them), so the driver can check the replicas agree."""

        rows = 0

        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, idx: int) -> None:
            self.rows += len(batch["image"])

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            if trainer.current_epoch + 1 < trainer.max_epochs:
                return
            mine = (weights_digest(module), self.rows)
            everyone: list[Any] = [mine]
            if dist.is_initialized():
                everyone = [None] * dist.get_world_size()
                dist.all_gather_object(everyone, mine)
            for r, (digest, rows) in enumerate(everyone):
                # 48 bits of the digest: exact in a float64 metric
                trainer.callback_metrics[f"digest_rank{r}"] = torch.tensor(
                    float(int(digest[:12], 16)), dtype=torch.float64
                )
                trainer.callback_metrics[f"rows_rank{r}"] = torch.tensor(float(rows))

        def on_save_checkpoint(self, trainer: Any, module: Any, checkpoint: dict) -> None:
            checkpoint["model_args"] = module.export_args()

    class PostProgress(pl.Callback):
        """On rank 0: epoch, step, images seen this epoch and the last losses, posted to the
        driver's `ProgressBoard` at most once a second (reading the loss syncs the device)."""

        def __init__(self, board: Any, world: int) -> None:
            self.board, self.world = board, world
            self.rows, self.epoch, self.start_epoch, self.last = 0, 0, 0, -1e9

        def post(self, trainer: Any) -> Any:
            self.last = time.monotonic()
            metrics = trainer.callback_metrics
            return self.board.post.remote(
                {
                    "start_epoch": self.start_epoch,
                    "epoch": self.epoch,  # Lightning's counts one more once fit ends
                    "epochs": trainer.max_epochs,
                    "rows": self.rows * self.world,
                    "step": trainer.global_step,
                    **{
                        key: float(metrics[name])
                        for key, name in (("loss", "train_loss"), ("val_loss", "val_loss"))
                        if name in metrics
                    },
                }
            )

        def on_train_start(self, trainer: Any, module: Any) -> None:
            self.start_epoch = self.epoch = (
                trainer.current_epoch
            )  # after a resume, the restored one
            self.post(trainer)

        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            self.rows, self.epoch = 0, trainer.current_epoch

        def on_train_batch_end(
            self, trainer: Any, module: Any, outputs: Any, batch: Any, idx: int
        ) -> None:
            self.rows += len(batch["image"])
            if time.monotonic() - self.last >= 1.0:
                self.post(trainer)

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            self.post(trainer)  # with this epoch's validation loss

        def on_train_end(self, trainer: Any, module: Any) -> None:
            ray.get(self.post(trainer))  # delivered before fit() returns on the driver

    torch.manual_seed(config["seed"])
    model = ImageWordModel(**config["model"])
    bs, rank = config["batch_size"], ray.train.get_context().get_world_rank()
    cuda = torch.cuda.is_available()
    # Seeded shuffling over order-preserving shards (DataConfig below): a rerun trains the same.
    train_batches = ray.train.get_dataset_shard("train").iter_torch_batches(
        batch_size=bs,
        local_shuffle_buffer_size=4 * bs,
        local_shuffle_seed=config["seed"] + rank,
        prefetch_batches=config["prefetch_batches"],
        pin_memory=cuda,
    )
    val_shard = ray.train.get_dataset_shard("val")
    val_batches = (
        val_shard.iter_torch_batches(batch_size=bs, prefetch_batches=config["prefetch_batches"])
        if val_shard is not None
        else None
    )
    log_dir = config["log_dir"]
    loggers: list[Any] = []
    if "csv" in config["loggers"]:
        loggers.append(CSVLogger(log_dir, name="", version=""))
    if "tensorboard" in config["loggers"]:
        loggers.append(TensorBoardLogger(log_dir, name="tensorboard", version=""))
    if "wandb" in config["loggers"]:
        loggers.append(WandbLogger(project=config["wandb_project"], save_dir=log_dir))
    books = Bookkeeping()
    board = config.get("progress_board")
    world = ray.train.get_context().get_world_size()
    posting = [PostProgress(board, world)] if board is not None and rank == 0 else []
    trainer = pl.Trainer(
        max_epochs=config["epochs"],
        devices="auto",
        accelerator="auto",
        strategy=RayDDPStrategy(),
        plugins=[RayLightningEnvironment()],
        callbacks=[books, *posting, RayTrainReportCallback()],
        logger=loggers or False,
        enable_checkpointing=False,
        enable_progress_bar=False,  # the driver shows progress (PostProgress → ProgressBoard)
        enable_model_summary=False,
        log_every_n_steps=1,
        precision=precision(config["precision"], cuda),  # type: ignore[arg-type]
        accumulate_grad_batches=config["accumulate_grad_batches"],
    )
    trainer = prepare_trainer(trainer)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        trainer.fit(model, train_dataloaders=train_batches, val_dataloaders=val_batches)
    else:  # resumed: Lightning restores weights, optimizer, schedule and epoch
        with checkpoint.as_directory() as ckpt_dir:
            trainer.fit(
                model,
                train_dataloaders=train_batches,
                val_dataloaders=val_batches,
                ckpt_path=str(Path(ckpt_dir) / RayTrainReportCallback.CHECKPOINT_NAME),
            )


def model_args(cfg: TrainConfig, vocab_size: int, total_steps: int) -> dict[str, Any]:
    keys = [
        "encoder",
        "freeze_encoder",
        "encoder_lr_scale",
        "widths",
        "embed_dim",
        "loss",
        "asl_gamma_neg",
        "asl_gamma_pos",
        "asl_clip",
        "contrastive_weight",
        "temperature",
        "lr",
        "weight_decay",
        "augment",
    ]
    return {
        "vocab_size": vocab_size,
        **{k: getattr(cfg, k) for k in keys},
        "warmup_steps": round(cfg.warmup * total_steps),
        "total_steps": total_steps,
    }


def plan_split(
    root: str, out: Path, cfg: TrainConfig, resume: bool
) -> tuple[list[str], list[str], list[str], int]:
    """(train ids, held-out ids, vocabulary, labelled training frames), saved in `out`; a
    resumed run reads them back, so it trains on exactly what it started with."""
    if resume and (out / "split.json").is_file():
        split = json.loads((out / "split.json").read_text())
        vocab = json.loads((out / "vocab.json").read_text())
        return split["train"], split["heldout"], vocab["words"], vocab["labelled_frames"]
    # The frames training will see: without `vidray dedup`'s duplicates when train.unique.
    meta = read_table(
        root, "frames", ["video_id", "labels"], unique_filter(root) if cfg.unique else None
    ).to_pylist()
    if not meta:
        raise ValueError(f"no frames under {root}/frames: run `vidray build` first")
    train_ids, heldout_ids = split_videos((r["video_id"] for r in meta), cfg.holdout, cfg.seed)
    train_set = set(train_ids)
    train_labels = [r["labels"] for r in meta if r["video_id"] in train_set]
    vocab, counts = build_vocab(train_labels, cfg.min_count, cfg.max_vocab)
    if not vocab:
        raise ValueError(
            f"no label occurs on {cfg.min_count}+ training frames: lower train.min_count or add videos"
        )
    words = set(vocab)
    labelled = sum(1 for labels in train_labels if words.intersection(labels))
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(
        json.dumps(
            {"words": vocab, "counts": {w: counts[w] for w in vocab}, "labelled_frames": labelled}
        )
    )
    (out / "split.json").write_text(
        json.dumps({"train": train_ids, "heldout": heldout_ids, "root": root})
    )
    return train_ids, heldout_ids, vocab, labelled


def checkpoint_storage(out: Path, cfg: TrainConfig, resume: bool) -> tuple[Any, str]:
    """Where Ray Train keeps checkpoints: (filesystem, path). A run already there is refused
    unless resuming, and an unreachable bucket fails here, before any worker starts."""
    fs, base = open_root(cfg.checkpoint_dir or str(out / "checkpoints"))
    import pyarrow.fs as pafs

    try:
        exists = fs.get_file_info(f"{base}/{RUN_NAME}").type != pafs.FileType.NotFound
        fs.create_dir(base, recursive=True)
    except OSError as exc:
        raise ValueError(f"cannot use train.checkpoint_dir {cfg.checkpoint_dir}: {exc}") from exc
    if exists and not resume:
        raise ValueError(
            f"{cfg.checkpoint_dir or out} already holds a training run: pass --resume to "
            "continue it, or choose another --model-dir / train.checkpoint_dir"
        )
    return fs, base


def train(root: str, model_dir: str, cfg: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Split by video, build the vocabulary, train with Ray Train (resuming from the last
    checkpoint with `resume`), and save `model.pt`, vocabulary, split, config and metrics in
    `model_dir`; then index the dataset's frames for search."""
    import ray
    import ray.data
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from vidray.dataset import open_dataset

    check_train_config(cfg)
    out = Path(model_dir).resolve()
    fs, storage = checkpoint_storage(out, cfg, resume)
    train_ids, heldout_ids, vocab, labelled = plan_split(root, out, cfg, resume)
    (out / "config.yaml").write_text(yaml.safe_dump({"train": dataclasses.asdict(cfg)}))

    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    # Committed files only: a crashed build's leftovers are never trained on.
    frames = open_dataset(
        root,
        columns=["video_id", "frame_ts", "image", "labels", "label_scores"],
        decode_images=False,
        unique=cfg.unique,
    )

    def prepared(ids: list[str]) -> Any:
        ds = frames.map_batches(
            prepare_batch,  # type: ignore[arg-type]
            fn_kwargs={
                "vocab": vocab,
                "video_ids": ids,
                "image_size": cfg.image_size,
                "neighbours": cfg.mil_neighbours,
                "window_s": cfg.mil_window_s,
                "bag_size": cfg.bag_size,
            },
            batch_format="numpy",
            batch_size=256,
        )
        # Small datasets are decoded once and kept in Ray's object store; large ones stream
        # from Parquet every epoch.
        return ds.materialize() if cfg.cache_dataset else ds

    datasets = {"train": prepared(train_ids)}
    if heldout_ids:
        datasets["val"] = prepared(heldout_ids)
    steps_per_epoch = math.ceil(labelled / (cfg.batch_size * cfg.num_workers))
    total_steps = max(1, math.ceil(steps_per_epoch / cfg.accumulate_grad_batches) * cfg.epochs)
    shown = current_mode() != "none"
    board: Any = ray.remote(ProgressBoard).options(num_cpus=0).remote() if shown else None
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={
            "model": model_args(cfg, len(vocab), total_steps),
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "accumulate_grad_batches": cfg.accumulate_grad_batches,
            "precision": cfg.precision,
            "prefetch_batches": cfg.prefetch_batches,
            "seed": cfg.seed,
            "loggers": cfg.loggers,
            "wandb_project": cfg.wandb_project,
            "log_dir": str(out / "logs"),
            "progress_board": board,
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers,
            use_gpu=cfg.use_gpu,
            resources_per_worker={"CPU": cfg.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=RUN_NAME,
            storage_path=storage,
            storage_filesystem=fs,
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
        ),
        datasets=datasets,
        dataset_config=DataConfig(execution_options=ExecutionOptions(preserve_order=True)),
    )
    bar = Progress("train", total=labelled * cfg.epochs, unit="images")

    def poll() -> None:
        if board is not None:
            show_training(bar, ray.get(board.read.remote(), timeout=10), labelled)

    start = time.time()
    with bar, polling(poll, every_s=1.0):
        result = trainer.fit()
    seconds = time.time() - start
    if result.checkpoint is None:
        raise RuntimeError(f"training produced no checkpoint: {result.error}")
    save_model(result.checkpoint, out, cfg.image_size)
    if result.metrics_dataframe is not None:
        result.metrics_dataframe.to_csv(out / "metrics.csv", index=False)
    final = result.metrics or {}
    summary = {
        "model_dir": str(out),
        "checkpoint": result.checkpoint.path,
        "train_videos": len(train_ids),
        "heldout_videos": len(heldout_ids),
        "vocab_size": len(vocab),
        "labelled_train_frames": labelled,
        "workers": cfg.num_workers,
        "train_seconds": round(seconds, 1),
        "epochs_done": int(final.get("epoch", -1)) + 1,
        "rows_per_rank": ranked(final, "rows_rank"),
        "replica_digests": ranked(final, "digest_rank"),
        "metrics": {
            k: round(float(v), 5)
            for k, v in final.items()
            if isinstance(v, (int, float)) and "_rank" not in k
        },
    }
    digests = summary["replica_digests"]
    if len(set(digests)) > 1:
        raise RuntimeError(f"the workers' model replicas differ after training: {digests}")
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1))
    if cfg.index:
        from vidray.query import load_model

        summary["index"] = load_model(out).build_index(root)
    return summary


def ranked(metrics: dict[str, Any], prefix: str) -> list[int]:
    """The per-rank values `<prefix>0`, `<prefix>1`, ... of the last report, in rank order."""
    found = {int(k[len(prefix) :]): int(v) for k, v in metrics.items() if k.startswith(prefix)}
    return [found[r] for r in sorted(found)]


def save_model(checkpoint: Any, out: Path, image_size: int) -> None:
    """Lightning's checkpoint from Ray → a plain `model.pt` (weights + how to rebuild the model
    offline), written atomically."""
    import torch

    with checkpoint.as_directory() as ckpt_dir:
        state = torch.load(
            Path(ckpt_dir) / "checkpoint.ckpt", map_location="cpu", weights_only=False
        )
    with tempfile.NamedTemporaryFile(dir=out, delete=False) as tmp:
        torch.save(
            {
                "state_dict": state["state_dict"],
                "model_args": state["model_args"],
                "image_size": image_size,
                "epoch": state.get("epoch"),
            },
            tmp,
        )
    os.replace(tmp.name, out / MODEL_FILE)
