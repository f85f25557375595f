"""Fitness: normalized scores, a candidate's verdict, and the job a search worker runs.

A rule's score on a task (:mod:`~evozero.search.tasks`) is its final return normalized
against a uniform-random policy and ``programs/ppo.evz`` on the same task and seeds:
``(R - R_random) / (R_ppo - R_random)``, so random scores 0 and PPO scores 1. Both
normalizers are measured by evozero itself and cached per task and seed (see
:class:`NormalizerCache`). A candidate's fitness over several tasks is the minimum of
its task scores (:func:`aggregate`; why: the README, "Fitness").

Everything that crosses a process boundary here is plain JSON (the worker protocol,
:mod:`~evozero.search.protocol`); nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

import evozero
from evozero.native.envs import GAMES, MinAtarVecEnv
from evozero.native.train import TrainResult, learning_curve, train
from evozero.program import dsl
from evozero.program.model import Program
from evozero.search.protocol import (
    CandidateResult,
    JobResult,
    RandomJob,
    RandomResult,
    RunRecord,
    parse_job,
)
from evozero.search.tasks import Suite, Task
from evozero.status import Status

#: Smallest ``R_ppo - R_random`` a score is divided by (guards a degenerate normalizer).
MIN_SPREAD = 1e-6
#: Env steps of the uniform-random rollouts that measure ``R_random`` (at most).
RANDOM_STEPS = 100_000


def reference_program_text(name: str) -> str:
    """The text of a reference program shipped with evozero (``ppo``, ``a2c``, ``noop`` ...)."""
    path = resources.files("evozero.programs") / f"{name}.evz"
    if not path.is_file():
        known = sorted(
            p.name[:-4]
            for p in resources.files("evozero.programs").iterdir()
            if p.name.endswith(".evz")
        )
        raise ValueError(f"no reference program {name!r}; known: {', '.join(known)}")
    return path.read_text()


def reference_program(name: str) -> Program:
    """A reference program shipped with evozero, parsed."""
    return dsl.parse(reference_program_text(name), filename=f"{name}.evz")


# ----------------------------------------------------------------------------- runs


def random_return(task: Task, seed: int) -> float:
    """Mean episodic return of the uniform-random policy on ``task`` with env seed ``seed``."""
    cfg = task.train_config()
    steps = min(task.steps, RANDOM_STEPS)
    rng = np.random.default_rng([seed, 0x52414E44])
    returns: list[float] = []
    if task.env in GAMES:
        venv: gym.vector.VectorEnv = MinAtarVecEnv(
            task.env,
            num_envs=cfg.num_envs,
            sticky_action_prob=cfg.sticky_action_prob,
            difficulty_ramping=cfg.difficulty_ramping,
            minimal_action_set=cfg.minimal_action_set,
            max_episode_steps=cfg.max_episode_steps,
        )
    else:
        venv = gym.make_vec(
            task.env,
            num_envs=cfg.num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        )
    try:
        venv.reset(seed=seed)
        n = int(venv.single_action_space.n)
        start = int(venv.single_action_space.start)
        acc = np.zeros(cfg.num_envs)
        for _ in range(max(1, steps // cfg.num_envs)):
            _, reward, terminated, truncated, _ = venv.step(
                rng.integers(0, n, size=cfg.num_envs) + start
            )
            acc += reward
            done = np.logical_or(terminated, truncated)
            returns.extend(acc[done].tolist())
            acc[done] = 0.0
    finally:
        venv.close()
    # An env whose episodes outlast the rollout: count its partial return.
    return float(np.mean(returns)) if returns else float(np.mean(acc))


def run_record(task: Task, seed: int, result: TrainResult) -> RunRecord:
    """The record of one training run of ``task`` with ``seed`` (``ok`` with no episode
    ended in the last 10% of the run is an ``error``)."""
    _, curve = learning_curve(result.episode_returns, result.episode_end_steps, result.total_steps)
    final = result.final_return
    status, message = result.status, result.message
    if status == Status.OK and not math.isfinite(final):
        status, message = Status.ERROR, "no episode ended in the last 10% of the run"
    return RunRecord(
        task=task.label,
        seed=seed,
        status=status,
        message=message,
        final_return=final if math.isfinite(final) else None,
        auc=result.auc,
        steps=result.steps,
        seconds=result.seconds,
        curve=tuple(None if math.isnan(c) else float(c) for c in curve),
    )


def run_task(program: Program, task: Task) -> list[RunRecord]:
    """Train ``program`` on each seed of ``task``; one record per seed.

    Stops at the first seed whose run does not end ``ok``.
    """
    records = []
    for seed in task.seeds:
        records.append(run_record(task, seed, train(program, task.env, task.train_config(), seed)))
        if records[-1].status != Status.OK:
            break
    return records


def evaluate_job(payload: dict[str, Any]) -> dict[str, Any]:
    """What a search worker runs (the backends' job function); JSON in, JSON out.

    ``payload`` is a :class:`~evozero.search.protocol.Job` (one program on a hurdle, then,
    if it passes, on a list of tasks; answered by a ``JobResult``) or a ``RandomJob`` (the
    random policy on each seed of a task; answered by a ``RandomResult``).

    Raises:
        ProtocolError: ``payload`` is not a job.
        ProgramError: the program text does not parse.
    """
    job = parse_job(payload)
    if isinstance(job, RandomJob):
        return RandomResult(tuple(random_return(job.task, s) for s in job.task.seeds)).to_json()
    program = dsl.parse(job.program, filename="<candidate>")
    hurdle_runs, hurdle_score = None, None
    if job.hurdle:
        hurdle_runs = tuple(run_task(program, job.hurdle.task))
        hurdle_score = task_score(hurdle_runs, job.hurdle.random, job.hurdle.ppo)
        if hurdle_score is None or hurdle_score < job.hurdle.threshold:
            return JobResult(hurdle_runs, hurdle_score, False, {}).to_json()
    runs: dict[str, tuple[RunRecord, ...]] = {}
    for task in job.tasks:
        runs[task.label] = tuple(run_task(program, task))
        if any(r.status != Status.OK for r in runs[task.label]):
            break
    return JobResult(hurdle_runs, hurdle_score, True, runs).to_json()


# ----------------------------------------------------------------------------- scores

#: ``R_random`` and ``R_ppo`` per (task label, seed).
Normalizers = Mapping[tuple[str, int], tuple[float, float]]


def normalized(value: float, random: float, ppo: float) -> float:
    """``(value - random) / (ppo - random)``: 0 is the random policy, 1 is PPO."""
    return (value - random) / max(ppo - random, MIN_SPREAD)


def normalizer_lists(normalizers: Normalizers, task: Task) -> tuple[list[float], list[float]]:
    """``(random, ppo)`` per seed of ``task``; KeyError if one is not known."""
    pairs = [normalizers[(task.label, s)] for s in task.seeds]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def task_score(
    records: Sequence[RunRecord], random: Sequence[float], ppo: Sequence[float]
) -> float | None:
    """Normalized score of a task's seed records (None if a run failed or is missing)."""
    if len(records) != len(random) or any(r.status != Status.OK for r in records):
        return None
    value = float(np.mean([r.final_return for r in records]))
    return normalized(value, float(np.mean(random)), float(np.mean(ppo)))


def aggregate(scores: Sequence[float]) -> float:
    """A candidate's fitness from its normalized task scores: the minimum over tasks.

    A mean lets one game hide a collapse in another (a rule that halves breakout and
    doubles space_invaders averages 1.25, above ppo.evz's 1.0); an IQM or a trimmed mean
    trims nothing from the 1 to 5 tasks of a suite's rung. The minimum ranks a rule by its
    worst game, which is what the final verdict asks (improved only with no task lost).
    """
    return float(min(scores))


def candidate_result(
    reply: JobResult,
    suite: Suite,
    normalizers: Normalizers,
    seconds: float,
    tasks: Sequence[Task] | None = None,
) -> CandidateResult:
    """A candidate's verdict from its worker's reply: ``diverged`` or ``error`` if a run
    failed, ``culled`` (fitness: the hurdle score) below the hurdle, else ``ok`` with the
    :func:`aggregate` of its normalized scores on ``tasks`` (default: the suite's rung 0)
    as its fitness."""
    runs = reply.records()
    failed = next((r for _, r in runs if r.status != Status.OK), None)
    if failed is not None:
        status = Status.DIVERGED if failed.status == Status.DIVERGED else Status.ERROR
        return CandidateResult(
            status,
            None,
            reply.hurdle_score,
            runs=runs,
            seconds=seconds,
            message=f"{failed.task} seed {failed.seed}: {failed.status} {failed.message}".strip(),
        )
    if not reply.passed:
        return CandidateResult(
            Status.CULLED,
            reply.hurdle_score,
            reply.hurdle_score,
            runs=runs,
            seconds=seconds,
            message=f"below the hurdle ({suite.hurdle_threshold:g})",
        )
    scores = {
        task.label: task_score(reply.runs.get(task.label, ()), *normalizer_lists(normalizers, task))
        for task in (suite.tasks if tasks is None else tasks)
    }
    values = [s for s in scores.values() if s is not None]
    return CandidateResult(
        Status.OK,
        aggregate(values) if len(values) == len(scores) else None,
        reply.hurdle_score,
        scores,
        runs=runs,
        seconds=seconds,
    )


# ----------------------------------------------------------------------------- normalizer cache


def cache_dir() -> Path:
    """Where evozero caches measurements (``$EVOZERO_CACHE_DIR``, else ~/.cache/evozero)."""
    env = os.environ.get("EVOZERO_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evozero"


class NormalizerCache:
    """``R_random`` and ``R_ppo`` per (task, seed), measured once and kept in a JSON file.

    Entries are keyed by the evozero version, the task's spec (env, steps, config) and the
    seed, so a new trainer or a new ppo.evz never reuses stale numbers. Writes are atomic
    (write a temporary file, then rename), so concurrent runs cannot corrupt it.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "normalizers.json"
        self._lock = threading.Lock()

    @staticmethod
    def key(task: Task, seed: int, which: str) -> str:
        digest = hashlib.sha256(
            f"{evozero.__version__}|{ppo_digest()}|{task.spec_json()}".encode()
        ).hexdigest()
        return f"{which}:{digest[:24]}:{seed}"

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: float(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def get(self, task: Task, seed: int, which: str) -> float | None:
        """The cached value, or None."""
        return self._read().get(self.key(task, seed, which))

    def put(self, task: Task, seed: int, which: str, value: float) -> None:
        """Record a measured value."""
        with self._lock:
            data = self._read()
            data[self.key(task, seed, which)] = float(value)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".normalizers-")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=0, sort_keys=True)
            os.replace(tmp, self.path)


def ppo_digest() -> str:
    """Digest of the shipped ppo.evz (normalizers depend on it)."""
    return hashlib.sha256(reference_program_text("ppo").encode()).hexdigest()[:16]


__all__ = [
    "NormalizerCache",
    "Normalizers",
    "aggregate",
    "candidate_result",
    "evaluate_job",
    "normalized",
    "normalizer_lists",
    "random_return",
    "reference_program",
    "reference_program_text",
    "run_record",
    "run_task",
    "task_score",
]
