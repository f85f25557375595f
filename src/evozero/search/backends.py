"""Execution backends: where the search driver's jobs run.

The driver keeps at most :attr:`Backend.slots` jobs in flight and takes their
:class:`Outcome` objects in completion order::

    with make_backend("process", evaluate_candidate, workers=8, time_limit=600) as backend:
        backend.submit(job_id, payload)          # while backend.in_flight() < backend.slots
        for outcome in backend.wait(timeout=1.0):
            ...

A job is a JSON-serializable ``dict``; a worker calls the module-level function
``fn(payload) -> dict`` and sends back its JSON-serializable result. Job data travel
as JSON text, never as pickles. A job fails alone (``Outcome.error`` says why, in one
line) when ``fn`` raises, when its worker dies, or when it runs past ``time_limit``;
the backend replaces a lost worker and carries on.

Backends (:data:`BACKENDS`):

* ``serial``: one slot; runs the job in the calling process, inside :meth:`Backend.wait`.
  Deterministic. ``time_limit`` is not enforced and ``workers`` is ignored.
* ``process`` (the default): ``workers`` long-lived processes started with the
  ``spawn`` method, one job at a time each, talking over pipes.
* ``ray``: one Ray actor per worker (``num_cpus=1``), on a local instance or a cluster,
  spread over its nodes. A job whose node dies is run again once on a live node.
  Ray is an optional dependency (``pip install 'evozero[ray]'``).
* ``batch``: ``workers`` slots; :meth:`Backend.wait` trains every queued search job
  together with ``evozero.train_many`` on ``device`` (``cpu`` or ``cuda``), in the calling
  process (:mod:`evozero.search.batched`; ``fn`` must be
  :func:`evozero.search.fitness.evaluate_job`, whose replies it reproduces).

A job's clock (``Outcome.seconds`` and ``time_limit``) starts when its worker is ready
to run it, so the start-up of a fresh worker does not count against the job.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import connection
from typing import Any

__all__ = [
    "BACKENDS",
    "MAX_WORKERS",
    "Backend",
    "Outcome",
    "ProcessBackend",
    "RayBackend",
    "SerialBackend",
    "make_backend",
]

#: Backend names accepted by :func:`make_backend`.
BACKENDS: tuple[str, ...] = ("serial", "process", "ray", "batch")

#: The most workers (processes, actors or threads) one command starts: more is a typo, and
#: each one costs a process and its memory.
MAX_WORKERS = 1024

#: Seconds a new worker may take to become ready before it counts as failed.
START_TIMEOUT = 120.0

#: Seconds between SIGTERM and SIGKILL when a worker process is stopped.
_TERMINATE_GRACE = 1.0

Job = Callable[[dict], dict]


@dataclass(frozen=True)
class Outcome:
    """What became of one job.

    Exactly one of ``result`` and ``error`` is set: ``result`` is ``fn``'s return value;
    ``error`` says in one line why there is none, e.g.
    ``"ValueError: bad program"`` (``fn`` raised), ``"timed out after 30 s"``, or
    ``"worker died (signal SIGKILL) during the job"``. ``seconds`` is the wall time from
    the start of the job to its outcome.
    """

    job_id: int
    result: dict | None
    error: str | None
    seconds: float


class Backend(ABC):
    """Runs jobs ``fn(payload) -> dict``, at most :attr:`slots` at a time.

    Use it as a context manager, or call :meth:`close` when done.
    """

    name: str
    slots: int

    def __init__(self) -> None:
        self._closed = False

    @abstractmethod
    def submit(self, job_id: int, payload: dict) -> None:
        """Starts a job. Needs a free slot (``in_flight() < slots``) and a ``job_id``
        not already in flight; raises ``TypeError`` if ``payload`` is not JSON-serializable."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Waits for finished jobs and returns their outcomes, in completion order.

        Blocks until at least one job has an outcome, or ``timeout`` seconds have passed
        (then the list may be empty). Returns ``[]`` at once when nothing is in flight.
        """

    @abstractmethod
    def in_flight(self) -> int:
        """The number of jobs submitted whose outcome :meth:`wait` has not returned."""

    @abstractmethod
    def close(self) -> None:
        """Stops the workers, dropping jobs in flight. Calling it again does nothing."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.in_flight()}/{self.slots} in flight"
        return f"<{type(self).__name__} {self.name!r}: {state}>"

    def _encode_job(self, job_id: int, payload: dict, busy: bool) -> str:
        """Checks a submission and returns the job as JSON text."""
        if self._closed:
            raise RuntimeError(f"the {self.name} backend is closed")
        if busy:
            raise ValueError(f"job {job_id} is already in flight")
        if self.in_flight() >= self.slots:
            raise RuntimeError(f"all {self.slots} slots are busy; wait() for an outcome first")
        if not isinstance(payload, dict):
            raise TypeError(f"a job payload must be a dict, not {type(payload).__name__}")
        return json.dumps({"job_id": job_id, "payload": payload})


