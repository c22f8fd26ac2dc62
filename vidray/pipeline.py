"""The Ray Data graph of a build: the one place stages meet Ray, with resources from the config."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vidray.config import BuildConfig, StageResources
from vidray.sink import ParquetSink, check_output
from vidray.sources import expand_inputs
from vidray.stages.decode import DecodeStage
from vidray.stages.dedup import DedupStage
from vidray.stages.keywords import KeywordsStage
from vidray.stages.label import LabelStage
from vidray.stages.shots import ShotsStage
from vidray.stages.transcribe import TranscribeStage

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    output: str
    videos: int = 0
    errors: int = 0
    frames_sampled: int = 0
    frames_kept: int = 0
    seconds: float = 0.0


def stage_plan(
    cfg: BuildConfig, output: str
) -> list[tuple[str, Any, tuple[Any, ...], StageResources]]:
    """(name, callable class, constructor args, resources) for each stage, in order."""
    return [
        ("decode", DecodeStage, (cfg.decode,), cfg.ray.decode),
        ("transcribe", TranscribeStage, (cfg.transcribe,), cfg.ray.transcribe),
        ("keywords", KeywordsStage, (cfg.keywords,), cfg.ray.keywords),
        ("shots", ShotsStage, (cfg.shots,), cfg.ray.shots),
        ("dedup", DedupStage, (cfg.dedup,), cfg.ray.dedup),
        ("label", LabelStage, (cfg.label,), cfg.ray.label),
        ("sink", ParquetSink, (output, cfg.output), cfg.ray.sink),
    ]


def check_fits(
    plan: list[tuple[str, Any, tuple[Any, ...], StageResources]], cluster_cpus: float
) -> None:
    """Ray Data waits forever for actors that can never be placed: refuse such a plan up front."""
    for name, _, _, res in plan:
        if res.num_cpus > cluster_cpus:
            raise ValueError(
                f"stage {name!r} asks {res.num_cpus} CPUs per actor but the cluster has {cluster_cpus}: "
                f"lower build.ray.{name}.num_cpus"
            )
        if res.min_actors > res.max_actors:
            raise ValueError(
                f"build.ray.{name}: min_actors ({res.min_actors}) > max_actors ({res.max_actors})"
            )
    need = sum(res.num_cpus * res.min_actors for _, _, _, res in plan)
    if need >= cluster_cpus:  # the read task needs a slot of its own
        raise ValueError(
            f"the stages' minimum actor pools need {need:g} CPUs but the cluster has {cluster_cpus:g} "
            "(and Ray Data needs some left for reading): lower build.ray.<stage>.num_cpus or min_actors"
        )


def run_build(
    inputs: list[str],
    output: str,
    cfg: BuildConfig,
    progress: Callable[[dict[str, Any], int, int], None] | None = None,
) -> BuildResult:
    """Expand inputs, check the job, stream every video through the stages and write the tables."""
    import ray
    import ray.data

    rows = expand_inputs(inputs)
    check_output(output)
    plan = stage_plan(cfg, output)
    if not ray.is_initialized():
        ray.init(address=cfg.ray.address, num_cpus=cfg.ray.num_cpus, log_to_driver=False)
    check_fits(plan, ray.cluster_resources().get("CPU", 0.0))

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = sys.stderr.isatty()
    ds: ray.data.Dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    for _name, cls, args, res in plan:
        ds = ds.map_batches(
            cls,
            fn_constructor_args=args,
            batch_size=res.batch_size,
            batch_format="pyarrow",
            num_cpus=res.num_cpus,
            compute=ray.data.ActorPoolStrategy(min_size=res.min_actors, max_size=res.max_actors),
        )

    result = BuildResult(output=output)
    start = time.time()
    for i, summary in enumerate(ds.iter_rows(), 1):
        if summary["error"]:
            result.errors += 1
        else:
            result.videos += 1
            result.frames_sampled += summary["frames_sampled"]
            result.frames_kept += summary["frames_kept"]
        if progress:
            progress(summary, i, len(rows))
    result.seconds = time.time() - start
    return result
