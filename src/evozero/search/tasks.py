"""Tasks and suites: what a candidate is trained on during a search.

A :class:`Task` is (env, trainer config, step budget, seeds). A :class:`Suite` names the
tasks a search selects on, a cheap hurdle in front of them, and held-out tasks for the
final report. Both are plain data that travel as JSON (to workers and into the run store).
Users write suites as TOML files (:func:`load_suite`; ``examples/suite.toml``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evozero.native.envs import GAMES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from evozero.native.train import NETWORKS, TrainConfig


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
        """Short name for tables, e.g. ``breakout@500k``, or ``breakout@500k:conv`` with
        the conv network."""
        steps = f"{self.steps // 1000}k" if self.steps % 1000 == 0 else str(self.steps)
        network = self.config.get("network", TrainConfig.network)
        return f"{self.env}@{steps}" + ("" if network == TrainConfig.network else f":{network}")

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
    """A named set of tasks for a multi-fidelity search.

    Candidates start at rung 0; asynchronous successive halving (Li et al. 2020) promotes
    the best ``promote`` fraction of each rung to the next, which trains them on longer
    (or more) runs of the tasks.

    Attributes:
        name: what ``--suite`` takes.
        description: one line for ``evozero suites`` and the README.
        rungs: per rung, the tasks its fitness is the aggregate over (fitness.aggregate);
            their step budgets grow from rung to rung (e.g. 500k, 2M, 10M).
        hurdle: a short task every candidate runs first; only candidates scoring at
            least ``hurdle_threshold`` on it pay for rung 0.
        hurdle_threshold: normalized hurdle score needed to go on.
        heldout: tasks never used for selection; the final report measures them.
        promote: fraction of each rung promoted to the next (ASHA's 1/eta).
        target: the tasks, at the budget users care about, that the final report
            re-evaluates the rules on (default: the last rung's tasks).
        report_seeds: seeds per task when the final report re-evaluates rules (seeds
            1000, 1001, ... so that they differ from the search seeds).
        time_limit: seconds one job (a candidate at one rung) may take before its worker
            is killed.
    """

    name: str
    description: str
    rungs: tuple[tuple[Task, ...], ...]
    hurdle: Task | None = None
    hurdle_threshold: float = 0.0
    heldout: tuple[Task, ...] = ()
    promote: float = 0.25
    target: tuple[Task, ...] = ()
    report_seeds: int = 5
    time_limit: float = 300.0

    def __post_init__(self) -> None:
        rungs = tuple(tuple(r) for r in self.rungs)
        object.__setattr__(self, "rungs", rungs)
        object.__setattr__(self, "heldout", tuple(self.heldout))
        object.__setattr__(self, "target", tuple(self.target) or (rungs[-1] if rungs else ()))
        if not rungs or not all(rungs):
            raise ValueError(f"suite {self.name}: every rung needs at least one task")
        if len(rungs) > MAX_RUNGS:
            raise ValueError(f"suite {self.name}: at most {MAX_RUNGS} rungs, got {len(rungs)}")
        if not 0 < self.promote <= 1:
            raise ValueError(f"suite {self.name}: promote must be in (0, 1], got {self.promote}")
        if self.report_seeds < 1:
            raise ValueError(f"suite {self.name}: report_seeds must be at least 1")
        # Run stores key normalizers and runs by label: one label, one task spec.
        placed = [("hurdle", self.hurdle)] if self.hurdle else []
        placed += [(f"rung {k} task {i}", t) for k, r in enumerate(rungs) for i, t in enumerate(r)]
        placed += [(f"heldout[{i}]", t) for i, t in enumerate(self.heldout)]
        placed += [(f"target task {i}", t) for i, t in enumerate(self.target)]
        first: dict[str, tuple[str, Task]] = {}
        for where, task in placed:
            seen, other = first.setdefault(task.label, (where, task))
            if other.spec_json() != task.spec_json():
                raise ValueError(
                    f"suite {self.name}: {seen} and {where} are both {task.label} with "
                    "different trainer settings; give one of them another step budget"
                )

    @property
    def tasks(self) -> tuple[Task, ...]:
        """Rung 0's tasks (every trained candidate runs them)."""
        return self.rungs[0]

    @property
    def target_steps(self) -> int:
        """The largest step budget of the target tasks (what a verdict is measured at)."""
        return max(t.steps for t in self.target)

    def report_tasks(self) -> tuple[tuple[Task, ...], tuple[Task, ...]]:
        """``(train, heldout)`` tasks of the final report, on fresh seeds: the target
        budget's tasks, and the held-out ones."""
        seeds = range(1000, 1000 + self.report_seeds)
        return (
            tuple(t.with_seeds(seeds) for t in self.target),
            tuple(t.with_seeds(seeds) for t in self.heldout),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "rungs": [[t.to_json() for t in rung] for rung in self.rungs],
            "hurdle": self.hurdle.to_json() if self.hurdle else None,
            "hurdle_threshold": self.hurdle_threshold,
            "heldout": [t.to_json() for t in self.heldout],
            "promote": self.promote,
            "target": [t.to_json() for t in self.target],
            "report_seeds": self.report_seeds,
            "time_limit": self.time_limit,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Suite:
        """A suite from :meth:`to_json`; a suite stored before rungs existed (``tasks``)
        is a single rung."""
        rungs = data["rungs"] if "rungs" in data else [data["tasks"]]
        return cls(
            name=data["name"],
            description=data["description"],
            rungs=tuple(tuple(Task.from_json(t) for t in rung) for rung in rungs),
            hurdle=Task.from_json(data["hurdle"]) if data.get("hurdle") else None,
            hurdle_threshold=float(data["hurdle_threshold"]),
            heldout=tuple(Task.from_json(t) for t in data["heldout"]),
            promote=float(data.get("promote", 0.25)),
            target=tuple(Task.from_json(t) for t in data.get("target", ())),
            report_seeds=int(data["report_seeds"]),
            time_limit=float(data["time_limit"]),
        )


#: Rungs a suite may have (a job id carries its rung in a few bits: see the driver).
MAX_RUNGS = 8


def ladder(
    envs: Iterable[str],
    steps: Iterable[int],
    seeds: Iterable[Iterable[int]] | None = None,
    config: Mapping[str, Any] | None = None,
) -> tuple[tuple[Task, ...], ...]:
    """Rungs training ``envs`` at each of ``steps`` (with ``seeds`` per rung, default
    seed 0, and the trainer settings ``config``)."""
    envs, steps = tuple(envs), tuple(steps)
    per_rung = [tuple(s) for s in seeds] if seeds is not None else [(0,)] * len(steps)
    return tuple(
        tuple(Task(env, n, seeds_, config or {}) for env in envs)
        for n, seeds_ in zip(steps, per_rung, strict=True)
    )


_SMALL_GYM = {"num_envs": 8}
_TINY = {"num_envs": 8, "num_steps": 32, "num_minibatches": 4}
#: The MinAtar paper's network: ppo.evz's stronger baseline on all five games at 10M
#: steps (README, "Learning quality"); the suites whose verdicts are at 2M steps or more
#: select and report on it. The hurdles stay on the MLP: they only ask whether a rule
#: learns at all, which the MLP answers about 15x sooner.
_CONV = {"network": "conv"}
GAMES_3 = ("breakout", "space_invaders", "asterix")

#: The named suites (budgets chosen from measurements; see the README, "Suites").
SUITES: Mapping[str, Suite] = {
    "quick": Suite(
        name="quick",
        description="MLP network, for speed: breakout and space_invaders at 500k steps "
        "after a 200k breakout hurdle; one rung, so its verdict is a 500k-step verdict; "
        "held out: freeway and CartPole-v1",
        hurdle=Task("breakout", 200_000),
        hurdle_threshold=0.3,
        rungs=ladder(("breakout", "space_invaders"), (500_000,)),
        heldout=(Task("freeway", 500_000), Task("CartPole-v1", 100_000, config=_SMALL_GYM)),
        report_seeds=5,
        time_limit=120.0,
    ),
    "standard": Suite(
        name="standard",
        description="conv network: breakout, space_invaders and asterix at 500k steps, "
        "the best quarter promoted to 2M steps with 2 seeds (the target), after a 200k "
        "breakout hurdle on the MLP; held out: freeway and seaquest (conv), CartPole-v1 "
        "and Acrobot-v1 (MLP)",
        hurdle=Task("breakout", 200_000),
        hurdle_threshold=0.3,
        rungs=ladder(GAMES_3, (500_000, 2_000_000), ((0,), (0, 1)), _CONV),
        promote=0.25,
        heldout=(
            Task("freeway", 2_000_000, config=_CONV),
            Task("seaquest", 2_000_000, config=_CONV),
            Task("CartPole-v1", 200_000, config=_SMALL_GYM),
            Task("Acrobot-v1", 200_000, config=_SMALL_GYM),
        ),
        report_seeds=5,
        time_limit=3600.0,
    ),
    "full": Suite(
        name="full",
        description="conv network: all five MinAtar games at 500k, then 2M, then 10M steps "
        "(the target; the best quarter of each rung promoted), after a 200k breakout "
        "hurdle on the MLP; held out: CartPole-v1, Acrobot-v1",
        hurdle=Task("breakout", 200_000),
        hurdle_threshold=0.3,
        rungs=ladder(
            ("asterix", "breakout", "freeway", "seaquest", "space_invaders"),
            (500_000, 2_000_000, 10_000_000),
            ((0,), (0, 1), (0, 1)),
            _CONV,
        ),
        promote=0.25,
        heldout=(
            Task("CartPole-v1", 200_000, config=_SMALL_GYM),
            Task("Acrobot-v1", 200_000, config=_SMALL_GYM),
        ),
        report_seeds=5,
        time_limit=8 * 3600.0,
    ),
    "tiny": Suite(
        name="tiny",
        description="seconds-long smoke test (MLP network): breakout at 20k steps, the best "
        "half promoted to 40k steps, 8 envs; held out: CartPole-v1 at 8k steps",
        hurdle=Task("breakout", 10_240, config=_TINY),
        hurdle_threshold=0.3,
        rungs=(
            (Task("breakout", 20_480, config=_TINY),),
            (Task("breakout", 40_960, config=_TINY),),
        ),
        promote=0.5,
        heldout=(Task("CartPole-v1", 8_192, config=_TINY),),
        report_seeds=3,
        time_limit=60.0,
    ),
}
DEFAULT_SUITE = "quick"


def get_suite(name: str) -> Suite:
    """The built-in suite called ``name``, or the suite file ``name`` (``*.toml``); a
    ValueError listing the built-ins otherwise."""
    if name.endswith(".toml"):
        return load_suite(Path(name))
    if name not in SUITES:
        raise ValueError(
            f"unknown suite {name!r}; choose one of: {', '.join(SUITES)}, or give a suite "
            "file (.toml; see examples/suite.toml)"
        )
    return SUITES[name]


# ----------------------------------------------------------------------------- suite files


class SuiteFileError(ValueError):
    """A suite file that cannot be used; the message names the file, the field and the fix."""


#: A suite file's top-level fields; the ones a table gives per task; what each means is
#: in examples/suite.toml.
_SUITE_FIELDS = (
    "name",
    "description",
    "rungs",
    "promote",
    "target",
    "report_seeds",
    "time_limit",
    "network",
    "tasks",
    "hurdle",
    "heldout",
)
_TASK_FIELDS = {
    "tasks": ("env", "steps", "seeds", "config"),
    "hurdle": ("env", "steps", "seeds", "config", "threshold"),
    "heldout": ("env", "steps", "seeds", "config"),
}


def load_suite(path: Path) -> Suite:
    """The suite a TOML file declares (see ``examples/suite.toml``).

    Raises:
        SuiteFileError: one line naming the file, the field and the fix.
    """
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise SuiteFileError(f"cannot read suite file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise SuiteFileError(f"{path}: not a text file; give a TOML suite file") from None
    except tomllib.TOMLDecodeError as e:
        raise SuiteFileError(f"{path}: not valid TOML ({e}); fix the syntax") from None
    return _SuiteFile(path).suite(data)


class _SuiteFile:
    """Reads one suite file's values, each checked with an error naming its field."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.network: str | None = None  # the file's default network for native games

    def error(self, where: str, problem: str, fix: str) -> SuiteFileError:
        return SuiteFileError(f"{self.path}: {where}: {problem}; {fix}")

    def integer(self, value: Any, where: str, least: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise self.error(
                where,
                f"{value!r} is not an integer >= {least}",
                f"write e.g. {where.split('.')[-1]} = {max(least, 1)}",
            )
        return value

    def number(self, value: Any, where: str, lo: float, hi: float | None = None) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not lo < value or (hi is not None and value > hi):
            span = f"in ({lo:g}, {hi:g}]" if hi is not None else f"above {lo:g}"
            raise self.error(where, f"{value!r} is not a number {span}", f"give a number {span}")
        return float(value)

    def table(self, value: Any, where: str, fields: Iterable[str]) -> Mapping[str, Any]:
        fields = tuple(fields)
        if not isinstance(value, dict):
            raise self.error(
                where, "is not a table", f"write it as [{where}] with fields {', '.join(fields)}"
            )
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise self.error(
                f"{where}.{unknown[0]}" if where else unknown[0],
                "unknown field",
                f"use only {', '.join(fields)}",
            )
        return value

    def suite(self, data: Mapping[str, Any]) -> Suite:
        data = self.table(data, "", _SUITE_FIELDS)
        if "network" in data:
            network = data["network"]
            if not isinstance(network, str) or network.lower() not in NETWORKS:
                raise self.error(
                    "network",
                    f"{network!r} is not a network",
                    f"use one of {', '.join(map(repr, NETWORKS))}",
                )
            self.network = network.lower()
        steps = data.get("rungs")
        if not isinstance(steps, list) or not steps:
            raise self.error(
                "rungs",
                "missing or not a list",
                "give the step budget of each rung, e.g. rungs = [500_000, 2_000_000]",
            )
        steps = [self.integer(n, f"rungs[{i}]") for i, n in enumerate(steps)]
        if len(steps) > MAX_RUNGS or any(a >= b for a, b in zip(steps, steps[1:], strict=False)):
            raise self.error(
                "rungs",
                f"{steps} is not an increasing list of at most {MAX_RUNGS} step budgets",
                "list the budgets from the smallest up",
            )
        tasks = data.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise self.error(
                "tasks",
                "missing or empty",
                'add at least one [[tasks]] table with env = "breakout"',
            )
        per_task = [self.rung_tasks(t, f"tasks[{i}]", steps) for i, t in enumerate(tasks)]
        rungs = tuple(tuple(task[k] for task in per_task) for k in range(len(steps)))
        hurdle, threshold = None, 0.0
        if "hurdle" in data:
            h = self.table(data["hurdle"], "hurdle", _TASK_FIELDS["hurdle"])
            hurdle = self.task(h, "hurdle")
            threshold = self.number(h.get("threshold", 0.0), "hurdle.threshold", -1e9)
        heldout = data.get("heldout", [])
        if not isinstance(heldout, list):
            raise self.error(
                "heldout", "is not a list of tables", "write each as a [[heldout]] table"
            )
        target = tuple(rungs[-1])
        if "target" in data:
            n = self.integer(data["target"], "target")
            target = tuple(Task(t.env, n, t.seeds, t.config) for t in rungs[-1])
        name = data.get("name", self.path.stem)
        if not isinstance(name, str) or not name:
            raise self.error("name", f"{name!r} is not a name", 'write e.g. name = "my_suite"')
        try:
            return Suite(
                name=name,
                description=str(data.get("description", f"suite file {self.path.name}")),
                rungs=rungs,
                hurdle=hurdle,
                hurdle_threshold=threshold,
                heldout=tuple(
                    self.task(
                        self.table(t, f"heldout[{i}]", _TASK_FIELDS["heldout"]), f"heldout[{i}]"
                    )
                    for i, t in enumerate(heldout)
                ),
                promote=self.number(data.get("promote", 0.25), "promote", 0.0, 1.0),
                target=target,
                report_seeds=self.integer(data.get("report_seeds", 5), "report_seeds"),
                time_limit=self.number(data.get("time_limit", 300.0), "time_limit", 0.0),
            )
        except SuiteFileError:  # names the file already
            raise
        except ValueError as e:
            raise SuiteFileError(f"{self.path}: {e}") from None

    def rung_tasks(self, value: Any, where: str, steps: list[int]) -> list[Task]:
        """One ``[[tasks]]`` entry at each rung."""
        t = self.table(value, where, _TASK_FIELDS["tasks"])
        budgets = t.get("steps", steps)
        if not isinstance(budgets, list) or len(budgets) != len(steps):
            raise self.error(
                f"{where}.steps",
                f"needs one budget per rung ({len(steps)})",
                "list one step budget per rung, or leave it out to use rungs",
            )
        budgets = [self.integer(n, f"{where}.steps[{i}]") for i, n in enumerate(budgets)]
        seeds = t.get("seeds", [0])
        if isinstance(seeds, list) and seeds and all(isinstance(s, list) for s in seeds):
            if len(seeds) != len(steps):
                raise self.error(
                    f"{where}.seeds",
                    f"has {len(seeds)} lists of seeds for {len(steps)} rungs",
                    "give one list per rung, or one list for all",
                )
        else:
            seeds = [seeds] * len(steps)
        return [
            self.task({**t, "steps": n, "seeds": s}, where)
            for n, s in zip(budgets, seeds, strict=True)
        ]

    def task(self, t: Mapping[str, Any], where: str) -> Task:
        env = t.get("env")
        if not isinstance(env, str) or not _known_env(env):
            raise self.error(
                f"{where}.env",
                f"{env!r} is not a known env",
                f"use one of {', '.join(GAMES)} or a gymnasium id such as CartPole-v1",
            )
        if "steps" not in t:
            raise self.error(
                f"{where}.steps", "missing", "give its step budget, e.g. steps = 200_000"
            )
        steps = self.integer(t["steps"], f"{where}.steps")
        seeds = t.get("seeds", [0])
        if not isinstance(seeds, list) or not seeds:
            raise self.error(
                f"{where}.seeds", f"{seeds!r} is not a list of seeds", "write e.g. seeds = [0, 1]"
            )
        seeds = [self.integer(s, f"{where}.seeds", 0) for s in seeds]
        config = t.get("config", {})
        if not isinstance(config, dict):
            raise self.error(
                f"{where}.config", "is not a table", "write e.g. config = { num_envs = 8 }"
            )
        default = TrainConfig.network
        if self.network not in (None, default) and env in GAMES and "network" not in config:
            # gymnasium tasks keep the MLP; the default network adds nothing to the spec
            config = {**config, "network": self.network}
        fields = set(TrainConfig.__dataclass_fields__) - {"total_steps"}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise self.error(
                f"{where}.config.{unknown[0]}",
                "is not a trainer setting",
                f"use the fields of TrainConfig, e.g. {', '.join(sorted(fields)[:4])}",
            )
        try:
            return Task(env, steps, tuple(seeds), config)
        except (ValueError, TypeError) as e:
            raise self.error(f"{where}.config", str(e).rstrip("."), "change that setting") from None


def _known_env(env: str) -> bool:
    """Whether ``env`` is a native game or a registered gymnasium id."""
    if env in GAMES:
        return True
    import gymnasium

    return env in gymnasium.envs.registry