def make_backend(
    name: str,
    fn: Job,
    *,
    workers: int | None = None,
    time_limit: float | None = None,
    address: str | None = None,
    device: str = "cpu",
) -> Backend:
    """Creates the backend ``name`` (one of :data:`BACKENDS`) running ``fn``.

    ``fn`` must be a module-level function that a fresh interpreter can import (workers
    import it by name). ``workers``: worker processes or actors, default
    ``os.cpu_count()`` (``ray``: the cluster's CPUs when connecting). ``time_limit``:
    seconds a job may run before its worker is killed (not enforced by ``serial``).
    ``address`` (``ray`` only): ``None`` or ``"local"`` starts a local Ray instance;
    ``"auto"`` or ``"HOST:PORT"`` connects to a running cluster. ``device`` (``batch``
    only): ``cpu`` or ``cuda``, where ``train_many`` trains; ``workers`` is then the
    number of jobs per batch (default ``os.cpu_count()``).

    Raises ``ValueError`` for bad arguments; the process and Ray backends raise
    ``RuntimeError`` if their workers fail to start, the batch backend if ``device`` is
    ``cuda`` without the CUDA extension or a GPU.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    if not callable(fn):
        raise ValueError(f"fn must be a function, not {type(fn).__name__}")
    qualname = getattr(fn, "__qualname__", "")
    if not qualname or "<" in qualname or not getattr(fn, "__module__", None):
        raise ValueError(
            f"fn must be a module-level function (workers import it by name), not {fn!r}"
        )
    if workers is not None and (type(workers) is not int or not 1 <= workers <= MAX_WORKERS):
        raise ValueError(f"workers must be a whole number from 1 to {MAX_WORKERS}, not {workers!r}")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be a number of seconds > 0, not {time_limit!r}")
    if name != "ray" and address is not None:
        raise ValueError(f"address is for the ray backend only, not {name!r}")
    if name != "batch" and device != "cpu":
        raise ValueError(f"device {device!r} needs the batch backend, not {name!r}")
    if name == "batch":
        from evozero.search.fitness import evaluate_job

        if fn is not evaluate_job:
            raise ValueError("the batch backend runs evozero.search.fitness.evaluate_job only")
        from evozero.search.batched import BatchBackend

        return BatchBackend(workers or os.cpu_count() or 1, device=device)
    if name == "serial":
        return SerialBackend(fn)
    if name == "process":
        return ProcessBackend(fn, workers=workers or os.cpu_count() or 1, time_limit=time_limit)
    return RayBackend(fn, workers=workers, time_limit=time_limit, address=address)


# --- the job protocol, shared by all backends --------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe_exception(exc: BaseException) -> str:
    message = _one_line(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _run_job(fn: Job, text: str | bytes) -> str:
    """Runs one JSON-encoded job; returns its JSON-encoded result or error.

    An exception in ``fn`` (or a result that is not a JSON-serializable dict) becomes
    the job's error; nothing is raised.
    """
    job = json.loads(text)
    try:
        result = fn(job["payload"])
        if not isinstance(result, dict):
            raise TypeError(f"{fn.__qualname__} returned {type(result).__name__}, not a dict")
        return json.dumps({"job_id": job["job_id"], "result": result})
    except Exception as exc:
        return json.dumps({"job_id": job["job_id"], "error": _describe_exception(exc)})


def _outcome(reply: dict, seconds: float) -> Outcome:
    """The outcome of a job from its decoded reply (see :func:`_run_job`)."""
    return Outcome(reply["job_id"], reply.get("result"), reply.get("error"), seconds)


def _limit_text(seconds: float) -> str:
    return f"{seconds:g} s"


# --- serial -------------------------------------------------------------------------------


class SerialBackend(Backend):
    """Runs each job in the calling process, inside :meth:`wait`; one slot.

    Deterministic: jobs run in submission order, one at a time. Payloads and results
    make the same JSON round trip as with the other backends. ``time_limit`` is not
    enforced (a job cannot be stopped from inside its own process), and ``wait``'s
    ``timeout`` does not interrupt a running job.
    """

    name = "serial"
    slots = 1

    def __init__(self, fn: Job) -> None:
        super().__init__()
        self.fn = fn
        self._pending: tuple[int, str] | None = None

    def submit(self, job_id: int, payload: dict) -> None:
        busy = self._pending is not None and self._pending[0] == job_id
        self._pending = (job_id, self._encode_job(job_id, payload, busy))

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if self._pending is None:
            return []
        _, text = self._pending
        self._pending = None
        start = time.monotonic()
        reply = _run_job(self.fn, text)
        return [_outcome(json.loads(reply), time.monotonic() - start)]

    def in_flight(self) -> int:
        return int(self._pending is not None)

    def close(self) -> None:
        self._pending = None
        self._closed = True


# --- process ------------------------------------------------------------------------------


def _exit_with_parent() -> None:
    """Ends this worker process as soon as the driver process has gone, however it went."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()  # waits on a pipe that closes when the driver process exits
        os._exit(1)


