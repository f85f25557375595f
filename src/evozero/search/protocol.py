"""The worker protocol: what the driver sends a search worker and what comes back.

A job travels as plain JSON (backends send it over pipes or to Ray actors; nothing is
pickled), and :func:`evozero.search.fitness.evaluate_job` is the worker's entry point.
These dataclasses are that JSON, typed: ``to_json`` writes it, ``from_json`` reads it back
and checks every field, so a malformed message fails with a :class:`ProtocolError` that
names the field instead of a ``KeyError`` deep in the driver.

On the wire::

    Job           {"program": text, "tasks": [task...], "hurdle": Hurdle | null}
    Hurdle        {"task": task, "threshold": x, "random": [x...], "ppo": [x...]}
    RandomJob     {"random": task}
    JobResult     {"hurdle": [RunRecord...] | null, "hurdle_score": x | null,
                   "passed": bool, "runs": {task label: [RunRecord...]}}
    RandomResult  {"random": [x...]}
    RunRecord     {"task", "seed", "status", "message", "final_return", "auc", "steps",
                   "seconds", "curve"}

``task`` is :meth:`Task.to_json`; ``random`` and ``ppo`` are the normalizers per seed.
:class:`CandidateResult` is the driver's verdict on a candidate (what the run store
records); it does not travel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from evozero.search.tasks import Task
from evozero.status import Status


class ProtocolError(ValueError):
    """A message that does not follow the worker protocol (the message names the field)."""


class Phase(str, Enum):
    """Why a training run was made: the hurdle, the search suite, or the final report."""

    HURDLE = "hurdle"
    SEARCH = "search"
    REPORT = "report"

    def __str__(self) -> str:
        return self.value


def finite_or_none(x: float | None) -> float | None:
    """``x`` as a float, or None when it is missing or not finite (JSON and SQLite have no
    NaN)."""
    return None if x is None or not math.isfinite(x) else float(x)


# ----------------------------------------------------------------------------- reading JSON


def _field(data: Any, name: str, kinds: type | tuple[type, ...], *, optional: bool = False) -> Any:
    """``data[name]``, checked to be of ``kinds`` (None allowed when ``optional``)."""
    if not isinstance(data, Mapping):
        raise ProtocolError(f"expected a JSON object, got {type(data).__name__}")
    if name not in data:
        raise ProtocolError(f"missing field {name!r}")
    value = data[name]
    if value is None and optional:
        return None
    # bool is an int to Python, not to JSON
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _tuple(kinds)):
        raise ProtocolError(f"field {name!r}: expected {_names(kinds)}, got {value!r:.80}")
    return value


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _names(kinds: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _tuple(kinds))


def _number(data: Any, name: str, *, optional: bool = False) -> float | None:
    value = _field(data, name, (int, float), optional=optional)
    return None if value is None else float(value)


def _numbers(data: Any, name: str) -> tuple[float, ...]:
    values = _field(data, name, list)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ProtocolError(f"field {name!r}: expected a list of numbers")
    return tuple(float(v) for v in values)


def _task(data: Any, name: str) -> Task:
    return _to_task(_field(data, name, dict), name)


def _to_task(spec: Any, name: str) -> Task:
    try:
        return Task.from_json(spec)
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(f"field {name!r}: not a task ({e})") from None


def _status(data: Any) -> Status:
    value = _field(data, "status", str)
    try:
        return Status(value)
    except ValueError:
        raise ProtocolError(f"field 'status': unknown status {value!r}") from None


# ----------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Hurdle:
    """The cheap task a candidate runs first, and the normalized score it must reach.

    ``random`` and ``ppo`` are the task's normalizers, one per seed.
    """

    task: Task
    threshold: float
    random: tuple[float, ...]
    ppo: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.to_json(),
            "threshold": self.threshold,
            "random": list(self.random),
            "ppo": list(self.ppo),
        }

    @classmethod
    def from_json(cls, data: Any) -> Hurdle:
        return cls(
            _task(data, "task"),
            _number(data, "threshold"),  # type: ignore[arg-type]
            _numbers(data, "random"),
            _numbers(data, "ppo"),
        )


@dataclass(frozen=True)
class Job:
    """Train ``program`` (its text) on the hurdle, then, if it passes, on each task."""

    program: str
    tasks: tuple[Task, ...]
    hurdle: Hurdle | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "tasks": [t.to_json() for t in self.tasks],
            "hurdle": self.hurdle.to_json() if self.hurdle else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> Job:
        specs = _field(data, "tasks", list)
        hurdle = _field(data, "hurdle", dict, optional=True)
        return cls(
            _field(data, "program", str),
            tuple(_to_task(s, "tasks") for s in specs),
            Hurdle.from_json(hurdle) if hurdle is not None else None,
        )


@dataclass(frozen=True)
class RandomJob:
    """Measure the uniform-random policy's return on each seed of ``task``."""

    task: Task

    def to_json(self) -> dict[str, Any]:
        return {"random": self.task.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> RandomJob:
        return cls(_task(data, "random"))


def parse_job(data: Any) -> Job | RandomJob:
    """The job a worker received (a :class:`RandomJob` has the single key ``random``)."""
    if isinstance(data, Mapping) and "random" in data:
        return RandomJob.from_json(data)
    return Job.from_json(data)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RunRecord:
    """One training run of a program on one seed of a task.

    Attributes:
        task: the task's label (``breakout@500k``).
        seed: the training seed.
        status: how the run ended (one of :data:`evozero.status.TRAINING`).
        message: why it did not end ``ok`` ("" otherwise).
        final_return: mean return at the end of training; None when not finite.
        auc: area under the learning curve (None when the run never started).
        steps: env steps taken.
        seconds: wall time.
        curve: the binned learning curve (None for bins where no episode ended).
    """

    task: str
    seed: int
    status: Status
    message: str
    final_return: float | None
    auc: float | None
    steps: int
    seconds: float
    curve: tuple[float | None, ...] = field(default=())

    @classmethod
    def failed(cls, task: Task, seed: int, message: str, seconds: float) -> RunRecord:
        """A run that produced nothing because its job failed (``message`` says why)."""
        return cls(task.label, seed, Status.ERROR, message, None, None, 0, seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "seed": self.seed,
            "status": self.status.value,
            "message": self.message,
            "final_return": self.final_return,
            "auc": self.auc,
            "steps": self.steps,
            "seconds": self.seconds,
            "curve": list(self.curve),
        }

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        curve = _field(data, "curve", list)
        if not all(
            c is None or (isinstance(c, (int, float)) and not isinstance(c, bool)) for c in curve
        ):
            raise ProtocolError("field 'curve': expected a list of numbers or nulls")
        return cls(
            task=_field(data, "task", str),
            seed=_field(data, "seed", int),
            status=_status(data),
            message=_field(data, "message", str),
            final_return=_number(data, "final_return", optional=True),
            auc=_number(data, "auc", optional=True),
            steps=_field(data, "steps", int),
            seconds=_number(data, "seconds"),  # type: ignore[arg-type]
            curve=tuple(None if c is None else float(c) for c in curve),
        )


def _records(data: Any, name: str) -> tuple[RunRecord, ...]:
    return tuple(RunRecord.from_json(r) for r in _field(data, name, list))


@dataclass(frozen=True)
class JobResult:
    """What a worker answers a :class:`Job`.

    Attributes:
        hurdle: the hurdle's runs (None without a hurdle).
        hurdle_score: the normalized hurdle score (None without a hurdle or when a hurdle
            run failed).
        passed: whether the candidate went on to the tasks.
        runs: per task label, its runs; training stops at the first run not ``ok``.
    """

    hurdle: tuple[RunRecord, ...] | None
    hurdle_score: float | None
    passed: bool
    runs: Mapping[str, tuple[RunRecord, ...]]

    def records(self) -> list[tuple[Phase, RunRecord]]:
        """Every run with its phase: the hurdle's first, then the tasks' in order."""
        return [
            *((Phase.HURDLE, r) for r in self.hurdle or ()),
            *((Phase.SEARCH, r) for rs in self.runs.values() for r in rs),
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "hurdle": None if self.hurdle is None else [r.to_json() for r in self.hurdle],
            "hurdle_score": self.hurdle_score,
            "passed": self.passed,
            "runs": {k: [r.to_json() for r in rs] for k, rs in self.runs.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> JobResult:
        hurdle = _field(data, "hurdle", list, optional=True)
        runs = _field(data, "runs", dict)
        return cls(
            hurdle=None if hurdle is None else _records(data, "hurdle"),
            hurdle_score=_number(data, "hurdle_score", optional=True),
            passed=_field(data, "passed", bool),
            runs={str(k): _records(runs, k) for k in runs},
        )


@dataclass(frozen=True)
class RandomResult:
    """What a worker answers a :class:`RandomJob`: the mean random return per seed."""

    returns: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {"random": list(self.returns)}

    @classmethod
    def from_json(cls, data: Any) -> RandomResult:
        return cls(_numbers(data, "random"))


@dataclass(frozen=True)
class CandidateResult:
    """The driver's verdict on a trained candidate: what the run store records for it.

    Attributes:
        status: ``ok`` (passed the full suite), ``culled`` (below the hurdle),
            ``diverged`` or ``error`` (a run or the worker failed).
        fitness: mean normalized score over the suite's tasks (``ok``), the hurdle score
            (``culled``), or None (failed); finite or None.
        hurdle_score: the normalized hurdle score, if one was measured.
        scores: per task label, the normalized score (``ok`` only).
        message: why the candidate did not pass ("" otherwise).
        runs: its training runs with their phase.
        seconds: wall time of its job.
    """

    status: Status
    fitness: float | None
    hurdle_score: float | None = None
    scores: Mapping[str, float | None] = field(default_factory=dict)
    message: str = ""
    runs: Sequence[tuple[Phase, RunRecord]] = ()
    seconds: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fitness", finite_or_none(self.fitness))
        object.__setattr__(self, "hurdle_score", finite_or_none(self.hurdle_score))
