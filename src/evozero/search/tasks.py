"""Tasks and suites: what a candidate is trained on during a search.

A :class:`Task` is (env, trainer config, step budget, seeds). A :class:`Suite` names the
tasks a search selects on, a cheap hurdle in front of them, and held-out tasks for the
final report. Both are plain data that travel as JSON (to workers and into the run store).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from evozero.native.envs import GAMES
from evozero.native.train import TrainConfig


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
        network = self.train_config().network  # validates the settings
        if network != "mlp" and self.env not in GAMES:
            raise ValueError(
                f"task {self.env}: network {network!r} needs a native game "
                f"({', '.join(GAMES)}); use 'mlp'"
            )

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
        return {
            "env": self.env,
            "steps": self.steps,
            "seeds": list(self.seeds),
            "config": dict(self.config),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Task:
        return cls(
            str(data["env"]), int(data["steps"]), tuple(data["seeds"]), dict(data.get("config", {}))
        )

    def spec_json(self) -> str:
        """Canonical JSON of everything but the seeds (what a normalizer depends on)."""
        return json.dumps(
            {"env": self.env, "steps": self.steps, "config": self.config}, sort_keys=True
        )


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
        return (
            tuple(t.with_seeds(seeds) for t in self.tasks),
            tuple(t.with_seeds(seeds) for t in self.heldout),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tasks": [t.to_json() for t in self.tasks],
            "hurdle": self.hurdle.to_json() if self.hurdle else None,
            "hurdle_threshold": self.hurdle_threshold,
            "heldout": [t.to_json() for t in self.heldout],
            "report_seeds": self.report_seeds,
            "time_limit": self.time_limit,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Suite:
        return cls(
            name=data["name"],
            description=data["description"],
            tasks=tuple(Task.from_json(t) for t in data["tasks"]),
            hurdle=Task.from_json(data["hurdle"]) if data.get("hurdle") else None,
            hurdle_threshold=float(data["hurdle_threshold"]),
            heldout=tuple(Task.from_json(t) for t in data["heldout"]),
            report_seeds=int(data["report_seeds"]),
            time_limit=float(data["time_limit"]),
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
        tasks=(
            Task("breakout", 2_000_000, (0, 1)),
            Task("space_invaders", 2_000_000, (0, 1)),
            Task("asterix", 2_000_000, (0, 1)),
        ),
        heldout=(
            Task("freeway", 2_000_000),
            Task("seaquest", 2_000_000),
            Task("CartPole-v1", 200_000, config=_SMALL_GYM),
            Task("Acrobot-v1", 200_000, config=_SMALL_GYM),
        ),
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
