"""Fitness: tasks, suites, normalized scores and the job a search worker runs.

A :class:`Task` is (env, trainer config, step budget, seeds). A rule's score on a task is
its final return normalized against a uniform-random policy and ``programs/ppo.evz`` on
the same task and seeds: ``(R - R_random) / (R_ppo - R_random)``, so random scores 0 and
PPO scores 1. Both normalizers are measured by evozero itself and cached per task and seed
(see :class:`NormalizerCache`). A :class:`Suite` names the tasks a search selects on, a
cheap hurdle in front of them, and held-out tasks for the final report.

Everything that crosses a process boundary here is plain JSON (program text, task specs,
numbers); nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

import evozero
from evozero.program import dsl
from evozero.native.envs import GAMES, MinAtarVecEnv
from evozero.program.model import Program
from evozero.native.train import TrainConfig, learning_curve, train

#: Smallest ``R_ppo - R_random`` a score is divided by (guards a degenerate normalizer).
MIN_SPREAD = 1e-6
#: Env steps of the uniform-random rollouts that measure ``R_random`` (at most).
RANDOM_STEPS = 100_000


def reference_program_text(name: str) -> str:
    """The text of a reference program shipped with evozero (``ppo``, ``a2c``, ``noop`` ...)."""
    path = resources.files("evozero.programs") / f"{name}.evz"
    if not path.is_file():
        known = sorted(p.name[:-4] for p in resources.files("evozero.programs").iterdir()
                       if p.name.endswith(".evz"))
        raise ValueError(f"no reference program {name!r}; known: {', '.join(known)}")
    return path.read_text()


def reference_program(name: str) -> Program:
    """A reference program shipped with evozero, parsed."""
    return dsl.parse(reference_program_text(name), filename=f"{name}.evz")


# ----------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """One training task: an env, a step budget, trainer settings and the seeds to run.

    Attributes:
        env: a native MinAtar game or a gymnasium id (Discrete actions, flat Box obs).
        steps: env steps per training run.
        seeds: training seeds; the task's score is over their mean return.
        config: :class:`TrainConfig` fields that differ from the defaults.
    """

    env: str
    steps: int
    seeds: tuple[int, ...] = (0,)
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "config", dict(sorted(dict(self.config).items())))
        if not self.seeds:
            raise ValueError(f"task {self.env}: needs at least one seed")
        self.train_config()  # validates the settings

    def __hash__(self) -> int:
        return hash(self.spec_json())

    def train_config(self) -> TrainConfig:
        """The trainer settings of one run of this task."""
        return TrainConfig().replace(total_steps=self.steps, **self.config)

    @property
    def label(self) -> str:
        """Short name for tables, e.g. ``breakout@500k``."""
        steps = f"{self.steps // 1000}k" if self.steps % 1000 == 0 else str(self.steps)
        return f"{self.env}@{steps}"

    def with_seeds(self, seeds: Iterable[int]) -> Task:
        """The same task run with other seeds."""
        return Task(self.env, self.steps, tuple(seeds), self.config)

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "steps": self.steps, "seeds": list(self.seeds),
                "config": dict(self.config)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Task:
        return cls(str(data["env"]), int(data["steps"]), tuple(data["seeds"]),
                   dict(data.get("config", {})))

    def spec_json(self) -> str:
        """Canonical JSON of everything but the seeds (what a normalizer depends on)."""
        return json.dumps({"env": self.env, "steps": self.steps, "config": self.config},
                          sort_keys=True)


@dataclass(frozen=True)
class Suite:
    """A named set of tasks for search.

    Attributes:
        name: what ``--suite`` takes.
        description: one line for ``evozero evolve --help`` and the README.
        tasks: the tasks fitness is the mean score over.
        hurdle: a short task every candidate runs first; only candidates scoring at
            least ``hurdle_threshold`` on it pay for ``tasks``.
        hurdle_threshold: normalized hurdle score needed to go on.
        heldout: tasks never used for selection; the final report measures them.
        report_seeds: seeds per task when the final report re-evaluates rules (seeds
            1000, 1001, ... so that they differ from the search seeds).
        time_limit: seconds one candidate may take before its worker is killed.
    """

    name: str
    description: str
    tasks: tuple[Task, ...]
    hurdle: Task | None = None
    hurdle_threshold: float = 0.0
    heldout: tuple[Task, ...] = ()
    report_seeds: int = 5
    time_limit: float = 300.0

    def report_tasks(self) -> tuple[tuple[Task, ...], tuple[Task, ...]]:
        """``(train, heldout)`` tasks of the final report, on fresh seeds."""
        seeds = range(1000, 1000 + self.report_seeds)
        return (tuple(t.with_seeds(seeds) for t in self.tasks),
                tuple(t.with_seeds(seeds) for t in self.heldout))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description,
            "tasks": [t.to_json() for t in self.tasks],
            "hurdle": self.hurdle.to_json() if self.hurdle else None,
            "hurdle_threshold": self.hurdle_threshold,
            "heldout": [t.to_json() for t in self.heldout],
            "report_seeds": self.report_seeds, "time_limit": self.time_limit,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Suite:
        return cls(
            name=data["name"], description=data["description"],
            tasks=tuple(Task.from_json(t) for t in data["tasks"]),
            hurdle=Task.from_json(data["hurdle"]) if data.get("hurdle") else None,
            hurdle_threshold=float(data["hurdle_threshold"]),
            heldout=tuple(Task.from_json(t) for t in data["heldout"]),
            report_seeds=int(data["report_seeds"]), time_limit=float(data["time_limit"]),
        )


_SMALL_GYM = {"num_envs": 8}
_TINY = {"num_envs": 8, "num_steps": 32, "num_minibatches": 4}

#: The named suites (budgets chosen from measurements; see the README, "Suites").
SUITES: Mapping[str, Suite] = {
    "quick": Suite(
        name="quick",
        description="breakout and space_invaders at 500k steps after a 200k breakout "
                    "hurdle; held out: freeway and CartPole-v1",
        hurdle=Task("breakout", 200_000),
        hurdle_threshold=0.3,
        tasks=(Task("breakout", 500_000), Task("space_invaders", 500_000)),
        heldout=(Task("freeway", 500_000), Task("CartPole-v1", 100_000, config=_SMALL_GYM)),
        report_seeds=5,
        time_limit=120.0,
    ),
    "standard": Suite(
        name="standard",
        description="breakout, space_invaders and asterix at 2M steps, 2 seeds, after a "
                    "500k breakout hurdle; held out: freeway, seaquest, CartPole-v1, "
                    "Acrobot-v1",
        hurdle=Task("breakout", 500_000),
        hurdle_threshold=0.3,
        tasks=(Task("breakout", 2_000_000, (0, 1)), Task("space_invaders", 2_000_000, (0, 1)),
               Task("asterix", 2_000_000, (0, 1))),
        heldout=(Task("freeway", 2_000_000), Task("seaquest", 2_000_000),
                 Task("CartPole-v1", 200_000, config=_SMALL_GYM),
                 Task("Acrobot-v1", 200_000, config=_SMALL_GYM)),
        report_seeds=5,
        time_limit=600.0,
    ),
    "tiny": Suite(
        name="tiny",
        description="seconds-long smoke test: breakout at 40k steps with 8 envs; "
                    "held out: CartPole-v1 at 8k steps",
        hurdle=Task("breakout", 10_240, config=_TINY),
        hurdle_threshold=0.3,
        tasks=(Task("breakout", 40_960, config=_TINY),),
        heldout=(Task("CartPole-v1", 8_192, config=_TINY),),
        report_seeds=3,
        time_limit=60.0,
    ),
}
DEFAULT_SUITE = "quick"


def get_suite(name: str) -> Suite:
    """The suite called ``name``, or a ValueError listing the known ones."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of: {', '.join(SUITES)}")
    return SUITES[name]


