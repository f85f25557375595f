"""Validation messages: source locations, :class:`ProgramError` and the shared message texts.

The DSL parser (:mod:`evozero.program.dsl`) and the model's validation
(:mod:`evozero.program.validate`) build their messages from the helpers here, so a
mistake reads the same wherever it is found.
"""

from __future__ import annotations

import difflib
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass

from evozero.program.ops import OPS
from evozero.program.vocabulary import COMPONENTS, MAX_DEPTH, MAX_INSTRUCTIONS

__all__ = [
    "Loc",
    "ProgramError",
    "check_name_syntax",
    "excerpt",
    "msg_arity",
    "msg_op_not_allowed",
    "msg_too_deep",
    "msg_too_many_instructions",
    "msg_unknown_op",
]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Loc:
    """A source position; ``line`` and ``col`` are 1-based."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class ProgramError(ValueError):
    """An invalid program or program text.

    ``str(err)`` is ``file:line:col: message`` when the location is known (the parts
    that are unknown are left out). ``err.message`` is the bare message.
    """

    def __init__(
        self,
        message: str,
        loc: Loc | None = None,
        *,
        file: str | None = None,
        line: int | None = None,
        col: int | None = None,
    ) -> None:
        self.message = message
        self.file = loc.file if loc is not None else file
        self.line = loc.line if loc is not None else line
        self.col = loc.col if loc is not None else col
        super().__init__(str(self))

    @property
    def loc(self) -> Loc | None:
        """The location as a :class:`Loc`, when file, line and column are all known."""
        if self.file is None or self.line is None or self.col is None:
            return None
        return Loc(self.file, self.line, self.col)

    def __str__(self) -> str:
        parts = [str(p) for p in (self.file, self.line, self.col) if p is not None]
        return ":".join([*parts, " " + self.message]) if parts else self.message

    def __reduce__(self) -> tuple[object, ...]:  # picklable across worker processes
        return (_rebuild_error, (self.message, self.file, self.line, self.col))


def _rebuild_error(
    message: str, file: str | None, line: int | None, col: int | None
) -> ProgramError:
    return ProgramError(message, file=file, line=line, col=col)


def _suggest(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""`` if none is close."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def msg_unknown_op(name: str, component: str) -> str:
    """Message for an op name that is not in the table."""
    return f"unknown op {name!r} in {component}{_suggest(name, OPS)}"


def msg_op_not_allowed(name: str, component: str) -> str:
    """Message for an op used outside the components it is allowed in."""
    allowed = " and ".join(c for c in COMPONENTS if c in OPS[name].components)
    return f"op {name!r} is not allowed in {component} (only in {allowed})"


def msg_arity(name: str, got: int) -> str:
    """Message for a call with the wrong number of arguments."""
    op = OPS[name]
    s = "" if op.arity == 1 else "s"
    return f"{name}({', '.join(op.params)}) takes {op.arity} argument{s}, got {got}"


def msg_too_deep(component: str) -> str:
    """Message for an expression tree deeper than :data:`MAX_DEPTH`."""
    return (
        f"expression in {component} nests deeper than {MAX_DEPTH} operators and calls "
        "(the limit); split it into named steps (t = ..., then use t)"
    )


def msg_too_many_instructions(component: str) -> str:
    """Message for a component with more than :data:`MAX_INSTRUCTIONS` instructions."""
    return (
        f"{component} has more than {MAX_INSTRUCTIONS} instructions (the limit per "
        "component; every operator and op call counts); make it shorter"
    )


def excerpt(text: str, limit: int = 40) -> str:
    """``text``, cut to ``limit`` characters with ``...``: messages quote source text, and
    a message stays one readable line however long the text."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_name_syntax(name: str, what: str = "name") -> str | None:
    """Return a message if ``name`` cannot be a user name (constant, carry, target)."""
    if not _NAME_RE.match(name):
        return f"invalid {what} {excerpt(name)!r}"
    if keyword.iskeyword(name) or name in ("True", "False", "None"):
        return f"{name!r} is a Python keyword and cannot be a {what}"
    if name in OPS:
        return f"{name!r} is an op and cannot be a {what}"
    return None
