"""A build on local Ray against the same stages run one after another in one process, and the
peak memory of a build over a small and a ten-times-larger corpus.

    python bench/pipeline.py --work /tmp/vidray-pipeline [--videos 4,40] [--minutes 0.5]
        [--long 4x5] [--cores 2] [--source http|file] [--variant LABEL=KEY=VALUE,...] [--json OUT]

Narrated sample videos (`make_samples`, seed 0) are generated into `--work` once and reused: a
short corpus (the largest of `--videos`, `--minutes` each; smaller corpora are its first videos)
and a long one (`--long`: 4 videos of 5 minutes, about as much video as 40 of 0.5 minutes).
The config is the embedded default (`vidray/configs/local.yaml`) with the corpus's domain
vocabulary, as `make demo` builds. With `--source http` (the default) the videos are served by
`vidray.testing.webserver` on loopback and fetched by yt-dlp, so fetch does real work; the
server process stands in for the web and is counted apart. Then:

1. In one process, without Ray: the stages of `stage_plan(cfg, output)` (the fetch + decode +
   audio statistics chain split into its parts), each video a batch of one, as the default
   config's `batch_size: 1` has Ray do. Each stage's CPU time (`time.process_time`, all
   threads) and wall time are summed over the videos; model loading (the first call, on an
   empty batch) is reported apart. Rate: video seconds per CPU second.
2. On Ray, per corpus size: a fresh local Ray started as `run_build` starts one
   (`ray.init(num_cpus=--cores)`, no dashboard unless `build.ray.dashboard`, timed apart) and
   the real `run_build` into a fresh output folder. Its wall time (Ray start-up excluded; input
   expansion, the stages, and the corpus statistics and card written at the end included) is
   compared with the ideal `(stage CPU seconds + model loading once) / cores`:
   overhead = wall / ideal - 1. Every 0.2 s a sampler thread reads /proc for this process and
   all its descendants (a locally started Ray's gcs_server, raylet, dashboard and workers are
   its children): CPU time per process, grouped by role, and summed RSS (every fifth sample
   also PSS, where pages shared between processes count once). The whole machine's CPU time
   (/proc/stat) shows other work sharing the cores; "overhead on the CPU left" takes the
   ideal on the cores that other work left free.
3. Peak memory over the smallest and the largest corpus, and their ratio; the Parquet bytes per
   kept frame of the largest build, by column.
4. `--variant` rows: the largest corpus again under config overrides (`ray.*.batch_size=4`
   sets every stage's) or `init.<arg>=<value>` arguments to `ray.init`.

Before each timed part it waits (up to `--quiet-wait` s) for the machine to be mostly idle.
Linux only (/proc). Results: markdown tables on stdout and `--json` (default WORK/pipeline.json).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import threading
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vidray.config import BuildConfig, Config, apply_override, load_config

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
STAGE_KEYS = ("decode", "transcribe", "keywords", "shots", "embed", "dedup", "label", "sink")


# --- corpus and config ------------------------------------------------------------------------


def corpus(work: Path, videos: int, minutes: float, seed: int) -> list[Path]:
    """`videos` sample videos in WORK/videos-<minutes>m-s<seed>, made once; video i does not
    depend on how many are made, so a smaller corpus is a prefix of a larger one."""
    from vidray.testing.sample import make_samples

    folder = work / f"videos-{minutes:g}m-s{seed}"
    have = sorted(folder.glob("sample_*.mp4"))
    if len(have) < videos or not (folder / "vocabulary.txt").is_file():
        t0 = time.perf_counter()
        make_samples(folder, videos=videos, minutes=minutes, seed=seed)
        print(f"generated {videos} videos in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        have = sorted(folder.glob("sample_*.mp4"))
    return have[:videos]


def duration_s(video: Path) -> float:
    return float(json.loads(video.with_suffix(".json").read_text())["duration"])


def build_config(vocabulary: Path, overrides: list[str]) -> BuildConfig:
    """The embedded default config with the corpus's vocabulary, then `overrides`."""
    cfg = load_config()
    apply_override(cfg, f"build.asr.pocketsphinx.vocabulary={vocabulary}")
    return with_overrides(cfg.build, overrides)


