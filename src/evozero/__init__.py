"""evozero: discover reinforcement-learning update rules by program search."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evozero")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from evozero import envs as envs  # noqa: E402  (registers the gymnasium ids)

__all__ = ["__version__", "envs"]