# ----------------------------------------------------------------------------- runs


def random_return(task: Task, seed: int) -> float:
    """Mean episodic return of the uniform-random policy on ``task`` with env seed ``seed``."""
    cfg = task.train_config()
    steps = min(task.steps, RANDOM_STEPS)
    rng = np.random.default_rng([seed, 0x52414E44])
    returns: list[float] = []
    if task.env in GAMES:
        venv: gym.vector.VectorEnv = MinAtarVecEnv(
            task.env, num_envs=cfg.num_envs, sticky_action_prob=cfg.sticky_action_prob,
            difficulty_ramping=cfg.difficulty_ramping,
            minimal_action_set=cfg.minimal_action_set,
            max_episode_steps=cfg.max_episode_steps)
    else:
        venv = gym.make_vec(task.env, num_envs=cfg.num_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    try:
        venv.reset(seed=seed)
        n = int(venv.single_action_space.n)
        start = int(venv.single_action_space.start)
        acc = np.zeros(cfg.num_envs)
        for _ in range(max(1, steps // cfg.num_envs)):
            _, reward, terminated, truncated, _ = venv.step(
                rng.integers(0, n, size=cfg.num_envs) + start)
            acc += reward
            done = np.logical_or(terminated, truncated)
            returns.extend(acc[done].tolist())
            acc[done] = 0.0
    finally:
        venv.close()
    # An env whose episodes outlast the rollout: count its partial return.
    return float(np.mean(returns)) if returns else float(np.mean(acc))


def run_task(program: Program, task: Task) -> list[dict[str, Any]]:
    """Train ``program`` on each seed of ``task``; one JSON-ready record per seed.

    Stops at the first seed whose run does not end ``ok``.
    """
    records = []
    for seed in task.seeds:
        result = train(program, task.env, task.train_config(), seed)
        _, curve = learning_curve(result.episode_returns, result.episode_end_steps,
                                  result.total_steps)
        final = result.final_return
        records.append({
            "task": task.label, "seed": seed, "status": result.status,
            "message": result.message,
            "final_return": final if math.isfinite(final) else None,
            "auc": result.auc, "steps": result.steps, "seconds": result.seconds,
            "curve": [None if math.isnan(c) else float(c) for c in curve],
        })
        if result.status != "ok" or not math.isfinite(final):
            if result.status == "ok":
                records[-1]["status"] = "error"
                records[-1]["message"] = "no episode ended in the last 10% of the run"
            break
    return records


def evaluate_job(payload: dict[str, Any]) -> dict[str, Any]:
    """What a search worker runs: one program on a hurdle then a list of tasks.

    ``payload``: ``{"program": text, "tasks": [task...], "hurdle": {"task": task,
    "threshold": float, "random": [...], "ppo": [...]} or None}`` (normalizers per seed).
    Or ``{"random": task}`` to measure the random policy on each seed of a task.
    Returns ``{"hurdle": [records] | None, "hurdle_score": float | None,
    "passed": bool, "runs": {label: [records]}}``.
    """
    if "random" in payload:
        task = Task.from_json(payload["random"])
        return {"random": [random_return(task, s) for s in task.seeds]}
    program = dsl.parse(payload["program"], filename="<candidate>")
    out: dict[str, Any] = {"hurdle": None, "hurdle_score": None, "passed": True, "runs": {}}
    hurdle = payload.get("hurdle")
    if hurdle:
        task = Task.from_json(hurdle["task"])
        records = run_task(program, task)
        out["hurdle"] = records
        score = task_score(records, hurdle["random"], hurdle["ppo"])
        out["hurdle_score"] = score
        if score is None or score < hurdle["threshold"]:
            out["passed"] = False
            return out
    for spec in payload["tasks"]:
        task = Task.from_json(spec)
        records = run_task(program, task)
        out["runs"][task.label] = records
        if any(r["status"] != "ok" for r in records):
            break
    return out


# ----------------------------------------------------------------------------- scores


def normalized(value: float, random: float, ppo: float) -> float:
    """``(value - random) / (ppo - random)``: 0 is the random policy, 1 is PPO."""
    return (value - random) / max(ppo - random, MIN_SPREAD)


def task_score(records: Sequence[Mapping[str, Any]], random: Sequence[float],
               ppo: Sequence[float]) -> float | None:
    """Normalized score of a task's seed records (None if a run failed or is missing)."""
    if len(records) != len(random) or any(r["status"] != "ok" for r in records):
        return None
    value = float(np.mean([r["final_return"] for r in records]))
    return normalized(value, float(np.mean(random)), float(np.mean(ppo)))


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
            f"{evozero.__version__}|{ppo_digest()}|{task.spec_json()}".encode()).hexdigest()
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
    "DEFAULT_SUITE", "SUITES", "NormalizerCache", "Suite", "Task", "evaluate_job", "get_suite",
    "normalized", "random_return", "reference_program", "reference_program_text", "run_task",
    "task_score",
]
