"""A real multi-node Ray cluster on one machine, for job-submission and fault tests.

`ray start --head` and `ray start --address` each run with `--block` in a process group of
their own, on free loopback ports and under a temporary directory of their own, so a test can
kill one node (the whole group, as a lost machine would go) and stops exactly what it started:
no `ray stop`, which would end every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on loopback."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cluster_env(token: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Ray processes and the `ray` CLI: Ray 2.60's token auth with this
    cluster's own token, no usage reporting, and quick detection of a dead node."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # A job's `python` is this interpreter, as on a cluster whose nodes have vidray installed.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_DEDUP_LOGS="0",
        RAY_health_check_period_ms="1000",
        RAY_health_check_timeout_ms="1000",
        RAY_health_check_failure_threshold="3",
    )
    env.update(extra or {})
    return env


@dataclass
class Node:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the node's whole process group: raylet, object store, agents, workers."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class LocalCluster:
    """A head node plus worker nodes on this machine; use as a context manager."""

    root: Path
    head_cpus: int = 2
    nodes: list[Node] = field(default_factory=list)
    gcs_port: int = 0
    dashboard_port: int = 0
    token: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def __enter__(self) -> LocalCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.gcs_port, self.dashboard_port, client, agent, grpc, metrics, rt = free_ports(7)
        try:
            self._start_head(client, agent, grpc, metrics, rt)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_head(self, client: int, agent: int, grpc: int, metrics: int, rt: int) -> None:
        self._start(
            "head",
            [
                "--head",
                f"--port={self.gcs_port}",
                "--node-ip-address=127.0.0.1",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
                f"--ray-client-server-port={client}",
                f"--dashboard-agent-listen-port={agent}",
                f"--dashboard-agent-grpc-port={grpc}",
                f"--metrics-export-port={metrics}",
                f"--runtime-env-agent-port={rt}",
                f"--temp-dir={self.root / 'ray'}",
                f"--num-cpus={self.head_cpus}",
                "--num-gpus=0",
                "--disable-usage-stats",
            ],
        )
        self.wait(lambda: self.alive_nodes() == 1, "the head")

    def add_node(self, cpus: int, resources: dict[str, float] | None = None) -> Node:
        """Join a worker node with its own resources; return once the head counts it."""
        agent, grpc, metrics, rt = free_ports(4)
        node = self._start(
            f"worker{len(self.nodes)}",
            [
                f"--address={self.address}",
                "--node-ip-address=127.0.0.1",
                f"--dashboard-agent-listen-port={agent}",
                f"--dashboard-agent-grpc-port={grpc}",
                f"--metrics-export-port={metrics}",
                f"--runtime-env-agent-port={rt}",
                f"--num-cpus={cpus}",
                "--num-gpus=0",
                f"--resources={json.dumps(resources or {})}",
                "--disable-usage-stats",
            ],
        )
        running = sum(n.alive() for n in self.nodes)
        self.wait(lambda: self.alive_nodes() == running, f"node {node.name} to join")
        return node

    def kill_node(self, node: Node) -> None:
        """Kill a node as a lost machine goes (all its processes at once, no goodbye) and
        wait until the head has noticed."""
        node.kill(signal.SIGKILL)
        node.proc.wait()
        running = sum(n.alive() for n in self.nodes)
        self.wait(lambda: self.alive_nodes() == running, f"the head to see {node.name} lost")

    def alive_nodes(self) -> int:
        """Nodes the head counts as alive (a killed one drops out after a few seconds)."""
        return sum(1 for n in self._state("nodes") if n.get("state") == "ALIVE")

    def actors_per_node(self, class_prefix: str = "") -> dict[str, int]:
        """Alive actors (whose class name starts with `class_prefix`) on each alive worker node
        (not the head), by Ray node id."""
        nodes = self._state("nodes")
        workers = {
            n["node_id"] for n in nodes if n.get("state") == "ALIVE" and not n.get("is_head_node")
        }
        counts = dict.fromkeys(workers, 0)
        for actor in self._state("actors"):
            alive = actor.get("state") == "ALIVE" and actor.get("node_id") in counts
            if alive and str(actor.get("class_name", "")).startswith(class_prefix):
                counts[actor["node_id"]] += 1
        return counts

    def _state(self, kind: str) -> list[dict[str, Any]]:
        """A list from Ray's state API (`/api/v0/nodes`, `/api/v0/actors`)."""
        found = self._get(f"/api/v0/{kind}?limit=10000&detail=true") or {}
        return list(((found.get("data") or {}).get("result") or {}).get("result") or [])

    def job_status(self, job_id: str) -> str | None:
        """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED, from the job API."""
        info = self._get(f"/api/jobs/{job_id}")
        return info.get("status") if isinstance(info, dict) else None

    def job_logs(self, job_id: str) -> str:
        logs = self._get(f"/api/jobs/{job_id}/logs")
        return str(logs.get("logs", "")) if isinstance(logs, dict) else ""

    def ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the `ray` CLI against this cluster's job API."""
        return subprocess.run(
            [RAY, *args],
            env=self.env({"RAY_ADDRESS": self.dashboard}),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return cluster_env(self.token, extra)

    def __exit__(self, *exc: object) -> None:
        """SIGTERM every node, then SIGKILL what is left of their groups: a head's graceful
        stop can take half a minute, and the cluster's files go with its folder anyway."""
        for node in reversed(self.nodes):
            node.kill(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for node in reversed(self.nodes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(max(0.1, deadline - time.monotonic()))
            node.kill(signal.SIGKILL)  # stragglers left in the group (workers, agents)
            node.proc.wait()

    def wait(self, ready: Any, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not self.nodes[0].alive():  # the head is gone: nothing will get ready
                break
            time.sleep(0.5)
        logs = "\n".join(f"--- {n.log}\n{n.log.read_text()[-2000:]}" for n in self.nodes)
        raise TimeoutError(f"timed out waiting for {what}\n{logs}")

    def _start(self, name: str, args: list[str]) -> Node:
        log = self.root / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [RAY, "start", "--block", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,  # its own process group, killed as one
            )
        node = Node(name, proc, log)
        self.nodes.append(node)
        return node

    def _get(self, path: str) -> Any:
        try:
            auth = {"Authorization": f"Bearer {self.token}"}
            request = urllib.request.Request(self.dashboard + path, headers=auth)
            with urllib.request.urlopen(request, timeout=5) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None