def _worker_main(conn: connection.Connection, fn: Job) -> None:
    """A worker process: reads JSON jobs from ``conn`` and answers each, until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    threading.Thread(target=_exit_with_parent, name="evozero-exit-with-parent", daemon=True).start()
    try:
        conn.send_bytes(json.dumps({"ready": os.getpid()}).encode())
        while True:
            text = conn.recv_bytes()
            conn.send_bytes(_run_job(fn, text).encode())
    except (EOFError, OSError):  # the driver closed the pipe or went away
        return


def _exit_description(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


@dataclass(eq=False)
class _Worker:
    process: Any  # a multiprocessing process (SpawnProcess)
    conn: connection.Connection
    created: float
    ready: bool = False
    job_id: int | None = None
    submitted: float = 0.0
    started: float | None = None  # when the job started running (worker ready)


class _PoolBackend(Backend):
    """What the process and Ray backends share: a pool of members (worker processes or
    actors), each running one job at a time, with per-job deadlines.

    A member has ``job_id``, ``created``, ``submitted`` and ``started`` (None until the
    member is ready). Subclasses say which members there are (:meth:`_members`), how to
    take finished work from them (:meth:`_poll`), and how to replace one whose job
    expired (:meth:`_retire`).
    """

    time_limit: float | None

    @abstractmethod
    def _members(self) -> list[Any]:
        """The current members."""

    @abstractmethod
    def _poll(self, delay: float | None) -> list[Outcome]:
        """Waits up to ``delay`` seconds for members to report; their outcomes."""

    @abstractmethod
    def _retire(self, member: Any) -> None:
        """Stops an expired member and puts a fresh one in its place."""

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        end = None if timeout is None else time.monotonic() + timeout
        while self.in_flight():
            outcomes = self._expire()
            if outcomes:
                return outcomes
            wake = [d for d in (end, *map(self._deadline, self._members())) if d is not None]
            outcomes = self._poll(max(0.0, min(wake) - time.monotonic()) if wake else None)
            if outcomes:
                return outcomes
            if end is not None and time.monotonic() >= end:
                break
        return []

    def in_flight(self) -> int:
        return sum(m.job_id is not None for m in self._members())

    def _deadline(self, member: Any) -> float | None:
        """When a member's job expires: its time limit, or the member's start-up limit."""
        if member.job_id is None:
            return None
        if member.started is None:
            return member.created + START_TIMEOUT
        return None if self.time_limit is None else member.started + self.time_limit

    def _expire(self) -> list[Outcome]:
        """Fails the jobs past their deadline and replaces their members."""
        outcomes = []
        now = time.monotonic()
        for member in list(self._members()):
            deadline = self._deadline(member)
            if deadline is None or now < deadline:
                continue
            if member.started is None:
                error = f"worker did not start within {START_TIMEOUT:g} s"
            else:
                error = f"timed out after {_limit_text(self.time_limit or 0.0)}"
            outcomes.append(self._fail(member, error))
            self._retire(member)
        return outcomes

    @staticmethod
    def _elapsed(member: Any) -> float:
        return time.monotonic() - (member.started or member.submitted)

    def _fail(self, member: Any, error: str) -> Outcome:
        """The failed outcome of a member's job; the member is free again."""
        assert member.job_id is not None
        outcome = Outcome(member.job_id, None, error, self._elapsed(member))
        member.job_id = member.started = None
        return outcome


