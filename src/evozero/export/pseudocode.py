"""The live program, and its pseudocode: the ``.evz`` text of what actually runs.

Every export reads a program through :func:`live_program`: the expression forest of its
live code (:func:`evozero.program.expression_forest` of :meth:`Program.live`), the
statements the ``.evz`` printer prints.
"""

from __future__ import annotations

from dataclasses import replace

from evozero.program import dsl
from evozero.program.model import Program

__all__ = ["live_program", "pseudocode"]


def live_program(program: Program) -> Program:
    """:meth:`Program.live` without the constants no live instruction reads."""
    live = program.live()
    used = {a for comp in live.components for ins in comp.instrs for a in ins.names()}
    return replace(live, constants=tuple(c for c in live.constants if c.name in used))


def pseudocode(program: Program) -> str:
    """The live program (dead code, dead carries and unused constants dropped) as
    ``.evz`` text."""
    return dsl.to_text(live_program(program))
