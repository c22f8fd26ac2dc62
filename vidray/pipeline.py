"""The Ray Data graph of a build: the one place stages meet Ray, with resources from the config."""

from __future__ import annotations

import logging
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from vidray.asr.base import SAMPLE_RATE
from vidray.capacity import PlanEntry, check_fits, check_shared_output, cluster_capacity
from vidray.config import (
    BuildConfig,
    ConfigError,
    FetchConfig,
    OutputConfig,
    RayConfig,
    parse_size,
)
from vidray.progress import Progress, logs_above_bars, polling
from vidray.sink import (
    ParquetSink,
    check_output,
    committed_videos,
    iter_batches,
    open_root,
    prepare_output,
    write_table,
)
from vidray.sources import expand_inputs, read_inputs, resolve_urls
from vidray.stages.audio_stats import AudioStatsStage
from vidray.stages.base import Chain, Pool, VideoError, failed
from vidray.stages.decode import DecodeStage
from vidray.stages.dedup import DedupStage
from vidray.stages.embed import EmbedStage
from vidray.stages.fetch import FetchStage, HostGate
from vidray.stages.keywords import KeywordsStage, corpus_stats
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
    skipped: int = 0  # videos already committed by an earlier run (--resume)
    unreported: int = 0  # committed by the sink, but its summary was lost with a worker
    error_stages: dict[str, int] = field(default_factory=dict)  # stage -> videos failed there
    fetched: int = 0  # videos downloaded or copied from S3 (local files are read in place)
    fetched_bytes: int = 0

    def count(self, summary: dict[str, Any]) -> None:
        """Add one video's sink summary."""
        if summary["error"]:
            self.errors += 1
            stage = summary.get("error_stage") or "?"
            self.error_stages[stage] = self.error_stages.get(stage, 0) + 1
        else:
            self.videos += 1
            self.frames_sampled += summary["frames_sampled"]
            self.frames_kept += summary["frames_kept"]


def stage_plan(cfg: BuildConfig, output: str, gate: Any = None) -> list[PlanEntry]:
    """(name, callable class, constructor args, resources) for each stage, in order."""
    if cfg.decode.sample_rate != SAMPLE_RATE:
        raise ConfigError(
            f"build.decode.sample_rate is {cfg.decode.sample_rate}, but the speech backends take "
            f"{SAMPLE_RATE} Hz audio: leave it at {SAMPLE_RATE}"
        )
    media = f"{output.rstrip('/')}/media"
    if "subtitles" in cfg.asr.backends() and not cfg.fetch.subtitles:
        raise ConfigError(
            "asr uses subtitles but fetch.subtitles is false, so no captions would be fetched: "
            "set fetch.subtitles=true"
        )
    # Built here once so job errors (an unknown backend, a missing word list) stop the job on
    # the driver instead of failing every actor; the constructors only read small files.
    TranscribeStage(cfg.asr)
    KeywordsStage(cfg.keywords)
    embed = [("embed", EmbedStage, (cfg.embed,), cfg.ray.embed)] if cfg.embed.enabled else []
    for _, cls, args, _ in embed:
        cls(*args)  # checks the model folder or hub name, device and dtype; loads nothing
    return [
        # One pool: the fetched file sits on the disk of the node that decodes it, and audio
        # statistics filter (e.g. music-only videos) before a speech model sees them.
        (
            "decode",
            Chain,
            (
                (FetchStage, (cfg.fetch, media, gate)),
                (DecodeStage, (cfg.decode,)),
                (AudioStatsStage, (cfg.audio_stats,)),
            ),
            cfg.ray.decode,
        ),
        ("transcribe", TranscribeStage, (cfg.asr,), cfg.ray.transcribe),
        ("keywords", KeywordsStage, (cfg.keywords,), cfg.ray.keywords),
        ("shots", ShotsStage, (cfg.shots,), cfg.ray.shots),
        *embed,  # before dedup, which compares embeddings when frames have them
        ("dedup", DedupStage, (cfg.dedup,), cfg.ray.dedup),
        ("label", LabelStage, (cfg.label,), cfg.ray.label),
        ("sink", ParquetSink, (output, cfg.output), cfg.ray.sink),
    ]


def pools(
    plan: list[PlanEntry],
) -> list[PlanEntry]:
    """Merge consecutive CPU stages with equal `build.ray` settings into one actor pool, a `Pool`
    subclass named after them (so Ray's dashboard and logs tell pools apart): the light
    stages then cost one worker process, not five. Entries keep `stage_plan`'s form."""
    groups: list[list[PlanEntry]] = []
    for stage in plan:
        if groups and groups[-1][-1][3] == stage[3] and not stage[3].num_gpus:
            groups[-1].append(stage)
        else:
            groups.append([stage])
    merged = []
    for group in groups:
        names = [name for name, *_ in group]
        title = "".join(n.title().replace("_", "") for n in names)
        merged.append(
            # A module no one imports: cloudpickle then ships the class by value to the actors.
            (
                "+".join(names),
                type(title, (Pool,), {"__module__": "vidray.pools"}),
                tuple(s[:3] for s in group),
                group[0][3],
            )
        )
    return merged


