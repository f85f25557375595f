"""evozero: discover reinforcement-learning update rules by program search.

The public entry points: :func:`load` and :func:`parse` (``.evz`` text to a
:class:`Program`), :func:`train` (one training run of an update program) and
:func:`train_many` (many at once, on host threads or a GPU) with :class:`TrainConfig`
and :class:`TrainResult`, the native games in :mod:`evozero.envs`, and the search from
Python (:mod:`evozero.api`): :func:`evolve` and :func:`open_run` give a :class:`Run`.

Package layout, in the order of the data flow (docs/ARCHITECTURE.md):
:mod:`evozero.program` (ops, model, text, evaluator, canonical forms, mutation) →
:mod:`evozero.native` (compile, interpreter, training, envs) → :mod:`evozero.search`
(evolution, driver, fitness, backends, store, report) → :mod:`evozero.export` →
:mod:`evozero.analysis` (explain, run report) → :mod:`evozero.cli`.

The exports are lazy: ``import evozero.program`` loads neither the compiled extension nor
anything native. ``import evozero`` registers the gymnasium ids ``evozero/<Game>-v0|v1``
(when gymnasium is imported, if it is not yet: ``import evozero`` itself stays cheap, so
that the command line's Ctrl-C handler is in place before anything slow loads).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

# name -> module that defines it; resolved on first access (PEP 562).
_EXPORTS: dict[str, str] = {
    "Program": "evozero.program.model",
    "ProgramError": "evozero.program.errors",
    "load": "evozero.program.dsl",
    "parse": "evozero.program.dsl",
    "TrainConfig": "evozero.native.train",
    "TrainResult": "evozero.native.train",
    "train": "evozero.native.train",
    "train_many": "evozero.native.population",
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
    "train_many",
]

if TYPE_CHECKING:
    __version__: str
    from evozero import envs
    from evozero.api import Run, evolve, open_run
    from evozero.native.population import train_many
    from evozero.native.train import TrainConfig, TrainResult, train
    from evozero.program.dsl import load, parse
    from evozero.program.errors import ProgramError
    from evozero.program.model import Program


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evozero")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata is slow to import: on first use
        value: Any = _version()
    elif name in _EXPORTS:
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
    from evozero.native.gym_ids import register_envs

    register_envs()


class _RegisterWithGymnasium:
    """A meta path finder (importlib.abc's, without importing it) that registers the
    gymnasium ids as soon as gymnasium is imported (it takes a tenth of a second to
    import: ``import evozero`` does not import it)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "gymnasium":
            return None
        try:
            sys.meta_path.remove(self)  # once, and not found by the search below
        except ValueError:  # another thread got here first
            return None
        import importlib.util

        spec = importlib.util.find_spec(name)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_register(module: Any) -> None:
            exec_module(module)
            _register_gym_ids()

        loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


if "gymnasium" in sys.modules:
    _register_gym_ids()
else:
    sys.meta_path.insert(0, _RegisterWithGymnasium())
