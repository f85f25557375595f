"""evozero: discover reinforcement-learning update rules by program search.

The public entry points: :func:`train` (one training run of an update program),
:class:`TrainConfig`, :class:`TrainResult`, :class:`Program` with
:func:`evozero.dsl.load`/:func:`evozero.dsl.parse` for ``.evz`` text, and the
native games in :mod:`evozero.envs`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evozero")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from evozero import envs as envs  # noqa: E402  (registers the gymnasium ids)
from evozero.dsl import load, parse  # noqa: E402
from evozero.program import Program, ProgramError  # noqa: E402
from evozero.train import TrainConfig, TrainResult, train  # noqa: E402

__all__ = [
    "Program",
    "ProgramError",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "envs",
    "load",
    "parse",
    "train",
]