def run_build(
    inputs: list[str],
    output: str,
    cfg: BuildConfig,
    progress: Callable[[dict[str, Any], int, int], None] | None = None,
    resume: bool = False,
) -> BuildResult:
    """Expand inputs, check the job, stream every video through the stages and write the tables.

    A non-empty `output` is refused unless `resume`, which skips the videos already committed
    there (after deleting what an interrupted run left uncommitted)."""
    import ray

    entries = read_inputs(inputs)
    if not cfg.output.pixels and cfg.fetch.keep_media:
        raise ConfigError(
            "output.pixels is false (features-only) but fetch.keep_media would copy the videos "
            "into the output: set fetch.keep_media=false"
        )
    check_output(output, cfg.output)
    done = prepare_output(output, cfg.output, resume)
    if not ray.is_initialized():
        ray.init(
            address=cfg.ray.address,
            num_cpus=cfg.ray.num_cpus,
            include_dashboard=cfg.ray.dashboard,  # a Ray started here; ignored when joining one
            log_to_driver=False,
        )
    # One gate for the whole cluster: the per-host download cap holds across every fetch actor.
    gate_actor: Any = (
        ray.remote(HostGate)
        .options(num_cpus=0)
        .remote(cfg.fetch.per_host, cfg.fetch.min_interval_s)
    )
    plan = stage_plan(cfg, output, RemoteGate(gate_actor))
    alive = [n for n in ray.nodes() if n["Alive"]]
    plan = pools(plan)
    check_fits(
        plan, cluster_capacity([n["Resources"] for n in alive], cfg.ray.max_cpus, cfg.ray.max_gpus)
    )
    hosts = {n["NodeManagerAddress"] for n in alive}
    autoscales = cfg.ray.max_cpus is not None or cfg.ray.max_gpus is not None
    check_shared_output(output, hosts, cfg.output, autoscales)
    with Progress("sources", unit="inputs") as found:
        rows = expand_inputs(
            entries,
            cfg.sources,
            cfg.fetch,
            runner=ray_runner(cfg.sources.max_tasks_in_flight),
            progress=found,
        )
    if not rows:
        log.warning("the inputs expanded to no videos; nothing to do")
        return BuildResult(output=output)
    result = BuildResult(output=output, skipped=sum(row["video_id"] in done for row in rows))
    if done:
        rows = [row for row in rows if row["video_id"] not in done]
        log.info("resuming: %d videos already built, %d to go", result.skipped, len(rows))
    if not rows:
        return finish_build(output, cfg, result)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    rows = [{k: row.get(k) for k in keys} for row in rows]
    configure_data_context(cfg.ray)
    start = time.time()
    seen: set[str] = set()
    bar = Progress("build", total=len(rows), unit="videos")

    def record(summary: dict[str, Any]) -> None:
        seen.add(summary["video_id"])
        result.count(summary)
        bar.update(1, errors=bool(summary["error"]), note=build_note(result))
        if progress:
            progress(summary, len(seen), len(rows))

    def count_fetched() -> None:
        stats = ray.get(gate_actor.stats.remote(), timeout=10)
        result.fetched, result.fetched_bytes = stats["downloads"], stats["bytes"]
        bar.note(build_note(result))

    pending = rows
    with bar, polling(count_fetched, every_s=2.0):
        # A batch whose actor kept dying (a node lost mid-flight, out of memory, a crash in
        # native code) is dropped by Ray Data. Its videos get one more pass on what is left of
        # the cluster, one video per batch and one batch per actor at a time, so a video that
        # kills its worker takes no other with it. Those lost again are recorded as errors: no
        # video is ever silently missing.
        for attempt in range(2):
            for summary in stream(pending, plan, cfg.ray, one_by_one=attempt > 0):
                record(summary)
            pending = [row for row in pending if row["video_id"] not in seen]
            if pending:  # a lost summary may be of a batch the sink committed: write none twice
                committed = committed_videos(output, cfg.output)
                unreported = sum(row["video_id"] in committed for row in pending)
                result.unreported += unreported
                if unreported:
                    bar.update(unreported)
                pending = [row for row in pending if row["video_id"] not in committed]
            if not pending:
                break
            log.warning(
                "pass %d lost %d video(s) with their Ray workers", attempt + 1, len(pending)
            )
        if pending:
            error = VideoError(
                "worker_died",
                f"the Ray worker running this video's batch died {cfg.ray.max_task_retries + 1} "
                "times in each of two passes (a lost node, out of memory, or a crash in native "
                "code): see the Ray logs",
            )
            sink = ParquetSink(output, cfg.output)
            for summary in sink(
                [failed(row, "ray", error, "WorkerDied") for row in pending]
            ).to_pylist():
                record(summary)
    result.seconds = time.time() - start
    return finish_build(output, cfg, result)


