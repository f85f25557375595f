"""The ``batch`` backend: the search's jobs trained together by ``evozero.train_many``.

:class:`BatchBackend` collects up to ``slots`` submitted jobs; :meth:`~BatchBackend.wait`
evaluates all of them at once with :func:`evaluate_jobs`, which trains every (program,
task, seed) run of the batch with one :func:`evozero.train_many` call per (env, trainer
settings, seeds) group, on the host (``device="cpu"``: host threads) or on the GPU
(``device="cuda"``: one thread block per agent). Each job's reply is exactly what
:func:`~evozero.search.fitness.evaluate_job` answers for it (train_many's host path is
bit-exact with :func:`evozero.train`), except:

* ``seconds``: a run's is the wall time of its ``train_many`` call divided by the call's
  agents; a job's outcome's is the batch's wall time divided by its jobs (the share each
  candidate cost);
* compute: a candidate's runs are trained together, so it trains every seed and task even
  where :func:`~evozero.search.fitness.run_task` would stop at the first failed run; the
  reply keeps only the records the sequential path would have made, so statuses, fitness
  and store records are the same.

Tasks ``train_many`` cannot train (gymnasium envs, ``network="conv"``) run through
:func:`~evozero.search.fitness.run_task` in this process, one run at a time: a suite that
mixes them still works (slowly for those tasks), and the report's held-out tasks, which
may be gymnasium envs, need no other backend.

The backend runs in the calling process: ``time_limit`` is not enforced (a GPU launch
cannot be stopped part way) and a job that crashes the process stops the search (resume
it); a program that does not compile fails its own job alone (programs are compiled
before the call); a ``train_many`` call that raises fails the jobs it trained.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from evozero.native.compile import compile_program
from evozero.native.envs import GAMES, _cuda_module
from evozero.native.population import train_many
from evozero.native.train import TrainResult
from evozero.program import dsl
from evozero.program.model import Program
from evozero.search.backends import Backend, Outcome, _describe_exception
from evozero.search.fitness import random_return, run_record, run_task, task_score
from evozero.search.protocol import (
    Job,
    JobResult,
    RandomJob,
    RandomResult,
    RunRecord,
    parse_job,
)
from evozero.search.tasks import Task
from evozero.status import Status

#: Devices the batch backend trains on (``evozero.train_many``'s).
DEVICES: tuple[str, ...] = ("cpu", "cuda")

#: ``train_many(programs, env, config, seeds, device=..., threads=...)``; a parameter so
#: that tests can count the calls.
TrainMany = Callable[..., list[TrainResult]]


def batchable(task: Task) -> bool:
    """Whether ``train_many`` can train ``task`` (a native game with the MLP network)."""
    return task.env in GAMES and task.train_config().network == "mlp"


def check_device(device: str) -> None:
    """Raises RuntimeError unless ``device`` can train: an unknown device, or ``cuda``
    without the CUDA extension or a GPU (the message says which is missing)."""
    if device not in DEVICES:
        raise RuntimeError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if device == "cuda":
        _cuda_module()


def _train_runs(
    requests: Sequence[tuple[Program, Task]],
    device: str,
    threads: int | None,
    trainer: TrainMany,
) -> list[list[RunRecord] | BaseException]:
    """The records of every seed of each ``(program, task)``, all seeds trained (in the
    task's seed order), or the exception that training it raised."""
    out: list[list[RunRecord] | BaseException | None] = [None] * len(requests)
    groups: dict[tuple[str, Any, tuple[int, ...]], list[int]] = {}
    compiled: set[int] = set()
    for i, (program, task) in enumerate(requests):
        if not batchable(task):
            try:
                out[i] = _all_seeds(program, task)
            except Exception as exc:
                out[i] = exc
            continue
        try:  # a program that does not compile fails its own job, not its group's call
            if id(program) not in compiled:
                compile_program(program)
                compiled.add(id(program))
        except Exception as exc:
            out[i] = exc
            continue
        key = (task.env, task.train_config(), tuple(task.seeds))
        groups.setdefault(key, []).append(i)
    for (env, config, seeds), members in groups.items():
        programs = [requests[i][0] for i in members]
        try:
            results = trainer(programs, env, config, list(seeds), device=device, threads=threads)
            per_program: list[Any] = [
                results[k * len(seeds) : (k + 1) * len(seeds)] for k in range(len(members))
            ]
        except Exception as exc:  # the call as a whole failed (a CUDA error)
            per_program = [exc] * len(members)
        share = len(members) * len(seeds)
        for i, results in zip(members, per_program, strict=True):
            if isinstance(results, BaseException):
                out[i] = results
                continue
            task = requests[i][1]
            out[i] = [
                run_record(task, seed, _shared(r, share))
                for seed, r in zip(seeds, results, strict=True)
            ]
    assert all(r is not None for r in out)
    return out  # type: ignore[return-value]


def _shared(result: TrainResult, agents: int) -> TrainResult:
    """``result`` with its call's wall time divided among the call's agents."""
    return dataclasses.replace(result, seconds=result.seconds / agents)


def _all_seeds(program: Program, task: Task) -> list[RunRecord]:
    """The sequential path's records of ``task`` (it stops at the first failed seed, so
    :func:`_sequential` cuts nothing more)."""
    return run_task(program, task)


def _sequential(records: list[RunRecord]) -> tuple[RunRecord, ...]:
    """The records :func:`~evozero.search.fitness.run_task` keeps: up to and including
    the first run that did not end ``ok``."""
    for k, r in enumerate(records):
        if r.status != Status.OK:
            return tuple(records[: k + 1])
    return tuple(records)


def evaluate_jobs(
    payloads: Sequence[dict[str, Any]],
    *,
    device: str = "cpu",
    threads: int | None = None,
    trainer: TrainMany = train_many,
) -> list[dict[str, Any] | str]:
    """What :func:`~evozero.search.fitness.evaluate_job` answers for each payload, trained
    together.

    Args:
        payloads: jobs as the driver sends them (``Job`` or ``RandomJob`` JSON).
        device: ``cpu`` or ``cuda`` (``train_many``'s device).
        threads: ``train_many``'s ``threads`` (host threads on ``cpu``, threads per block
            on ``cuda``; None: its default).
        trainer: the population trainer (``evozero.train_many``; tests pass a wrapper).

    Returns:
        One entry per payload, in order: the reply (a ``JobResult`` or ``RandomResult`` as
        JSON), or a one-line error (``"ProgramError: ..."``) for a job that failed: it does
        not parse, its program does not compile, or training raised.
    """
    replies: list[dict[str, Any] | str | None] = [None] * len(payloads)
    jobs: dict[int, tuple[Job, Program]] = {}
    for i, payload in enumerate(payloads):
        try:
            job = parse_job(payload)
            if isinstance(job, RandomJob):
                returns = tuple(random_return(job.task, s) for s in job.task.seeds)
                replies[i] = RandomResult(returns).to_json()
            else:
                jobs[i] = (job, dsl.parse(job.program, filename="<candidate>"))
        except Exception as exc:
            replies[i] = _describe_exception(exc)

    # Stage 1: the hurdles, all together.
    hurdles = {i: j for i, j in jobs.items() if j[0].hurdle is not None}
    hurdle_runs: dict[int, tuple[RunRecord, ...]] = {}
    hurdle_scores: dict[int, float | None] = {}
    trained = _train_runs(
        [(p, j.hurdle.task) for j, p in hurdles.values()],  # type: ignore[union-attr]
        device,
        threads,
        trainer,
    )
    for i, records in zip(hurdles, trained, strict=True):
        job = jobs[i][0]
        assert job.hurdle is not None
        if isinstance(records, BaseException):
            replies[i] = _describe_exception(records)
            continue
        hurdle_runs[i] = _sequential(records)
        score = task_score(hurdle_runs[i], job.hurdle.random, job.hurdle.ppo)
        hurdle_scores[i] = score
        if score is None or score < job.hurdle.threshold:
            replies[i] = JobResult(hurdle_runs[i], score, False, {}).to_json()

    # Stage 2: every task of the jobs still going, all together.
    going = [i for i in jobs if replies[i] is None]
    requests = [(i, jobs[i][1], t) for i in going for t in jobs[i][0].tasks]
    trained = _train_runs([(p, t) for _, p, t in requests], device, threads, trainer)
    per_job: dict[int, list[tuple[Task, list[RunRecord] | BaseException]]] = {i: [] for i in going}
    for (i, _, task), records in zip(requests, trained, strict=True):
        per_job[i].append((task, records))
    for i in going:
        runs: dict[str, tuple[RunRecord, ...]] = {}
        error = None
        for task, records in per_job[i]:
            if isinstance(records, BaseException):
                error = _describe_exception(records)
                break
            runs[task.label] = _sequential(records)
            if any(r.status != Status.OK for r in runs[task.label]):
                break  # evaluate_job trains no task after a failed one
        replies[i] = (
            error or JobResult(hurdle_runs.get(i), hurdle_scores.get(i), True, runs).to_json()
        )
    assert all(r is not None for r in replies)
    return replies  # type: ignore[return-value]


class BatchBackend(Backend):
    """Runs up to ``slots`` jobs at once, in the calling process, as one batch.

    :meth:`submit` only queues a job; :meth:`wait` trains every queued job together
    (:func:`evaluate_jobs`) and returns their outcomes in submission order. Payloads and
    replies make the same JSON round trip as with the other backends. ``time_limit`` is
    not enforced and ``wait``'s ``timeout`` does not interrupt a batch.

    Args:
        slots: jobs per batch (the search's ``--workers``); 1 to :data:`MAX_WORKERS`.
        device: ``cpu`` (train_many's host path on ``threads`` host threads) or ``cuda``.
        threads: host threads (``cpu``, default every core) or threads per block
            (``cuda``, default 256).
        trainer: the population trainer (tests pass a wrapper of ``evozero.train_many``).

    Raises:
        RuntimeError: ``device`` is unknown, or ``cuda`` without the CUDA extension or a
            GPU (the message names what is missing).
    """

    name = "batch"

    def __init__(
        self,
        slots: int,
        *,
        device: str = "cpu",
        threads: int | None = None,
        trainer: TrainMany = train_many,
    ) -> None:
        check_device(device)
        super().__init__()
        self.slots = slots
        self.device = device
        self.threads = threads if threads is not None or device == "cuda" else os.cpu_count()
        self.trainer = trainer
        self._queue: list[tuple[int, str]] = []
        #: The number of jobs of each batch trained so far (for tests and progress).
        self.batches: list[int] = []

    def submit(self, job_id: int, payload: dict) -> None:
        busy = any(j == job_id for j, _ in self._queue)
        self._queue.append((job_id, self._encode_job(job_id, payload, busy)))

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if not self._queue:
            return []
        queue, self._queue = self._queue, []
        start = time.monotonic()
        payloads = [json.loads(text)["payload"] for _, text in queue]
        try:
            replies: list[dict[str, Any] | str] = evaluate_jobs(
                payloads, device=self.device, threads=self.threads, trainer=self.trainer
            )
        except Exception as exc:  # a failure of the batch as a whole (a CUDA error)
            replies = [_describe_exception(exc)] * len(queue)
        seconds = (time.monotonic() - start) / len(queue)
        self.batches.append(len(queue))
        outcomes = []
        for (job_id, _), reply in zip(queue, replies, strict=True):
            if isinstance(reply, str):
                outcomes.append(Outcome(job_id, None, reply, seconds))
            else:  # the JSON round trip the other backends' replies make
                outcomes.append(Outcome(job_id, json.loads(json.dumps(reply)), None, seconds))
        return outcomes

    def in_flight(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._queue = []
        self._closed = True


__all__ = ["DEVICES", "BatchBackend", "batchable", "check_device", "evaluate_jobs"]
