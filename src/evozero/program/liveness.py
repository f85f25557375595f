"""Liveness: which instructions, outputs and carries a program's loss depends on.

The one liveness analysis of the package. :func:`liveness` is the classic backward pass
over one straight-line component; :func:`program_liveness` chains it through the
components the way the trainer runs them. Everything that drops dead code or asks what
is read uses one of the two: :meth:`Program.live` and :meth:`Program.complexity`, the
mutation sites (:mod:`evozero.program.mutate`), symbolic execution
(:mod:`evozero.program.symbolic`), the behavioural fingerprint
(:mod:`evozero.program.canon`) and the compiler (:mod:`evozero.native.compile`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from evozero.program.vocabulary import OUTPUTS

if TYPE_CHECKING:
    from evozero.program.model import Instr, Program

__all__ = ["ComponentLiveness", "ProgramLiveness", "liveness", "program_liveness"]


class ComponentLiveness(NamedTuple):
    """The result of :func:`liveness` on one component."""

    #: Indices of the live instructions, ascending.
    instrs: tuple[int, ...]
    #: The names live at entry: roots never assigned and names the live code reads before
    #: assigning them (inputs, constants, carries' values from step t+1).
    live_in: frozenset[str]


def liveness(instrs: Sequence[Instr], roots: Iterable[str]) -> ComponentLiveness:
    """Backward liveness of straight-line code whose final bindings of ``roots`` are needed.

    An instruction is live when its target is needed at that point; it then satisfies
    that need (a reassignment hides earlier bindings) and needs the names it reads. A
    root that is never assigned (a post output passing its input through) stays live at
    entry.
    """
    needed = set(roots)
    keep: list[int] = []
    for i in range(len(instrs) - 1, -1, -1):
        ins = instrs[i]
        if ins.target in needed:
            keep.append(i)
            needed.discard(ins.target)
            needed.update(ins.names())
    keep.reverse()
    return ComponentLiveness(tuple(keep), frozenset(needed))


class ProgramLiveness(NamedTuple):
    """The result of :func:`program_liveness`; each mapping is keyed by component."""

    #: Indices of the live instructions, ascending.
    instrs: Mapping[str, tuple[int, ...]]
    #: The live outputs: ``loss``; the post outputs the objective reads; scan's outputs
    #: (always) and then its live carries, in the order the fixpoint finds them.
    outputs: Mapping[str, tuple[str, ...]]
    #: The names each component's live code reads at entry (see :class:`ComponentLiveness`).
    live_in: Mapping[str, frozenset[str]]

    @property
    def carries(self) -> tuple[str, ...]:
        """The live carries, in the order the fixpoint finds them."""
        return self.outputs["scan"][len(OUTPUTS["scan"]) :]


def program_liveness(program: Program) -> ProgramLiveness:
    """What ``loss`` depends on, component by component (objective, post, scan).

    The objective's root is ``loss``; post's roots are the post outputs the objective
    reads; scan's are ``adv`` and ``vtarget`` always (the trainer computes them whatever
    post reads) plus every live carry, where a carry is live when scan's live code reads
    its value from step t+1 (a fixpoint: a carry read only by another carry's update is
    live too).
    """
    obj = liveness(program.objective.instrs, OUTPUTS["objective"])
    post_out = tuple(o for o in OUTPUTS["post"] if o in obj.live_in)
    post = liveness(program.post.instrs, post_out)
    scan_out = OUTPUTS["scan"]
    while True:
        scan = liveness(program.scan.instrs, scan_out)
        new = tuple(c for c in program.scan.carry_names if c in scan.live_in and c not in scan_out)
        if not new:
            break
        scan_out += new
    return ProgramLiveness(
        instrs={"scan": scan.instrs, "post": post.instrs, "objective": obj.instrs},
        outputs={"scan": scan_out, "post": post_out, "objective": OUTPUTS["objective"]},
        live_in={"scan": scan.live_in, "post": post.live_in, "objective": obj.live_in},
    )
