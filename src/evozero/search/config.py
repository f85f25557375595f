"""A search's settings and the initial population it starts from."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evozero.program import dsl
from evozero.program.model import Program
from evozero.program.random_programs import random_program
from evozero.search.backends import BACKENDS, MAX_WORKERS
from evozero.search.fitness import reference_program
from evozero.search.store import INIT_ORIGIN
from evozero.search.tasks import DEFAULT_SUITE, get_suite

#: Where the ``batch`` backend trains (``evozero.train_many``'s devices).
DEVICES: tuple[str, ...] = ("cpu", "cuda")
INITS: tuple[str, ...] = ("seeds", "noop", "random")
#: Where runs go unless told otherwise (``evolve --out``, ``evozero.evolve(out=...)``).
DEFAULT_RUNS_ROOT = Path("runs")
#: The integer settings' ranges (the command line's flags check them too). The store keeps
#: budgets and seeds as SQLite's int64; a worker is a process and the population lives in
#: memory, so their bounds keep a typo from exhausting the machine.
LIMITS: dict[str, tuple[int, int]] = {
    "budget": (1, 2**63 - 1),
    "population": (1, 100_000),
    "tournament": (1, 100_000),
    "workers": (1, MAX_WORKERS),
    "seed": (0, 2**63 - 1),
    "refine_top": (0, 100),
    "refine_steps": (1, 2**63 - 1),
}
#: The refinement methods (:mod:`evozero.refine`; listed here, below it, so a search's
#: settings can be checked without it).
REFINE_METHODS: tuple[str, ...] = ("metagrad", "es")
#: Env-step budget of one rule's refinement: the detuned benchmark's (README), enough
#: for two ES iterations or about ten meta-steps at 1M-step lifetimes.
REFINE_STEPS = 8_000_000
#: The reference programs that ``--init seeds`` starts from (noop is not a seed: it
#: learns nothing).
SEED_PROGRAMS: tuple[str, ...] = ("ppo", "a2c", "dpo", "reinforce", "td_ac")


@dataclass(frozen=True)
class SearchConfig:
    """Settings of a search run (all recorded in the run store).

    Attributes:
        budget: candidates to train at rung 0 (duplicates are not counted; promotions
            to higher rungs are not either).
        suite: the task suite fitness is measured on (see ``tasks.SUITES``).
        init: ``seeds`` (the reference programs), ``noop`` or ``random``; ignored when
            ``init_texts`` is given.
        init_texts: ``(filename, text)`` of user-given initial programs.
        population: individuals kept alive; the oldest dies when a child arrives.
        tournament: individuals drawn to pick each parent.
        workers: parallel evaluations (default: all cores).
        backend: ``serial`` (deterministic), ``process``, ``ray`` or ``batch`` (``workers``
            candidates at a time trained together by ``evozero.train_many`` on
            ``device``; deterministic).
        device: ``cpu`` (default) or ``cuda``: where the ``batch`` backend trains
            (``cuda`` needs it: ``evolve --device cuda`` picks it).
        address: Ray cluster address (``auto``, ``HOST:PORT``) for the ray backend.
        seed: seeds every random choice of the search.
        max_time: seconds of search (over all sessions of the run) after which no more
            candidates or promotions start; None: no limit.
        refine_top: after the search, refine the constants of this many best rules
            (:mod:`evozero.refine`; kept refinements are stored as children); 0: none.
        refine_method: ``metagrad`` or ``es``.
        refine_steps: env-step budget of each rule's refinement.
    """

    budget: int
    suite: str = DEFAULT_SUITE
    init: str = "seeds"
    init_texts: tuple[tuple[str, str], ...] = ()
    population: int = 32
    tournament: int = 4
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    backend: str = "process"
    device: str = "cpu"
    address: str | None = None
    seed: int = 0
    max_time: float | None = None
    refine_top: int = 0
    refine_method: str = "metagrad"
    refine_steps: int = REFINE_STEPS

    def __post_init__(self) -> None:
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"--{name} must be an integer >= {lo}, got {value!r}")
            if value > hi:
                raise ValueError(f"--{name} must be at most {hi:,}, got {value:,}")
        if not self.suite.endswith(".toml"):  # a suite file is read by Search.create
            get_suite(self.suite)
        if self.max_time is not None and not (
            isinstance(self.max_time, (int, float)) and self.max_time > 0
        ):
            raise ValueError(f"--max-time must be a positive duration, got {self.max_time!r}")
        if self.init not in INITS:
            raise ValueError(
                f"unknown --init {self.init!r}; choose one of {', '.join(INITS)} or give .evz files"
            )
        if self.backend not in BACKENDS:
            raise ValueError(
                f"unknown --backend {self.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if self.device not in DEVICES:
            raise ValueError(
                f"unknown --device {self.device!r}; choose one of {', '.join(DEVICES)}"
            )
        if self.device != "cpu" and self.backend != "batch":
            raise ValueError(
                f"--device {self.device} trains with the batch backend, not --backend "
                f"{self.backend}"
            )
        if self.refine_method not in REFINE_METHODS:
            raise ValueError(
                f"unknown --refine-method {self.refine_method!r}; "
                f"choose one of {', '.join(REFINE_METHODS)}"
            )
        if self.tournament > self.population:
            raise ValueError(
                f"--tournament ({self.tournament}) cannot exceed --population ({self.population})"
            )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["init_texts"] = [list(t) for t in self.init_texts]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchConfig:
        data = dict(data)
        data["init_texts"] = tuple(tuple(t) for t in data.get("init_texts", ()))
        return cls(**data)


def initial_programs(config: SearchConfig) -> list[tuple[str, Program]]:
    """``(origin, program)`` of the initial population."""
    if config.init_texts:
        return [
            (f"{INIT_ORIGIN}{Path(name).name}", dsl.parse(text, filename=name))
            for name, text in config.init_texts
        ]
    if config.init == "seeds":
        return [(f"{INIT_ORIGIN}{n}", reference_program(n)) for n in SEED_PROGRAMS]
    if config.init == "noop":
        return [(f"{INIT_ORIGIN}noop", reference_program("noop"))]
    return [
        (f"{INIT_ORIGIN}random", random_program(np.random.default_rng([config.seed, 2**31 + i])))
        for i in range(config.population)
    ]


def default_run_dir(config: SearchConfig) -> Path:
    """A new run's directory when none is given: ``runs/<time>-<suite>-s<seed>``."""
    return (
        DEFAULT_RUNS_ROOT
        / f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(config.suite).stem}-s{config.seed}"
    )
