"""Execution backends: results, completion order, failures that stay with their job."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import pytest

# The job functions must be importable by name in spawned workers and Ray actors, which
# get this sys.path (spawn copies it; the Ray backend passes it on as PYTHONPATH).
TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

import backend_jobs  # noqa: E402

from evozero.search.backends import (  # noqa: E402
    BACKENDS,
    Backend,
    Outcome,
    ProcessBackend,
    make_backend,
)


def drive(backend: Backend, payloads: list[dict], timeout: float = 60.0) -> dict[int, Outcome]:
    """Runs the jobs the way the search driver does: never more than ``slots`` in flight."""
    todo = list(enumerate(payloads))
    outcomes: dict[int, Outcome] = {}
    end = time.monotonic() + timeout
    while todo or backend.in_flight():
        while todo and backend.in_flight() < backend.slots:
            backend.submit(*todo.pop(0))
        assert backend.in_flight() <= backend.slots
        for outcome in backend.wait(timeout=max(0.0, end - time.monotonic())):
            assert outcome.job_id not in outcomes
            outcomes[outcome.job_id] = outcome
        assert time.monotonic() < end, "jobs did not finish in time"
    assert sorted(outcomes) == list(range(len(payloads)))
    return outcomes


def wait_one(backend: Backend, timeout: float = 30.0) -> Outcome:
    outcomes = backend.wait(timeout=timeout)
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


def check_echo(outcomes: dict[int, Outcome], payloads: list[dict]) -> set[int]:
    """Checks echo results against their payloads; returns the pids that ran them."""
    for job_id, payload in enumerate(payloads):
        outcome = outcomes[job_id]
        assert outcome.error is None, outcome
        assert outcome.result is not None
        assert outcome.result["x"] == payload["x"]
        assert outcome.result["square"] == payload["x"] ** 2
        assert outcome.seconds >= 0
    return {o.result["pid"] for o in outcomes.values() if o.result}


def echoes(n: int, start: int = 0) -> list[dict]:
    return [{"op": "echo", "x": x} for x in range(start, start + n)]


def is_gone(pid: int) -> bool:
    """True if no process (not even a zombie) has this pid."""
    return not os.path.exists(f"/proc/{pid}")


def live_workers(backend: ProcessBackend) -> list[int]:
    children = {p.pid for p in multiprocessing.active_children()}
    return [pid for pid in backend.worker_pids() if pid in children]


# --- arguments ------------------------------------------------------------------------------


def test_backend_names():
    assert BACKENDS == ("serial", "process", "ray", "batch")


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("threads", backend_jobs.echo), {}, "serial, process, ray, batch"),
        (("batch", backend_jobs.echo), {}, "evaluate_job only"),
        (("process", backend_jobs.echo), {"device": "cuda"}, "needs the batch backend"),
        (("process", backend_jobs.echo), {"workers": 0}, "workers"),
        (("process", backend_jobs.echo), {"workers": 1.5}, "workers"),
        (("serial", backend_jobs.echo), {"workers": -1}, "workers"),
        (("process", backend_jobs.echo), {"time_limit": 0}, "time_limit"),
        (("process", backend_jobs.echo), {"address": "auto"}, "ray backend only"),
        (("ray", backend_jobs.echo), {"address": "nowhere"}, "'auto'"),
        (("ray", backend_jobs.echo), {"address": "http://x:1"}, "HOST:PORT"),
        (("process", lambda payload: payload), {}, "module-level"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        make_backend(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_ray_missing_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(RuntimeError, match=r"pip install 'evozero\[ray\]'"):
        make_backend("ray", backend_jobs.echo, workers=1)


# --- serial ---------------------------------------------------------------------------------


def test_serial_runs_jobs_in_order():
    payloads = echoes(10)
    with make_backend("serial", backend_jobs.dispatch, time_limit=5) as backend:
        assert (backend.name, backend.slots) == ("serial", 1)
        assert backend.wait() == []
        pids = check_echo(drive(backend, payloads), payloads)
        assert pids == {os.getpid()}
        with pytest.raises(TypeError):
            backend.submit(0, {"x": object()})
        backend.submit(0, {"op": "echo", "x": 1})
        with pytest.raises(RuntimeError, match="busy"):
            backend.submit(1, {"op": "echo", "x": 1})
        assert backend.in_flight() == 1
    with pytest.raises(RuntimeError, match="closed"):
        backend.submit(2, {})


def test_serial_errors_are_outcomes():
    with make_backend("serial", backend_jobs.dispatch) as backend:
        backend.submit(7, {"op": "raise", "x": 7})
        (outcome,) = backend.wait()
        assert outcome == Outcome(7, None, "ValueError: bad payload 7", outcome.seconds)
        backend.submit(8, {"op": "list"})
        assert backend.wait()[0].error == "TypeError: dispatch returned list, not a dict"
        backend.submit(9, {"op": "echo", "x": 3})
        assert backend.wait()[0].result == {"x": 3, "square": 9, "pid": os.getpid()}


# --- process --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def process_backend():
    """Two worker processes, shared by this module's process tests."""
    backend = make_backend("process", backend_jobs.dispatch, workers=2)
    assert isinstance(backend, ProcessBackend)
    yield backend
    pids = backend.worker_pids()
    backend.close()
    assert all(is_gone(pid) for pid in pids)