def build_note(result: BuildResult) -> str:
    """The build bar's status: downloads so far and where videos failed."""
    parts = []
    if result.fetched:
        parts.append(f"fetched {result.fetched} ({result.fetched_bytes / 2**20:,.0f} MiB)")
    stages = result.error_stages.copy()  # read while the driver's loop may add to it
    if stages:
        worst = sorted(stages.items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append("errors by stage: " + ", ".join(f"{s} {n}" for s, n in worst))
    return "; ".join(parts)


def stream(
    rows: list[dict[str, Any]],
    plan: list[PlanEntry],
    cfg: RayConfig,
    one_by_one: bool = False,
) -> Iterator[dict[str, Any]]:
    """Run `rows` (one per video) through the actor pools of `pools(plan)`; yield the sink's
    summary row of each video as it is committed."""
    import ray.data
    from ray.util.annotations import RayDeprecationWarning

    ds: ray.data.Dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), 2000))
    for _name, cls, args, res in plan:
        with warnings.catch_warnings():
            # Ray Data retries a batch forever when its actor dies, so one video that crashes
            # its worker would stall the build: bound the retries. Ray 2.60 has no named
            # parameter for it yet and warns about such extra remote arguments.
            warnings.simplefilter("ignore", RayDeprecationWarning)
            ds = ds.map_batches(
                cls,
                fn_constructor_args=args,
                batch_size=1 if one_by_one else res.batch_size,
                batch_format="pyarrow",
                num_cpus=res.num_cpus,
                num_gpus=res.num_gpus or None,
                compute=ray.data.ActorPoolStrategy(
                    min_size=1 if one_by_one else res.min_actors,  # nodes may be gone
                    max_size=res.max_actors,
                    # Batches queued on an actor that dies are lost with it, unretried.
                    max_tasks_in_flight_per_actor=1 if one_by_one else None,
                ),
                max_task_retries=cfg.max_task_retries,
            )
    yield from ds.iter_rows()


def configure_data_context(cfg: RayConfig) -> None:
    """Ray Data's execution settings for this driver: the object store budget that bounds
    batches in flight (backpressure), how many failed batches are tolerated; no progress bars."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the build's own progress (vidray.progress) shows it
    logs_above_bars("ray", "ray.data")
    ctx.max_errored_blocks = cfg.max_errored_blocks
    if cfg.object_store_memory:
        ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(
            object_store_memory=parse_size(cfg.object_store_memory)
        )


def finish_build(output: str, cfg: BuildConfig, result: BuildResult) -> BuildResult:
    """Regenerate what is derived from all committed tables: corpus statistics and the card."""
    from vidray.card import write_card

    write_corpus_stats(output, cfg.output)
    write_card(output, cfg)
    return result


def write_corpus_stats(root: str, out: OutputConfig | None = None) -> None:
    """ROOT/corpus_stats.parquet: in how many videos each keyword was said, so a later run
    (`keywords.corpus_stats`) can score salience as tf-idf over this corpus."""
    out = out or OutputConfig()
    batches = iter_batches(
        root, "videos", ["keywords"], endpoint_url=out.endpoint_url, region=out.region
    )
    keywords = (kws for batch in batches for kws in batch.column("keywords").to_pylist())
    fs, base = open_root(root, out.endpoint_url, out.region)
    write_table(fs, f"{base}/corpus_stats.parquet", corpus_stats(keywords))


class RemoteGate:
    """The fetch stage's `Gate`, answered by one `HostGate` actor shared by all fetch actors."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def try_acquire(self, host: str) -> float:
        import ray

        return float(ray.get(self.actor.try_acquire.remote(host)))

    def release(self, host: str) -> None:
        self.actor.release.remote(host)

    def finished(self, host: str, nbytes: int) -> None:
        self.actor.finished.remote(host, nbytes)


def ray_runner(
    max_in_flight: int,
) -> Callable[[list[list[str]], FetchConfig], Iterator[list[list[dict[str, Any]]]]]:
    """Resolve URL batches (playlists, channels, searches) as Ray tasks, a bounded number at a
    time, yielding results in input order; a consumer that stops early stops the submitting."""
    import ray

    remote: Any = ray.remote(num_cpus=0.1, max_retries=2)(resolve_urls)

    def run(chunks: list[list[str]], fetch: FetchConfig) -> Iterator[list[list[dict[str, Any]]]]:
        todo = iter(chunks)
        flight = deque(remote.remote(c, fetch) for c in islice(todo, max_in_flight))
        while flight:
            result = ray.get(flight.popleft())
            if (chunk := next(todo, None)) is not None:
                flight.append(remote.remote(chunk, fetch))
            yield result

    return run