class ProcessBackend(_PoolBackend):
    """``workers`` spawned worker processes, one job each at a time.

    Jobs go to a worker over a pipe as JSON text. A worker that dies (a crash, a signal,
    ``os._exit``) fails only its job, with the exit code or signal in ``Outcome.error``,
    and a fresh worker takes its place; so does a worker whose job runs past
    ``time_limit`` (SIGTERM, then SIGKILL after a grace second). Workers ignore SIGINT,
    are daemonic, and are stopped by :meth:`close`, which also runs at interpreter exit;
    a worker whose driver process dies anyway (SIGKILL, SIGTERM) exits at once, busy or
    not. As with any ``spawn`` start, the driver's main module must be importable without
    side effects (an ``if __name__ == "__main__":`` guard).
    """

    name = "process"

    def __init__(self, fn: Job, *, workers: int, time_limit: float | None = None) -> None:
        super().__init__()
        self.fn = fn
        self.slots = workers
        self.time_limit = time_limit
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        atexit.register(self.close)
        try:
            self._workers = [self._spawn() for _ in range(workers)]
            self._await_ready()
        except BaseException:
            self.close()
            raise

    # public API

    def submit(self, job_id: int, payload: dict) -> None:
        busy = any(w.job_id == job_id for w in self._workers)
        text = self._encode_job(job_id, payload, busy)
        idle = [w for w in self._workers if w.job_id is None]
        worker = next((w for w in idle if w.ready), idle[0])
        if worker.process.exitcode is not None:  # died while idle, not yet noticed
            self._reap(worker)
            worker = self._replace(worker)
        now = time.monotonic()
        worker.job_id, worker.submitted = job_id, now
        worker.started = now if worker.ready else None
        with contextlib.suppress(OSError):  # if the worker is dying, wait() reports it
            worker.conn.send_bytes(text.encode())

    def _poll(self, delay: float | None) -> list[Outcome]:
        by_handle: dict[Any, _Worker] = {}
        for w in self._workers:
            by_handle[w.conn] = w
            by_handle[w.process.sentinel] = w
        outcomes: list[Outcome] = []
        for handle in connection.wait(list(by_handle), delay):
            worker = by_handle[handle]
            if worker in self._workers:  # not already replaced in this round
                outcomes += self._service(worker)
        return outcomes

    def _members(self) -> list[_Worker]:
        return self._workers

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        workers, self._workers = self._workers, []
        for w in workers:
            w.conn.close()  # an idle worker sees EOF and exits
            if w.process.exitcode is None:
                w.process.terminate()
        for w in workers:
            self._reap(w)

    def worker_pids(self) -> list[int]:
        """The process ids of the current workers (for diagnostics)."""
        return [w.process.pid for w in self._workers]

    def worker_jobs(self) -> dict[int, int | None]:
        """Each current worker's process id and the job it runs (None when idle)."""
        return {w.process.pid: w.job_id for w in self._workers}

    # internals

    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main, args=(child_conn, self.fn), name="evozero-worker", daemon=True
        )
        try:
            process.start()
        finally:
            child_conn.close()
        return _Worker(process, parent_conn, created=time.monotonic())

    def _await_ready(self) -> None:
        """Waits for every worker's ready message; raises RuntimeError if one fails."""
        end = time.monotonic() + START_TIMEOUT
        while not all(w.ready for w in self._workers):
            waiting = [w for w in self._workers if not w.ready]
            handles = [w.conn for w in waiting] + [w.process.sentinel for w in waiting]
            if not connection.wait(handles, max(0.0, end - time.monotonic())):
                raise RuntimeError(f"worker processes did not start within {START_TIMEOUT:g} s")
            for w in waiting:
                try:
                    if w.conn.poll():
                        w.ready = "ready" in json.loads(w.conn.recv_bytes())
                except (EOFError, OSError):
                    pass
                if not w.ready and w.process.exitcode is not None:
                    raise RuntimeError(
                        f"a worker process failed to start "
                        f"({_exit_description(w.process.exitcode)}); can a fresh interpreter "
                        f"import {self.fn.__module__}.{self.fn.__qualname__}? A script that "
                        'starts a search must do so under `if __name__ == "__main__":` '
                        "(workers re-import it); its traceback is on stderr"
                    )

    def _retire(self, worker: _Worker) -> None:
        self._reap(worker)
        self._replace(worker)

    def _service(self, worker: _Worker) -> list[Outcome]:
        """Reads the worker's messages; handles its death. Returns the finished jobs."""
        outcomes = []
        gone = False
        try:
            while worker.conn.poll():
                message = json.loads(worker.conn.recv_bytes())
                if "ready" in message:
                    worker.ready = True
                    if worker.job_id is not None and worker.started is None:
                        worker.started = time.monotonic()
                elif message["job_id"] == worker.job_id:
                    outcomes.append(_outcome(message, self._elapsed(worker)))
                    worker.job_id = worker.started = None
        except (EOFError, OSError):
            gone = True  # the worker closed its end of the pipe: it is exiting
        if not gone and worker.process.exitcode is None:
            return outcomes
        exitcode = self._reap(worker, exiting=True)
        if worker.job_id is not None:
            error = f"worker died ({_exit_description(exitcode)}) during the job"
            outcomes.append(self._fail(worker, error))
        self._replace(worker)
        return outcomes

    @staticmethod
    def _reap(worker: _Worker, exiting: bool = False) -> int | None:
        """Stops the worker's process (SIGTERM, then SIGKILL after a grace period), joins
        it and releases its resources; returns its exit code. ``exiting``: the worker is
        on its way out (its pipe is closed), so first give it a moment to finish."""
        process = worker.process
        worker.conn.close()
        if exiting:
            process.join(_TERMINATE_GRACE)
        if process.exitcode is None:
            process.terminate()
            process.join(_TERMINATE_GRACE)
        if process.exitcode is None:
            process.kill()
        process.join()
        exitcode = process.exitcode
        process.close()
        return exitcode

    def _replace(self, worker: _Worker) -> _Worker:
        """Puts a fresh worker in place of ``worker`` (already reaped); returns it."""
        fresh = self._spawn()
        self._workers[self._workers.index(worker)] = fresh
        return fresh


