"""The command line's numbers and paths: one parser per kind of value.

Every numeric and path flag of every command declares its kind here, as the ``parser`` of
its ``typer.Option``/``typer.Argument``: :class:`Integer` and :class:`Seconds` check the
number and its range, :class:`PathArg` and :class:`KeywordOrFile` check the path before
any work starts (not when the file is finally written, after a long run). A bad value
raises :class:`typer.BadParameter` with what is wrong and what to give instead;
:class:`evozero.cli.app.Group` prints it as one line that starts with the flag's name.

Integers that reach the C++ core or SQLite are bounded by :data:`INT64_MAX` (or less: the
domain's own limits, e.g. :data:`evozero.search.config.LIMITS`) so that none fails in a
pybind11 or sqlite cast.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import typer

#: The largest integer the C++ core (int64) and SQLite store; no integer flag exceeds it.
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Integer:
    """An integer flag in ``[lo, hi]``."""

    lo: int = 1
    hi: int = INT64_MAX
    kind: ClassVar[str] = "integer"

    def __call__(self, value: str | int) -> int:
        if isinstance(value, int):  # the flag's default, as declared
            return value
        try:
            n = int(value.strip())
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a whole number; {self.expected}") from None
        if not self.lo <= n <= self.hi:
            raise typer.BadParameter(f"{n} is out of range; {self.expected}")
        return n

    @property
    def expected(self) -> str:
        """What to give instead, as a phrase."""
        return f"give a whole number from {self.lo:,} to {self.hi:,}"


class _Real(ABC):
    """A flag taking a finite real number that ``inside`` accepts (subclasses say which)."""

    def __call__(self, value: str | float) -> float:
        if isinstance(value, (int, float)):  # the flag's default
            return float(value)
        try:
            x = float(value.strip())
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a number; {self.expected}") from None
        if not (math.isfinite(x) and self.inside(x)):  # NaN fails too
            raise typer.BadParameter(f"{value.strip()} is out of range; {self.expected}")
        return x

    @abstractmethod
    def inside(self, x: float) -> bool:
        """Whether ``x`` is in the flag's range."""

    @property
    @abstractmethod
    def expected(self) -> str:
        """What to give instead, as a phrase."""


@dataclass(frozen=True)
class Seconds(_Real):
    """A duration flag: a finite number of seconds in ``[0, hi]``."""

    hi: float = 86_400.0  # a day: longer is a typo (and threading caps its timeouts)
    kind: ClassVar[str] = "seconds"

    def inside(self, x: float) -> bool:
        return 0 <= x <= self.hi

    @property
    def expected(self) -> str:
        return f"give a number of seconds from 0 to {self.hi:,.0f}"


@dataclass(frozen=True)
class Positive(_Real):
    """A step-size flag: a finite number in ``(0, hi]``."""

    hi: float
    kind: ClassVar[str] = "number"

    def inside(self, x: float) -> bool:
        return 0 < x <= self.hi

    @property
    def expected(self) -> str:
        return f"give a number above 0 and at most {self.hi:g}"


Expects = Literal["file", "file or directory", "directory", "new file", "new directory"]


@dataclass(frozen=True)
class PathArg:
    """A path flag, checked for what the command will do with it.

    ``expects``: ``file`` (read), ``file or directory`` (read), ``directory`` (an existing
    one), ``new file`` (written: its directory exists and is writable) or ``new directory``
    (created if needed: its nearest existing ancestor is a writable directory). ``hint``
    says what to give, for the error message.
    """

    expects: Expects
    hint: str
    kind: ClassVar[str] = "path"

    def __call__(self, value: str | Path) -> Path:
        if isinstance(value, Path):  # the flag's default
            return value
        if not value:
            raise typer.BadParameter(f"the path is empty; give {self.hint}")
        path = Path(value)
        problem = _CHECKS[self.expects](path)
        if problem:
            raise typer.BadParameter(f"{problem}; give {self.hint}")
        return path


@dataclass(frozen=True)
class KeywordOrFile:
    """A flag that takes one of some keywords or the path of a file to read."""

    keywords: Sequence[str]
    kind: ClassVar[str] = "path"
    expects: ClassVar[Expects] = "file"

    def __call__(self, value: str) -> str:
        if value in self.keywords:
            return value
        choices = f"one of {', '.join(self.keywords)} or a .evz file"
        if not value:
            raise typer.BadParameter(f"the value is empty; give {choices}")
        problem = _file(Path(value))
        if problem:
            raise typer.BadParameter(f"{problem}; give {choices}")
        return value