@pytest.fixture
def pool(process_backend):
    yield process_backend
    assert process_backend.in_flight() == 0
    assert sorted(live_workers(process_backend)) == sorted(process_backend.worker_pids())


def test_process_many_jobs(pool):
    assert (pool.name, pool.slots) == ("process", 2)
    assert sorted(live_workers(pool)) == sorted(pool.worker_pids())
    payloads = echoes(30)
    pids = check_echo(drive(pool, payloads), payloads)
    assert pids <= set(pool.worker_pids())
    pool.submit(0, {"op": "echo", "x": 1})
    with pytest.raises(ValueError, match="already in flight"):
        pool.submit(0, {"op": "echo", "x": 1})
    with pytest.raises(TypeError):
        pool.submit(1, {"x": {1, 2}})
    pool.submit(1, {"op": "echo", "x": 2})
    with pytest.raises(RuntimeError, match="busy"):
        pool.submit(2, {"op": "echo", "x": 3})
    assert sorted(o.job_id for o in pool.wait(5) + pool.wait(5)) == [0, 1]
    assert pool.wait() == []


def test_process_completion_order(pool):
    pool.submit(0, {"op": "sleep", "seconds": 0.8, "x": 0})
    pool.submit(1, {"op": "echo", "x": 1})
    first = wait_one(pool)
    assert (first.job_id, first.result["square"]) == (1, 1)
    assert pool.wait(timeout=0) == []  # job 0 still sleeping
    second = wait_one(pool)
    assert second.job_id == 0 and second.result["x"] == 0
    assert 0.7 < second.seconds < 1.0 + 0.5
    assert first.result["pid"] != second.result["pid"]


def test_process_exception_is_an_outcome(pool):
    pool.submit(0, {"op": "raise", "x": 5})
    outcome = wait_one(pool)
    assert outcome.result is None
    assert outcome.error == "ValueError: bad payload 5"
    pids = pool.worker_pids()
    payloads = echoes(6)
    check_echo(drive(pool, payloads), payloads)
    assert pool.worker_pids() == pids  # the workers survived


