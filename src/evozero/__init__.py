"""evozero: discover reinforcement-learning update rules by program search.

The public entry points: :func:`load` and :func:`parse` (``.evz`` text to a
:class:`Program`), :func:`train` (one training run of an update program) with
:class:`TrainConfig` and :class:`TrainResult`, the native games in :mod:`evozero.envs`,
and the search from Python (:mod:`evozero.api`): :func:`evolve` and :func:`open_run`
give a :class:`Run`.

Package layout, in the order of the data flow (docs/ARCHITECTURE.md):
:mod:`evozero.program` (ops, model, text, evaluator, canonical forms, mutation) →
:mod:`evozero.native` (compile, interpreter, training, envs) → :mod:`evozero.search`
(evolution, driver, fitness, backends, store, report) → :mod:`evozero.export` →
:mod:`evozero.analysis` (explain, run report) → :mod:`evozero.cli`.

The exports are lazy: ``import evozero.program`` loads neither the compiled extension nor
anything native. ``import evozero`` registers the gymnasium ids ``evozero/<Game>-v0|v1``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("evozero")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# name -> module that defines it; resolved on first access (PEP 562).
_EXPORTS: dict[str, str] = {
    "Program": "evozero.program.model",
    "ProgramError": "evozero.program.errors",
    "load": "evozero.program.dsl",
    "parse": "evozero.program.dsl",
    "TrainConfig": "evozero.native.train",
    "TrainResult": "evozero.native.train",
    "train": "evozero.native.train",
    "Run": "evozero.api",
    "evolve": "evozero.api",
    "open_run": "evozero.api",
}
_SUBMODULES = ("envs", "program", "native", "search", "export", "analysis", "cli")

__all__ = [  # tests/test_architecture.py checks it against _EXPORTS
    "Program",
    "ProgramError",
    "Run",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "envs",
    "evolve",
    "load",
    "open_run",
    "parse",
    "train",
]

if TYPE_CHECKING:
    from evozero import envs
    from evozero.api import Run, evolve, open_run
    from evozero.native.train import TrainConfig, TrainResult, train
    from evozero.program.dsl import load, parse
    from evozero.program.errors import ProgramError
    from evozero.program.model import Program


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"evozero.{name}")
    else:
        raise AttributeError(f"module 'evozero' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})


def _register_gym_ids() -> None:
    try:
        import gymnasium  # noqa: F401  (a dependency; absent only in stripped-down installs)
    except ImportError:
        return
    from evozero.native.gym_ids import register_envs

    register_envs()


_register_gym_ids()
