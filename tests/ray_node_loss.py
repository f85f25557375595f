"""A search on a two-node Ray cluster that loses its second node mid-run, and the process
helpers that build and clean up such a cluster (used by ``tests/test_ray_cluster.py``).

Run as a script (``python ray_node_loss.py ADDRESS RUN_DIR RAYLET_PID``) it connects to
the cluster in a fresh interpreter (Ray keeps per-process state that an earlier local
instance in the test process would spoil), runs a tiny search on the Ray backend, kills
the second node (its raylet, pid RAYLET_PID, and that raylet's workers) as soon as a
search candidate has just been submitted there, and prints one JSON line:
``{"victims": [...], "retried": [...]}``: the jobs (a candidate and its rung) in flight
on the killed node, and those the backend ran again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

#: A loopback address: Ray turns 127.0.0.1 into the machine's own address, not this one.
HOST = "127.0.0.2"
#: The second node's custom resource, by which the test finds it.
NODE2 = "evozero_test_node2"


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


def main(address: str, run_dir: str, raylet: int) -> None:
    import ray

    from evozero.search.config import SearchConfig
    from evozero.search.driver import Search, SearchStatus

    ray.init(address=address, _node_ip_address=HOST, log_to_driver=False, include_dashboard=False)
    (node2,) = [n["NodeID"] for n in ray.nodes() if n["Alive"] and NODE2 in n["Resources"]]
    config = SearchConfig(
        budget=4, suite="tiny", backend="ray", workers=2, population=4, tournament=2
    )
    victims: list[int] = []
    seen: set[int] = set()

    def kill_node2_once_busy(status: SearchStatus) -> None:
        """Kills the second node while it trains a search candidate: one submitted since
        the last status (the driver reports right after submitting), so it is surely still
        training, not finished and waiting to be collected."""
        if victims or status.phase != "search" or search.backend is None:
            return
        jobs = search.backend.worker_jobs()  # type: ignore[attr-defined]
        busy = {job for node, job in jobs.values() if node == node2 and job is not None}
        if busy - seen:
            kill(with_descendants({raylet}))  # the raylet and its workers
            victims.extend(busy)
        seen.update(busy)

    search = Search.create(run_dir, config, on_status=kill_node2_once_busy)
    try:
        search.run(report=False)
    finally:
        search.store.close()
    retried = search.backend.retried  # type: ignore[union-attr]
    ray.shutdown()
    print(json.dumps({"victims": victims, "retried": retried}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
