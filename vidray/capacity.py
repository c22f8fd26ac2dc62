"""Can a build's actor pools ever be placed on this cluster? Ray Data waits forever, silently,
for actors that cannot: these checks refuse such a plan on the driver before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vidray.config import ConfigError, OutputConfig, StageResources

# (name, callable class, constructor args, resources): a stage or a pool of the build plan.
PlanEntry = tuple[str, Any, tuple[Any, ...], StageResources]


@dataclass(frozen=True)
class Capacity:
    """What a cluster can ever offer: totals, and the most one node has (None: unknown, as
    on an autoscaling cluster whose workers have not started, so only the totals bind)."""

    cpus: float
    gpus: float = 0.0
    node_cpus: float | None = None
    node_gpus: float | None = None


def cluster_capacity(
    nodes: list[dict[str, float]], max_cpus: float | None = None, max_gpus: float | None = None
) -> Capacity:
    """Capacity from the live nodes' resources, or from an autoscaling cluster's declared
    maximum (`build.ray.max_cpus` / `max_gpus`), whichever is larger."""
    cpus = sum(n.get("CPU", 0.0) for n in nodes)
    gpus = sum(n.get("GPU", 0.0) for n in nodes)
    scales = max_cpus is not None or max_gpus is not None
    return Capacity(
        cpus=max(cpus, max_cpus or 0.0),
        gpus=max(gpus, max_gpus or 0.0),
        node_cpus=None if scales else max((n.get("CPU", 0.0) for n in nodes), default=0.0),
        node_gpus=None if scales else max((n.get("GPU", 0.0) for n in nodes), default=0.0),
    )


def check_fits(plan: list[PlanEntry], cap: Capacity) -> None:
    """Ray Data waits forever, silently, for actors that can never be placed: refuse such a
    plan before anything runs, naming the stage and the setting to change."""
    node_cpus = cap.cpus if cap.node_cpus is None else cap.node_cpus
    node_gpus = cap.gpus if cap.node_gpus is None else cap.node_gpus
    for name, _, _, res in plan:
        key = f"build.ray.{name}" if "+" not in name else f"build.ray.{{{name.replace('+', ',')}}}"
        if res.min_actors > res.max_actors or res.min_actors < 1:
            raise ConfigError(
                f"{key}: min_actors ({res.min_actors}) must be at least 1 and at most "
                f"max_actors ({res.max_actors})"
            )
        gpu_fix = (
            f"set {key}.num_gpus=0 (and its model to CPU), run on a cluster with GPUs, or "
            "declare an autoscaling cluster's GPUs in build.ray.max_gpus"
        )
        cpu_fix = (
            f"lower {key}.num_cpus, or declare an autoscaling cluster's CPUs in build.ray.max_cpus"
        )
        for kind, asks, node, known, fix in (
            ("GPUs", res.num_gpus, node_gpus, cap.node_gpus, gpu_fix),
            ("CPUs", res.num_cpus, node_cpus, cap.node_cpus, cpu_fix),
        ):
            if asks > node:
                where = "the cluster has" if known is None else "the largest node has"
                raise ConfigError(
                    f"stage {name!r} asks {asks:g} {kind} per actor but {where} {node:g}: {fix}"
                )
    gpus = {name: res.num_gpus * res.min_actors for name, _, _, res in plan if res.num_gpus}
    if sum(gpus.values()) > cap.gpus:
        shares = ", ".join(f"{n} {g:g}" for n, g in gpus.items())
        raise ConfigError(
            f"the stages' minimum actor pools need {sum(gpus.values()):g} GPUs ({shares}) but the "
            f"cluster has {cap.gpus:g}: lower build.ray.<stage>.num_gpus or min_actors"
        )
    cpus = {name: res.num_cpus * res.min_actors for name, _, _, res in plan}
    if sum(cpus.values()) >= cap.cpus:  # Ray Data needs a slot left for its own tasks
        top = sorted(cpus.items(), key=lambda kv: -kv[1])[:3]
        raise ConfigError(
            f"the stages' minimum actor pools need {sum(cpus.values()):g} CPUs (most: "
            f"{', '.join(f'{n} {c:g}' for n, c in top)}) but the cluster has {cap.cpus:g}, and "
            "Ray Data needs some left for its own tasks: lower build.ray.<stage>.num_cpus or "
            "min_actors"
        )


def check_shared_output(
    output: str, hosts: set[str], cfg: OutputConfig, autoscales: bool = False
) -> None:
    """Sink actors write where they run: on a cluster spanning machines (or an autoscaling one,
    whose workers are yet to come) a local path would scatter the dataset over their disks,
    unless it is one shared filesystem."""
    if "://" in output or (len(hosts) <= 1 and not autoscales) or cfg.shared_filesystem:
        return
    spans = f"spans {len(hosts)} machines" if len(hosts) > 1 else "autoscales over machines"
    raise ConfigError(
        f"output {output!r} is a local path but the cluster {spans}, whose "
        "sink actors would each write to their own disk: use s3://BUCKET/PREFIX, or a path on "
        "a filesystem mounted on every node and build.output.shared_filesystem=true"
    )