def with_overrides(cfg: BuildConfig, overrides: list[str]) -> BuildConfig:
    """A copy of `cfg` with `key=value` overrides (`build.` may be left off; a `*` stands for
    every stage, as in `ray.*.batch_size=4`)."""
    out = Config(build=copy.deepcopy(cfg))
    for item in overrides:
        key, _, value = item.partition("=")
        key = key if key.startswith("build.") else f"build.{key}"
        for k in [key.replace("*", s) for s in STAGE_KEYS] if "*" in key else [key]:
            apply_override(out, f"{k}={value}")
    return out.build


# --- /proc sampling ---------------------------------------------------------------------------


def proc_table() -> dict[int, tuple[int, float, int]]:
    """pid → (parent pid, CPU seconds user + system, RSS bytes) for every process we can read."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            with open(f"/proc/{name}/statm", "rb") as f:
                rss = int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) "
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
        out[int(name)] = (int(fields[1]), cpu, rss)
    return out


def descendants(table: dict[int, tuple[int, float, int]], root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _, _) in table.items():
        children[ppid].append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def role(pid: int) -> str:
    """What a process of the local Ray tree is, from its name and command line (read on every
    sample: a worker forked by the raylet is called `raylet` until it execs)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmd = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return "gone"
    if pid == os.getpid():
        return "driver"
    if comm in ("raylet", "gcs_server"):
        return comm
    if any(k in cmd for k in ("dashboard", "DashboardAgent", "RuntimeEnvAgent", "runtime_env")):
        return "dashboard + agents"
    if "log_monitor" in cmd or "monitor.py" in cmd:
        return "monitors"
    if "vidray.testing.webserver" in cmd:
        return "webserver"
    if cmd.startswith("ray::") or comm.startswith("ray::") or "default_worker.py" in cmd:
        return "workers"
    return f"other ({comm})"


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / CLK_TCK, sum(ticks) / CLK_TCK


def wait_quiet(max_wait_s: float, busy_below: float = 0.25) -> float:
    """Wait (up to `max_wait_s`) until the machine is mostly idle: other work on a 2-core
    machine would be charged to the run. Returns the busy share of the last 2 s looked at."""
    deadline = time.monotonic() + max_wait_s
    while True:
        b0, t0 = machine_busy()
        time.sleep(2.0)
        b1, t1 = machine_busy()
        share = (b1 - b0) / max(t1 - t0, 1e-9)
        if share < busy_below or time.monotonic() > deadline:
            if share >= busy_below:
                print(f"machine still {share:.0%} busy after {max_wait_s:.0f} s; going on",
                      file=sys.stderr)  # fmt: skip
            return share


def pss(pid: int) -> int:
    """Proportional set size in bytes (shared pages split among the processes sharing them)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def title(pid: int) -> str:
    """A Ray worker's process title (`ray::MapWorker(...)`, `ray::IDLE`, `ray::_StatsActor`)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return "?"
    return cmd.strip()[:60] if cmd.startswith("ray::") else "ray worker (starting)"