# --- ray ----------------------------------------------------------------------------------

_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("the ray backend needs Ray: pip install 'evozero[ray]'") from exc
    return ray


class _RayWorker:
    """The body of a Ray actor: runs one job at a time."""

    def __init__(self, fn: Job) -> None:
        self.fn = fn

    def ready(self) -> str:
        """The id of the Ray node this actor runs on."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def run(self, text: str) -> str:
        return _run_job(self.fn, text)


def _ray_error_summary(exc: BaseException) -> str:
    """One line out of one of Ray's long error messages."""
    text = _ANSI.sub("", str(exc))
    detail = re.search(r"Worker exit detail: ([^.]*)", text)
    if detail:
        summary = detail.group(1)
    elif "ray.kill" in text:
        summary = "killed by ray.kill"
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        summary = lines[-1] if lines else ""
    return f"{type(exc).__name__}: {_one_line(summary)}" if summary else type(exc).__name__


@dataclass(eq=False)
class _Actor:
    handle: Any
    ready_ref: Any  # the pending ready() call; None once the actor has answered
    created: float
    job_id: int | None = None
    ref: Any = None  # the pending run() call
    text: str = ""  # the job's JSON text (to run it again if its node dies)
    submitted: float = 0.0
    started: float | None = None
    node: str | None = None  # the Ray node id, once the actor is ready