@pytest.mark.parametrize(
    ("op", "error"),
    [
        ("kill", "worker died (signal SIGKILL) during the job"),
        ("exit", "worker died (exit code 3) during the job"),
    ],
)
def test_process_worker_death_fails_only_its_job(pool, op, error):
    before = pool.worker_pids()
    pool.submit(0, {"op": op})
    pool.submit(1, {"op": "sleep", "seconds": 0.3, "x": 1})
    outcomes = {o.job_id: o for o in pool.wait(10) + pool.wait(10)}
    assert outcomes[0].error == error and outcomes[0].result is None
    assert outcomes[1].error is None and outcomes[1].result["x"] == 1
    after = pool.worker_pids()
    assert len(after) == 2 and len(set(before) & set(after)) == 1
    payloads = echoes(6)
    check_echo(drive(pool, payloads), payloads)
    assert sorted(live_workers(pool)) == sorted(pool.worker_pids())
    assert all(is_gone(pid) for pid in set(before) - set(after))


def test_process_external_kill_fails_only_that_job(pool, tmp_path):
    pidfile = tmp_path / "busy.pid"
    pool.submit(0, {"op": "sleep", "seconds": 30, "x": 0, "pidfile": str(pidfile)})
    pool.submit(1, {"op": "sleep", "seconds": 0.5, "x": 1})
    end = time.monotonic() + 10
    while not pidfile.exists():
        assert time.monotonic() < end
        time.sleep(0.01)
    victim = int(pidfile.read_text())
    assert victim in pool.worker_pids()
    os.kill(victim, signal.SIGKILL)
    outcomes = {o.job_id: o for o in pool.wait(10) + pool.wait(10)}
    assert outcomes[0].error == "worker died (signal SIGKILL) during the job"
    assert outcomes[1].result["x"] == 1
    assert victim not in pool.worker_pids() and is_gone(victim)
    payloads = echoes(4)
    check_echo(drive(pool, payloads), payloads)
    assert len(live_workers(pool)) == 2


def test_process_time_limit_kills_the_job():
    with make_backend("process", backend_jobs.dispatch, workers=2, time_limit=0.5) as backend:
        backend.submit(0, {"op": "sleep", "seconds": 30, "x": 0})
        backend.submit(1, {"op": "echo", "x": 1})
        assert wait_one(backend).job_id == 1
        slow = backend.worker_pids()
        start = time.monotonic()
        outcome = wait_one(backend)
        assert outcome.job_id == 0 and outcome.error == "timed out after 0.5 s"
        assert 0.45 < outcome.seconds < 2 and time.monotonic() - start < 2
        assert len(set(slow) - set(backend.worker_pids())) == 1
        assert all(is_gone(pid) for pid in set(slow) - set(backend.worker_pids()))
        payloads = echoes(4)
        check_echo(drive(backend, payloads), payloads)
        assert len(live_workers(backend)) == 2


def test_process_wait_timeout_returns_empty(pool):
    pool.submit(0, {"op": "sleep", "seconds": 0.5, "x": 0})
    start = time.monotonic()
    assert pool.wait(timeout=0.1) == []
    assert time.monotonic() - start < 0.4
    assert wait_one(pool).job_id == 0


def test_process_close_leaves_no_processes():
    backend = make_backend("process", backend_jobs.dispatch)  # default: one per core
    assert backend.slots == (os.cpu_count() or 1)
    backend.submit(0, {"op": "list"})
    assert wait_one(backend).error == "TypeError: dispatch returned list, not a dict"
    pids = backend.worker_pids()
    backend.submit(1, {"op": "sleep", "seconds": 30, "x": 0})  # closed while busy
    start = time.monotonic()
    with backend:
        pass
    assert time.monotonic() - start < 3
    assert backend.in_flight() == 0 and backend.worker_pids() == []
    active = {p.pid for p in multiprocessing.active_children()}
    assert not active & set(pids)
    assert all(is_gone(pid) for pid in pids)  # reaped: no zombies either
    backend.close()  # again: nothing happens
    with pytest.raises(RuntimeError, match="closed"):
        backend.submit(2, {})


# --- ray --------------------------------------------------------------------------------------
# No importorskip: CI installs Ray, and without it these tests must fail, not skip.