# --------------------------------------------------------------------------- the checks
# Each returns what is wrong with the path ("" if nothing), naming the path.


def _lookup(path: Path) -> os.stat_result | OSError:
    try:
        return path.stat()
    except OSError as e:
        return e


def _why(path: Path, error: OSError) -> str:
    """Why ``path`` cannot be used, in words."""
    if isinstance(error, FileNotFoundError):
        return f"{path} does not exist"
    if isinstance(error, NotADirectoryError):  # FILE/sub
        parent = next((p for p in path.parents if p.is_file()), path.parent)
        return f"{path} does not exist: {parent} is a file, not a directory"
    return f"cannot use {path}: {error.strerror or error}"


def _file(path: Path) -> str:
    st = _lookup(path)
    if isinstance(st, OSError):
        return _why(path, st)
    if stat.S_ISDIR(st.st_mode):
        return f"{path} is a directory, not a file"
    if not os.access(path, os.R_OK):
        return f"cannot read {path}: permission denied"
    return ""


def _file_or_directory(path: Path) -> str:
    st = _lookup(path)
    return _why(path, st) if isinstance(st, OSError) else ""


def _directory(path: Path) -> str:
    st = _lookup(path)
    if isinstance(st, FileNotFoundError):
        return f"{path} is not a directory (it does not exist)"
    if isinstance(st, OSError):
        return _why(path, st)
    return "" if stat.S_ISDIR(st.st_mode) else f"{path} is not a directory"


def _writable_directory(directory: Path) -> str:
    """Whether a file can be created in ``directory`` (tried: root ignores the modes)."""
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".evozero-probe-"):
            return ""
    except OSError as e:
        return f"cannot write in {directory}: {e.strerror or e}"


def _new_file(path: Path) -> str:
    if path.is_dir():
        return f"{path} is a directory, not a file"
    parent = path.parent
    st = _lookup(parent)
    if isinstance(st, FileNotFoundError):
        return f"directory {parent} does not exist"
    if isinstance(st, OSError):
        return _why(parent, st)
    if not stat.S_ISDIR(st.st_mode):
        return f"{parent} is a file, not a directory"
    return _writable_directory(parent)


def _new_directory(path: Path) -> str:
    # The nearest existing ancestor decides: the rest is created (mkdir -p).
    for existing in (path, *path.parents):
        st = _lookup(existing)
        if not isinstance(st, FileNotFoundError):
            break
    if isinstance(st, OSError):
        return _why(existing, st)
    if not stat.S_ISDIR(st.st_mode):
        return f"{existing} is a file, not a directory"
    return _writable_directory(existing)


_CHECKS = {
    "file": _file,
    "file or directory": _file_or_directory,
    "directory": _directory,
    "new file": _new_file,
    "new directory": _new_directory,
}


# --------------------------------------------------------------------------- shared flags
# Parameters several commands take, declared once.


def program_or_run() -> typer.models.ArgumentInfo:
    """The PROGRAM argument of ``show``, ``export`` and ``explain``: a .evz file or a run."""
    return typer.Argument(
        ...,
        parser=PathArg("file or directory", "an update program (.evz) or a run directory"),
        metavar="PROGRAM",
        help="An update program (.evz) or a run directory.",
    )


def top_option(default: int, help: str) -> typer.models.OptionInfo:
    """``--top K``: how many of a run's best rules."""
    return typer.Option(default, "--top", parser=Integer(1), metavar="K", help=help)


def tensorboard_option(help: str) -> typer.models.OptionInfo:
    """``--tensorboard DIR`` of ``eval`` and ``evolve``."""
    return typer.Option(
        None,
        "--tensorboard",
        parser=PathArg("new directory", "a directory for TensorBoard logs"),
        metavar="DIR",
        help=help,
    )


def network_option(default: str | None, help: str) -> typer.models.OptionInfo:
    """``--network NET`` of ``eval`` and ``refine`` (checked by ``app.with_network``)."""
    return typer.Option(default, "--network", metavar="NET", help=help)