class RayBackend(_PoolBackend):
    """One Ray actor per worker (``num_cpus=1``, spread over the nodes), one job each at a
    time.

    With ``address`` ``None`` or ``"local"`` it starts a local Ray instance with
    ``workers`` CPUs (unless Ray is already initialized in this process), and shuts it
    down on :meth:`close`; with ``"auto"`` or ``"HOST:PORT"`` it connects to a running
    cluster, whose nodes must be able to import ``fn``'s module. Actors get the driver's
    ``sys.path`` as ``PYTHONPATH``. An actor that dies fails only its job (``Outcome.error``
    carries Ray's exit detail; Ray does not report the exit code or signal) and is
    replaced; so is an actor whose job runs past ``time_limit`` (``ray.kill``). An actor
    that dies while idle is noticed only by the next job sent to it, which then fails.

    A job whose actor was lost with its *node* (a machine lost, a raylet killed; or an
    actor Ray cannot reach, so that the job's fate is unknown) is not the job's fault: it
    is run again, once, on a fresh actor placed on a live node (which needs a free CPU
    there); only a second loss fails it. :attr:`retried` lists such jobs.
    """

    name = "ray"

    def __init__(
        self,
        fn: Job,
        *,
        workers: int | None = None,
        time_limit: float | None = None,
        address: str | None = None,
    ) -> None:
        if address not in (None, "local", "auto") and not (
            isinstance(address, str) and _HOST_PORT.match(address)
        ):
            raise ValueError(
                f"bad Ray address {address!r}; use 'local' (start Ray here), "
                "'auto' (the running cluster) or 'HOST:PORT'"
            )
        ray = _import_ray()
        super().__init__()
        self.fn = fn
        self.time_limit = time_limit
        self._ray = ray
        self._actors: list[_Actor] = []
        #: Ids of the jobs run again because their node died (each at most once).
        self.retried: list[int] = []
        self._owns_ray = False  # whether this backend called ray.init
        if not ray.is_initialized():
            quiet: dict[str, Any] = dict(
                log_to_driver=False, logging_level=logging.WARNING, configure_logging=True
            )
            if address in (None, "local"):
                ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, **quiet)
            else:
                ray.init(address=address, **quiet)
            self._owns_ray = True
        self.slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        self._actor_class = ray.remote(_RayWorker).options(
            num_cpus=1,
            max_restarts=0,
            max_task_retries=0,
            scheduling_strategy="SPREAD",  # one node lost takes as few jobs as possible
            runtime_env={"env_vars": {"PYTHONPATH": path}},
        )
        try:
            self._actors = [self._create() for _ in range(self.slots)]
            self._await_ready()
        except BaseException:
            self.close()
            raise

    # public API

    def submit(self, job_id: int, payload: dict) -> None:
        busy = any(a.job_id == job_id for a in self._actors)
        text = self._encode_job(job_id, payload, busy)
        idle = [a for a in self._actors if a.job_id is None]
        actor = next((a for a in idle if a.ready_ref is None), idle[0])
        self._start(actor, job_id, text)

    def worker_jobs(self) -> dict[int, tuple[str | None, int | None]]:
        """Each current actor's index: its node id (None until ready) and its job (None
        when idle)."""
        return {i: (a.node, a.job_id) for i, a in enumerate(self._actors)}

    def _poll(self, delay: float | None) -> list[Outcome]:
        pending: dict[Any, _Actor] = {}
        for a in self._actors:
            if a.ready_ref is not None:
                pending[a.ready_ref] = a
            if a.ref is not None:
                pending[a.ref] = a
        refs = list(pending)
        done, _ = self._ray.wait(refs, num_returns=1, timeout=delay)
        if done:  # take everything else that is ready too
            done, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        outcomes: list[Outcome] = []
        for ref in done:
            actor = pending[ref]
            if actor in self._actors:
                outcomes += self._collect(actor, ref)
        return outcomes

    def _members(self) -> list[_Actor]:
        return self._actors

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        actors, self._actors = self._actors, []
        if self._ray.is_initialized():
            for a in actors:
                self._kill(a)
            if self._owns_ray:
                self._ray.shutdown()

    # internals

    def _start(self, actor: _Actor, job_id: int, text: str) -> None:
        now = time.monotonic()
        actor.job_id, actor.text, actor.submitted = job_id, text, now
        actor.started = now if actor.ready_ref is None else None
        actor.ref = actor.handle.run.remote(text)

    def _create(self) -> _Actor:
        handle = self._actor_class.remote(self.fn)
        return _Actor(handle, handle.ready.remote(), created=time.monotonic())

    def _await_ready(self) -> None:
        refs = [a.ready_ref for a in self._actors]
        try:
            nodes = self._ray.get(refs, timeout=START_TIMEOUT)
        except self._ray.exceptions.GetTimeoutError:
            raise RuntimeError(
                f"Ray actors did not start within {START_TIMEOUT:g} s "
                f"(does the cluster have {self.slots} free CPUs?)"
            ) from None
        except self._ray.exceptions.RayError as exc:
            raise RuntimeError(
                f"a Ray actor failed to start ({_ray_error_summary(exc)}); can the workers "
                f"import {self.fn.__module__}.{self.fn.__qualname__}?"
            ) from None
        for a, node in zip(self._actors, nodes, strict=True):
            a.ready_ref, a.node = None, node

    def _kill(self, actor: _Actor) -> None:
        with contextlib.suppress(Exception):  # already gone
            self._ray.kill(actor.handle, no_restart=True)

    def _replace(self, actor: _Actor) -> _Actor:
        """Puts a fresh actor in place of ``actor`` (killed); returns it."""
        self._kill(actor)
        fresh = self._create()
        self._actors[self._actors.index(actor)] = fresh
        return fresh

    def _node_lost(self, actor: _Actor, exc: BaseException) -> bool:
        """Whether ``actor`` was lost with its node rather than by its job's doing: Ray
        says the node died, or the cluster lists the node as dead, or Ray could not reach
        the actor and does not know what became of the job (what a node killed outright
        looks like before the cluster notices: ``ActorUnavailableError``)."""
        unavailable = getattr(self._ray.exceptions, "ActorUnavailableError", ())
        if isinstance(exc, unavailable) or "its node has died" in str(exc):
            return True
        if actor.node is None:
            return False
        try:
            alive = {n["NodeID"] for n in self._ray.nodes() if n.get("Alive")}
        except Exception:  # the cluster cannot say: assume the job's own fault
            return False
        return actor.node not in alive

    def _retire(self, actor: _Actor) -> None:
        self._replace(actor)

    def _collect(self, actor: _Actor, ref: Any) -> list[Outcome]:
        """Handles one finished call on ``actor``: its ready() or its job."""
        ray = self._ray
        if ref == actor.ready_ref:
            actor.ready_ref = None
            try:
                actor.node = ray.get(ref)
            except ray.exceptions.RayError as exc:
                if actor.job_id is None:
                    self._replace(actor)
                    return []
                outcome = self._fail(actor, f"worker failed to start ({_ray_error_summary(exc)})")
                self._replace(actor)
                return [outcome]
            if actor.job_id is not None and actor.started is None:
                actor.started = time.monotonic()
            return []
        try:
            reply = ray.get(ref)
        except ray.exceptions.RayError as exc:
            job_id, text = actor.job_id, actor.text
            assert job_id is not None
            if job_id not in self.retried and self._node_lost(actor, exc):
                self.retried.append(job_id)
                self._start(self._replace(actor), job_id, text)
                return []
            outcome = self._fail(actor, f"worker died during the job ({_ray_error_summary(exc)})")
            self._replace(actor)
            return [outcome]
        outcome = _outcome(json.loads(reply), self._elapsed(actor))
        actor.job_id = actor.ref = actor.started = None
        return [outcome]