@pytest.fixture(scope="module")
def ray_backend():
    """A local Ray instance with 2 CPUs and two actors, shared by this module's Ray tests."""
    backend = make_backend("ray", backend_jobs.dispatch, workers=2, time_limit=2.0)
    import ray

    assert ray.is_initialized()
    yield backend
    backend.close()
    assert not ray.is_initialized()  # the backend started Ray, so it shut it down
    backend.close()


@pytest.fixture
def ray_pool(ray_backend):
    yield ray_backend
    assert ray_backend.in_flight() == 0


def distinct_pids(backend: Backend) -> set[int]:
    """Runs two concurrent echoes; returns their pids (both actors must be alive)."""
    payloads = [{"op": "sleep", "seconds": 0.3, "x": x} for x in (1, 2)]
    pids = check_echo(drive(backend, payloads), payloads)
    assert len(pids) == 2
    return pids


def test_ray_many_jobs(ray_pool):
    assert (ray_pool.name, ray_pool.slots) == ("ray", 2)
    payloads = echoes(20)
    pids = check_echo(drive(ray_pool, payloads), payloads)
    assert os.getpid() not in pids


def test_ray_completion_order(ray_pool):
    ray_pool.submit(0, {"op": "sleep", "seconds": 0.8, "x": 0})
    ray_pool.submit(1, {"op": "echo", "x": 1})
    assert wait_one(ray_pool).job_id == 1
    assert ray_pool.wait(timeout=0) == []
    second = wait_one(ray_pool)
    assert second.job_id == 0 and 0.7 < second.seconds < 2


def test_ray_exception_is_an_outcome(ray_pool):
    pids = distinct_pids(ray_pool)
    ray_pool.submit(0, {"op": "raise", "x": 4})
    assert wait_one(ray_pool).error == "ValueError: bad payload 4"
    assert distinct_pids(ray_pool) == pids  # the actors survived


@pytest.mark.parametrize("op", ["kill", "exit"])
def test_ray_actor_death_fails_only_its_job(ray_pool, op):
    before = distinct_pids(ray_pool)
    ray_pool.submit(0, {"op": op})
    ray_pool.submit(1, {"op": "sleep", "seconds": 0.3, "x": 1})
    outcomes = {o.job_id: o for o in ray_pool.wait(30) + ray_pool.wait(30)}
    assert outcomes[0].result is None
    assert outcomes[0].error.startswith("worker died during the job (")
    assert "\n" not in outcomes[0].error
    assert outcomes[1].result["x"] == 1
    after = distinct_pids(ray_pool)
    assert len(before & after) == 1


def test_ray_external_kill_fails_only_that_job(ray_pool, tmp_path):
    pidfile = tmp_path / "busy.pid"
    ray_pool.submit(0, {"op": "sleep", "seconds": 30, "x": 0, "pidfile": str(pidfile)})
    ray_pool.submit(1, {"op": "sleep", "seconds": 0.5, "x": 1})
    end = time.monotonic() + 20
    while not pidfile.exists():
        assert time.monotonic() < end
        time.sleep(0.01)
    victim = int(pidfile.read_text())
    os.kill(victim, signal.SIGKILL)
    outcomes = {o.job_id: o for o in ray_pool.wait(30) + ray_pool.wait(30)}
    assert outcomes[0].error.startswith("worker died during the job (")
    assert outcomes[1].result["x"] == 1
    assert victim not in distinct_pids(ray_pool)


def test_ray_time_limit_kills_the_job(ray_pool):
    ray_pool.submit(0, {"op": "sleep", "seconds": 30, "x": 0})
    ray_pool.submit(1, {"op": "echo", "x": 1})
    assert wait_one(ray_pool).job_id == 1
    outcome = wait_one(ray_pool)
    assert outcome.job_id == 0 and outcome.error == "timed out after 2 s"
    assert 1.9 < outcome.seconds < 4
    distinct_pids(ray_pool)
