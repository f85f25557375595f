"""The Ray backend on a real two-node Ray cluster, started on this machine.

A head (``ray start --head``) and a second raylet (``ray start --address=...``) on the
loopback address 127.0.0.2, with a few CPUs each. A tiny search runs on them; as soon as
a search candidate runs on the second node, that node's raylet is killed (SIGKILL, as a
lost machine). Only the candidates in flight there may be hit, each is run again once on
the head, and the search finishes with no failed candidate.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evozero.search.config import SearchConfig
from evozero.search.driver import Search, SearchStatus
from evozero.search.store import RunStore
from evozero.status import TRAINED, Status

RAY = shutil.which("ray") or shutil.which("ray", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(RAY is None, reason="the `ray` command (Ray's CLI) is missing")

#: A loopback address: Ray turns 127.0.0.1 into the machine's own address, not this one.
HOST = "127.0.0.2"
#: The second node's custom resource, by which the test finds it.
NODE2 = "evozero_test_node2"
START_TIMEOUT = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _processes() -> dict[int, tuple[int, str]]:
    """Every process: its parent and its command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry)] = (ppid, cmd)
    return found


def with_descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process below them (Ray's workers rename themselves, so they
    are found by their parents)."""
    procs = _processes()
    found = set(roots) - {os.getpid()}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in procs.items() if ppid in found} - found - {os.getpid()}
        found |= more
        grew = bool(more)
    return found


def cluster_processes(marker: str) -> set[int]:
    """The processes of the cluster whose session lives under ``marker``."""
    return with_descendants({pid for pid, (_, cmd) in _processes().items() if marker in cmd})


def kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def raylet_of(marker: str, node_manager_port: int) -> int:
    """The pid of the raylet started with ``node_manager_port``."""
    flag = f"--node_manager_port={node_manager_port}"
    for pid, (_, cmd) in _processes().items():
        words = cmd.split()
        if marker in cmd and words and words[0].endswith("raylet") and flag in words:
            return pid
    raise AssertionError(f"no raylet with {flag}")


def ray_start(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(
        [str(RAY), "start", f"--node-ip-address={HOST}", "--disable-usage-stats", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert proc.returncode == 0, f"ray start {args} failed:\n{proc.stderr[-3000:]}"


@pytest.fixture
def two_nodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A head with 2 CPUs and a second node with 1 CPU and the resource NODE2; the test
    process is connected to it. Every process of the cluster is killed afterwards."""
    import ray

    # A short directory: Ray's socket paths live under it (AF_UNIX limits them to 107 bytes).
    temp = tempfile.mkdtemp(prefix="evz-ray-", dir="/tmp")
    env = {
        "RAY_AUTH_MODE": "disabled",  # a loopback test cluster needs no tokens
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": temp,  # keeps the "current cluster" file out of the shared /tmp/ray
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    env = dict(os.environ)
    small = ["--object-store-memory=80000000"]
    gcs, node2_port = free_port(), free_port()
    try:
        ray_start(
            env,
            "--head",
            f"--port={gcs}",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--temp-dir={temp}",
            *small,
        )
        ray_start(
            env,
            f"--address={HOST}:{gcs}",
            "--num-cpus=1",
            f"--resources={json.dumps({NODE2: 1})}",
            f"--node-manager-port={node2_port}",
            f"--dashboard-agent-listen-port={free_port()}",
            *small,
        )
        ray.init(
            address=f"{HOST}:{gcs}",
            _node_ip_address=HOST,
            log_to_driver=False,
            include_dashboard=False,
        )
        nodes = [n for n in ray.nodes() if n["Alive"]]
        (node2,) = [n["NodeID"] for n in nodes if NODE2 in n["Resources"]]
        assert len(nodes) == 2
        yield {"node2": node2, "raylet2": raylet_of(temp, node2_port)}
    finally:
        ray.shutdown()
        kill(cluster_processes(temp))
        shutil.rmtree(temp, ignore_errors=True)


def test_a_lost_node_fails_only_its_candidates_which_are_retried(tmp_path, two_nodes):
    config = SearchConfig(
        budget=4, suite="tiny", backend="ray", workers=2, population=4, tournament=2
    )
    victims: list[int] = []

    def kill_node2_once_busy(status: SearchStatus) -> None:
        """Kills the second node while it trains a search candidate: one submitted since
        the last status (the driver reports right after submitting), so it is surely still
        training, not finished and waiting to be collected."""
        if victims or status.phase != "search" or search.backend is None:
            return
        jobs = search.backend.worker_jobs()  # type: ignore[attr-defined]
        busy = {
            job for node, job in jobs.values() if node == two_nodes["node2"] and job is not None
        }
        if busy - seen:
            kill(with_descendants({two_nodes["raylet2"]}))  # the raylet and its workers
            victims.extend(busy)
        seen.update(busy)

    seen: set[int] = set()

    search = Search.create(tmp_path / "run", config, on_status=kill_node2_once_busy)
    search.run(report=False)
    assert victims, "no search candidate ever ran on the second node"
    assert search.backend is not None
    assert sorted(search.backend.retried) == sorted(victims)  # type: ignore[attr-defined]
    store = RunStore.open(tmp_path / "run")
    assert store.meta()["state"] == "searched"
    assert store.count(*TRAINED) == 4
    assert store.count(Status.ERROR) == 0
    for cid in victims:  # each retried candidate was trained to a result
        assert store.candidate(cid).status in TRAINED
