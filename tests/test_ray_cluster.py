"""The Ray backend on a real two-node Ray cluster, started on this machine.

A head (``ray start --head``) and a second raylet (``ray start --address=...``) on the
loopback address 127.0.0.2, with a few CPUs each. A tiny search runs on them (in a fresh
interpreter: ``tests/ray_node_loss.py``); as soon as a search candidate runs on the second
node, that node's raylet and its workers are killed (SIGKILL, as when a machine is lost).
Only the candidates in flight there may be hit, each is run again once on the head, and
the search finishes with no failed candidate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray_node_loss import HOST, NODE2, cluster_processes, free_port, kill, raylet_of

from evozero.search.driver import RUNG_BITS
from evozero.search.store import RunStore
from evozero.status import TRAINED, Status

RAY = shutil.which("ray") or shutil.which("ray", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(RAY is None, reason="the `ray` command (Ray's CLI) is missing")
TESTS = Path(__file__).resolve().parent
#: Seconds a `ray start`, or the whole search, may take (a loaded machine is slow).
TIMEOUT = 240


def ray_start(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(
        [str(RAY), "start", f"--node-ip-address={HOST}", "--disable-usage-stats", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, f"ray start {args} failed:\n{proc.stderr[-3000:]}"


@pytest.fixture
def two_nodes() -> Iterator[dict[str, Any]]:
    """A head with 2 CPUs and a second node with 1 CPU and the resource NODE2: its
    address, the second raylet's pid, and the environment to reach it with. Every process
    of the cluster is killed afterwards."""
    # A short directory: Ray's socket paths live under it (AF_UNIX limits them to 107 bytes).
    temp = tempfile.mkdtemp(prefix="evz-ray-", dir="/tmp")
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",  # a loopback test cluster needs no tokens
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": temp,  # keeps the "current cluster" file out of the shared /tmp/ray
    }
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
        yield {"address": f"{HOST}:{gcs}", "raylet2": raylet_of(temp, node2_port), "env": env}
    finally:
        kill(cluster_processes(temp))
        shutil.rmtree(temp, ignore_errors=True)


def test_a_lost_node_fails_only_its_candidates_which_are_retried(tmp_path, two_nodes):
    run = tmp_path / "run"
    env = dict(two_nodes["env"])
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *sys.path])
    proc = subprocess.run(
        [sys.executable, str(TESTS / "ray_node_loss.py"), two_nodes["address"], str(run)]
        + [str(two_nodes["raylet2"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    victims, retried = found["victims"], found["retried"]
    assert victims, "no search candidate ever ran on the second node"
    assert sorted(retried) == sorted(victims)
    store = RunStore.open(run)
    assert store.meta()["state"] == "searched"
    assert store.count(*TRAINED) == 4
    assert store.count(Status.ERROR) == 0
    for job in victims:  # each retried candidate was trained to a result at that rung
        candidate, rung = job >> RUNG_BITS, job & ((1 << RUNG_BITS) - 1)
        assert store.ladders()[candidate][rung][0] in TRAINED