class Sampler:
    """Samples this process's tree every `every_s` s: CPU per process, summed RSS, and every
    `pss_every` samples summed PSS (dearer to read); peaks of both."""

    def __init__(self, every_s: float = 0.2, pss_every: int = 5) -> None:
        self.every_s, self.pss_every = every_s, pss_every
        self.root = os.getpid()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.roles: dict[int, str] = {}
        self.titles: dict[int, str] = {}
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_parts: dict[str, int] = {}
        self.samples = 0
        self.own_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self.sample(baseline=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        t0 = time.thread_time()
        while not self._stop.wait(self.every_s):
            self.sample()
        self.own_cpu = time.thread_time() - t0

    def sample(self, baseline: bool = False) -> None:
        table = proc_table()
        total, total_pss, parts = 0, 0, defaultdict[str, int](int)
        with_pss = self.samples % self.pss_every == 0
        for pid in descendants(table, self.root):
            _, cpu, rss = table[pid]
            if (kind := role(pid)) != "gone":
                self.roles[pid] = kind
            if pid not in self.roles:
                continue
            if self.roles[pid] == "workers":  # keep the actor's name once it has one
                name = title(pid)
                if pid not in self.titles or (name.startswith("ray::") and name != "ray::IDLE"):
                    self.titles[pid] = name
            # A process first seen after the baseline started during the run: count all of it.
            self.first.setdefault(pid, cpu if baseline else 0.0)
            self.last[pid] = cpu
            if self.roles[pid] != "webserver":  # it stands in for the web: not the build's memory
                total += rss
                parts[self.roles[pid]] += rss
                total_pss += pss(pid) if with_pss else 0
        self.samples += 1
        self.peak_pss = max(self.peak_pss, total_pss)
        if total > self.peak_rss:
            self.peak_rss, self.peak_parts = total, dict(parts)

    def cpu_by_role(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for pid, cpu in self.last.items():
            out[self.roles[pid]] += cpu - self.first[pid]
        return dict(out)

    def worker_cpu(self) -> list[tuple[str, float]]:
        """(title, CPU seconds during the run) of each worker process, largest first."""
        cpu = [
            (self.titles.get(p, "?"), round(c - self.first[p], 2))
            for p, c in self.last.items()
            if self.roles[p] == "workers"
        ]
        return sorted(cpu, key=lambda tc: -tc[1])


# --- 1. stages in one process -----------------------------------------------------------------


def in_process(cfg: BuildConfig, inputs: list[str], output: Path) -> dict[str, Any]:
    """Every stage of the plan in this process, each video a batch of one."""
    from vidray.pipeline import stage_plan
    from vidray.sink import prepare_output
    from vidray.sources import expand_inputs, read_inputs
    from vidray.stages.base import Chain

    shutil.rmtree(output, ignore_errors=True)
    prepare_output(str(output), cfg.output)
    stages: list[tuple[str, Any]] = []
    for name, cls, args, _ in stage_plan(cfg, str(output)):
        if cls is Chain:  # fetch, decode and audio statistics share an actor: time each part
            stages += [(getattr(c, "name", c.__name__), c(*a)) for c, a in args]
        else:
            stages.append((name, cls(*args)))
    setup: dict[str, dict[str, float]] = {}
    for name, stage in stages:
        w0, c0 = time.perf_counter(), time.process_time()
        stage([])  # loads models and word lists, as an actor's first batch does
        setup[name] = {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}
    rows = expand_inputs(read_inputs(inputs), cfg.sources, cfg.fetch)
    per_video: list[dict[str, dict[str, float]]] = []
    errors = []
    for row in rows:
        batch: Any = [row]
        times = {}
        for name, stage in stages:
            w0, c0 = time.perf_counter(), time.process_time()
            batch = stage(batch)
            times[name] = {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}
        per_video.append(times)
        summary = batch.to_pylist()[0]
        if summary.get("error"):
            errors.append(f"{summary['error_stage']}: {summary['error']}")
    return {"stages": [n for n, _ in stages], "setup": setup, "per_video": per_video,
            "errors": errors}  # fmt: skip


def stage_totals(run: dict[str, Any], n: int) -> dict[str, dict[str, float]]:
    """Each stage's CPU and wall seconds over the first `n` videos."""
    out = {}
    for name in run["stages"]:
        out[name] = {k: sum(v[name][k] for v in run["per_video"][:n]) for k in ("cpu_s", "wall_s")}
    return out


# --- 2. the real build on local Ray -----------------------------------------------------------


def ray_build(
    cfg: BuildConfig, inputs: list[str], output: Path, init: dict[str, Any]
) -> dict[str, Any]:
    """A fresh local Ray, `run_build`, shutdown: times, CPU by process role (and the whole
    machine's, to see other work sharing the cores) and peak RSS."""
    import ray

    from vidray.pipeline import run_build

    shutil.rmtree(output, ignore_errors=True)
    t0 = time.perf_counter()
    # As run_build starts Ray: no driver log forwarding, the dashboard as build.ray.dashboard.
    ray.init(**{"log_to_driver": False, "include_dashboard": cfg.ray.dashboard, **init})
    init_s = time.perf_counter() - t0
    done_at: list[float] = []
    try:
        with Sampler() as sampler:
            m0 = machine_busy()[0]
            w0, c0 = time.perf_counter(), time.process_time()
            result = run_build(
                inputs,
                str(output),
                cfg,
                progress=lambda *_: done_at.append(time.perf_counter() - w0),
            )
            wall = time.perf_counter() - w0
            driver_cpu = time.process_time() - c0
            machine = machine_busy()[0] - m0
        t0 = time.perf_counter()
    finally:
        ray.shutdown()
    shutdown_s = time.perf_counter() - t0
    cpu = sampler.cpu_by_role()
    cpu["driver"] = driver_cpu - sampler.own_cpu  # the sampler thread is the bench's, not Ray's
    web = cpu.pop("webserver", 0.0)
    return {
        "init_s": init_s,
        "wall_s": wall,
        "iterate_s": result.seconds,
        "first_video_done_s": done_at[0] if done_at else None,
        "videos_done_at_s": done_at,
        "shutdown_s": shutdown_s,
        "result": asdict(result),
        "cpu_by_role": cpu,
        "worker_cpu_s": sampler.worker_cpu(),
        "webserver_cpu_s": web,
        "sampler_cpu_s": sampler.own_cpu,
        "others_cpu_s": max(0.0, machine - sum(cpu.values()) - web - sampler.own_cpu),
        "samples": sampler.samples,
        "peak_rss_mb": sampler.peak_rss / 2**20,
        "peak_pss_mb": sampler.peak_pss / 2**20,
        "peak_rss_by_role_mb": {k: v / 2**20 for k, v in sampler.peak_parts.items()},
        "output_mb": sum(p.stat().st_size for p in output.rglob("*") if p.is_file()) / 2**20,
    }


def frame_bytes(root: Path) -> dict[str, Any]:
    """Compressed Parquet bytes per kept frame in ROOT/frames, by column (from file footers)."""
    import pyarrow.parquet as pq

    files = sorted((root / "frames").rglob("*.parquet"))
    rows, by_column = 0, defaultdict[str, int](int)
    for f in files:
        meta = pq.ParquetFile(f).metadata
        rows += meta.num_rows
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                col = group.column(c)
                by_column[col.path_in_schema.split(".")[0]] += col.total_compressed_size
    size = sum(f.stat().st_size for f in files)
    return {
        "files": len(files),
        "rows": rows,
        "file_bytes_per_frame": size / max(rows, 1),
        "column_bytes_per_frame": {k: v / max(rows, 1) for k, v in sorted(
            by_column.items(), key=lambda kv: -kv[1])},
    }  # fmt: skip


# --- report -----------------------------------------------------------------------------------


def split_variant(spec: str) -> tuple[str, list[str], dict[str, Any]]:
    """`LABEL=key=value,...` → label, config overrides, and `init.<arg>=<value>` ray.init args."""
    import yaml

    label, _, items = spec.partition("=")
    overrides, init = [], {}
    for item in filter(None, items.split(",")):
        key, _, value = item.partition("=")
        if key.startswith("init."):
            init[key.removeprefix("init.")] = yaml.safe_load(value)
        else:
            overrides.append(item)
    return label, overrides, init


def print_stages(ref: dict[str, Any], totals: dict[str, dict[str, float]], video_s: float) -> None:
    print("| stage | CPU s | wall s | video-s per CPU-s | share of CPU | model load CPU s |")
    print("| --- | --- | --- | --- | --- | --- |")
    all_cpu = sum(t["cpu_s"] for t in totals.values())
    for name, t in totals.items():
        print(
            f"| {name} | {t['cpu_s']:.2f} | {t['wall_s']:.2f} | "
            f"{video_s / max(t['cpu_s'], 1e-9):,.0f} | {t['cpu_s'] / all_cpu:.1%} | "
            f"{ref['setup'][name]['cpu_s']:.2f} |"
        )
    print(
        f"| **all stages** | {all_cpu:.2f} | {sum(t['wall_s'] for t in totals.values()):.2f} "
        f"| {video_s / all_cpu:,.1f} | 100% | "
        f"{sum(s['cpu_s'] for s in ref['setup'].values()):.2f} |"
    )
    if ref["errors"]:
        print(f"\nin-process errors: {ref['errors']}")


def print_runs(results: list[dict[str, Any]], cores: int) -> None:
    print(
        "\n| config | videos | video s | ray.init s | build wall s | first video done s "
        "| ideal s | overhead | others' CPU s | overhead on the CPU left | peak RSS MB "
        "| peak PSS MB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['config']} | {r['videos']} | {r['video_s']:.0f} | {r['init_s']:.1f} | "
            f"{r['wall_s']:.1f} | {r['first_video_done_s'] or float('nan'):.1f} | "
            f"{r['ideal_s']:.1f} | {r['overhead']:+.0%} | {r['others_cpu_s']:.0f} | "
            f"{r['overhead_left']:+.0%} | {r['peak_rss_mb']:.0f} | {r['peak_pss_mb']:.0f} |"
        )
    print(
        "\nCPU seconds during each build by process, against the stages' CPU in one process "
        "(model loading once included):\n"
    )
    roles = ["workers", "driver", "raylet", "gcs_server", "dashboard + agents", "monitors"]
    roles += sorted({k for r in results for k in r["cpu_by_role"]} - set(roles))
    print("| config | videos | stages in-process | " + " | ".join(roles) + " | all | available |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in roles) + " | --- | --- |")
    for r in results:
        cells = [f"{r['cpu_by_role'].get(k, 0.0):.1f}" for k in roles]
        print(
            f"| {r['config']} | {r['videos']} | {r['stage_cpu_s'] + r['setup_cpu_s']:.1f} | "
            + " | ".join(cells)
            + f" | {r['cpu_used_s']:.1f} | {cores * r['wall_s']:.1f} |"
        )
    print("\nWorker processes (CPU seconds during the build, by process title):\n")
    for r in results:
        groups: dict[str, list[float]] = defaultdict(list)
        for name, cpu in r["worker_cpu_s"]:
            groups[name.removeprefix("ray::").split("(")[0].split(".")[0]].append(cpu)
        line = ", ".join(
            f"{k} x{len(v)}: {' + '.join(f'{c:.1f}' for c in v)}" for k, v in groups.items()
        )
        print(f"- {r['config']}, {r['videos']} videos: {line}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default="/tmp/vidray-pipeline")
    p.add_argument("--videos", default="4,40", help="corpus sizes, comma-separated")
    p.add_argument("--minutes", type=float, default=0.5, help="length of each sample video")
    p.add_argument("--long", default="4x5", metavar="VIDEOSxMINUTES",
                   help="one more run over fewer, longer videos (0: none)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cores", type=int, default=2, help="num_cpus of the local Ray")
    p.add_argument("--source", choices=["http", "file"], default="http")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run")  # fmt: skip
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=KEY=VALUE,...",
                   help="one more Ray run over the largest corpus under these overrides;\n"
                   "init.<arg>=<value> goes to ray.init, e.g. init.include_dashboard=false")  # fmt: skip
    p.add_argument("--quiet-wait", type=float, default=30.0,
                   help="wait up to this long for an idle machine before each timed part")  # fmt: skip
    p.add_argument("--json", help="results file (default WORK/pipeline.json)")
    args = p.parse_args(argv)
    started = time.perf_counter()
    command = "python bench/pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = sorted({int(v) for v in args.videos.split(",")})
    corpora = {"short": corpus(work, max(sizes), args.minutes, args.seed)}
    if args.long not in ("", "0"):
        n, _, minutes = args.long.partition("x")
        corpora["long"] = corpus(work, int(n), float(minutes), args.seed)
    durations = {k: [duration_s(v) for v in vs] for k, vs in corpora.items()}
    cfg = build_config(corpora["short"][0].parent / "vocabulary.txt", args.set)
    runs: list[tuple[str, str, int, BuildConfig, list[str], dict[str, Any]]] = [
        ("default", "short", n, cfg, [], {}) for n in sizes
    ]
    if "long" in corpora:
        label = f"default, {len(corpora['long'])} x {minutes} min videos"
        runs.append((label, "long", len(corpora["long"]), cfg, [], {}))
    for spec in args.variant:
        label, overrides, init = split_variant(spec)
        runs.append((label, "short", max(sizes), with_overrides(cfg, overrides), overrides, init))
    print(command)
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; corpora: "
        + "; ".join(f"{k}: {len(v)} videos, {sum(durations[k]):.0f} s" for k, v in corpora.items())
    )

    from vidray.testing.webserver import serve

    with serve(work) as base:
        inputs = {
            k: [f"{base}/files/{v.parent.name}/{v.name}" if args.source == "http" else str(v)
                for v in vs]
            for k, vs in corpora.items()
        }  # fmt: skip

        # 1. the stages in one process, over every video of each corpus
        refs = {}
        for name in corpora:
            busy = wait_quiet(args.quiet_wait)
            refs[name] = in_process(cfg, inputs[name], work / "runs" / f"in-process-{name}")
            refs[name]["machine_busy_before"] = busy
            print(f"\nstages in one process, {name} corpus ({len(corpora[name])} videos):\n")
            print_stages(refs[name], stage_totals(refs[name], len(corpora[name])),
                         sum(durations[name]))  # fmt: skip

        # 2. + 3. the real build on local Ray: each corpus size, then the variants
        results = []
        for label, name, n, run_cfg, overrides, init in runs:
            busy = wait_quiet(args.quiet_wait)
            out = work / "runs" / f"{label.replace(' ', '_').replace(',', '')}-{n}"
            r = ray_build(run_cfg, inputs[name][:n], out, {"num_cpus": args.cores, **init})
            stage_cpu = sum(t["cpu_s"] for t in stage_totals(refs[name], n).values())
            # model loading as a fresh process pays it: the first corpus's (later ones reuse
            # modules this process has already imported)
            setup_cpu = max(sum(s["cpu_s"] for s in ref["setup"].values()) for ref in refs.values())
            ideal_cpu = stage_cpu + setup_cpu
            left = args.cores - r["others_cpu_s"] / r["wall_s"]  # cores other work left us
            r |= {
                "config": label,
                "corpus": name,
                "output": str(out),
                "overrides": overrides,
                "init": init,
                "videos": n,
                "video_s": sum(durations[name][:n]),
                "machine_busy_before": busy,
                "stage_cpu_s": stage_cpu,
                "setup_cpu_s": setup_cpu,
                "ideal_s": ideal_cpu / args.cores,
                "overhead": r["wall_s"] / (ideal_cpu / args.cores) - 1,
                "overhead_left": r["wall_s"] / (ideal_cpu / left) - 1,
                "cpu_used_s": sum(r["cpu_by_role"].values()),
            }
            results.append(r)
            print(
                f"{label}, {n} videos: wall {r['wall_s']:.1f} s, ideal {r['ideal_s']:.1f} s, "
                f"others' CPU {r['others_cpu_s']:.0f} s",
                file=sys.stderr,
            )
    print_runs(results, args.cores)

    short = [r for r in results if r["config"] == "default" and r["corpus"] == "short"]
    marginal = None
    if len(short) > 1:  # the fixed start-up cost cancels out; walls on the CPU left
        a, b = short[0], short[-1]
        free = [r["wall_s"] - r["others_cpu_s"] / args.cores for r in (a, b)]
        marginal = (free[1] - free[0]) / (b["ideal_s"] - a["ideal_s"]) - 1
        print(
            f"\nmarginal overhead from {a['videos']} to {b['videos']} videos (extra wall / extra "
            f"ideal - 1, walls less others' CPU / cores): {marginal:+.0%}; the fixed cost left "
            f"at {a['videos']} videos: {free[0] - a['ideal_s'] * (1 + marginal):.1f} s"
        )
    # memory: the default builds with the least and the most video
    default = sorted((r for r in results if r["overrides"] == [] and not r["init"]),
                     key=lambda r: r["video_s"])  # fmt: skip
    small, large = default[0], default[-1]
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    print(
        f"\npeak RSS (driver + all descendants, summed): {small['videos']} videos "
        f"{small['peak_rss_mb']:.0f} MB, {large['videos']} videos {large['peak_rss_mb']:.0f} MB, "
        f"ratio {ratio:.2f}x (goal <= 1.25x); peak PSS {small['peak_pss_mb']:.0f} and "
        f"{large['peak_pss_mb']:.0f} MB"
    )
    for r in (small, large):
        parts = ", ".join(
            f"{k} {v:.0f}"
            for k, v in sorted(r["peak_rss_by_role_mb"].items(), key=lambda kv: -kv[1])
        )
        print(f"  at the peak, {r['videos']} videos: {parts}")
    sizes_out = frame_bytes(Path(large["output"]))
    cols = sizes_out["column_bytes_per_frame"]
    print(
        f"\nParquet frames/ of the {large['videos']}-video build: {sizes_out['rows']} kept frames "
        f"in {sizes_out['files']} files, {sizes_out['file_bytes_per_frame']:,.0f} bytes per frame "
        f"on disk; image {cols.get('image', 0):,.0f}, embedding {cols.get('embedding', 0):,.0f}, "
        f"all other columns {sum(v for k, v in cols.items() if k not in ('image', 'embedding')):,.0f}"
    )
    print(
        f"\ntotal bench time {time.perf_counter() - started:.0f} s; "
        f"load average at end {os.getloadavg()[0]:.1f}"
    )
    report = {
        "command": command,
        "cores": args.cores,
        "source": args.source,
        "corpora": {k: [v.name for v in vs] for k, vs in corpora.items()},
        "durations_s": durations,
        "in_process": {
            k: {
                "stages": stage_totals(ref, len(corpora[k])),
                "setup": ref["setup"],
                "per_video": ref["per_video"],
                "errors": ref["errors"],
                "machine_busy_before": ref["machine_busy_before"],
            }
            for k, ref in refs.items()
        },
        "ray": results,
        "peak_rss_ratio": ratio,
        "marginal_overhead": marginal,
        "frames_table": sizes_out,
    }
    Path(args.json or work / "pipeline.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
