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
        self.wait(lambda: self._get("/api/version") is not None, "the head's dashboard")

    def add_node(self, cpus: int, resources: dict[str, float] | None = None) -> Node:
        """Join a worker node with its own resources; return once the head counts it."""
        before = self.alive_nodes()
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
        self.wait(lambda: self.alive_nodes() > before, f"node {node.name} to join")
        return node

    def alive_nodes(self) -> int:
        nodes = self._get("/nodes?view=summary") or {}
        summary = (nodes.get("data") or {}).get("summary") or []
        return sum(1 for n in summary if n.get("raylet", {}).get("state") == "ALIVE")

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
            if not all(n.alive() for n in self.nodes):
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
