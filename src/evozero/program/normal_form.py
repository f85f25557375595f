"""The normal form of a component: anonymous temporaries, inlining and expression trees.

Names of the form ``_<digits>`` (``_1``, ``_2`` ...) are anonymous temporaries: the DSL
parser flattens nested expressions into them and the printer inlines them back. They have
no identity of their own: on construction every component of a
:class:`~evozero.program.model.Program` is normalized by :func:`normalize_instrs`, which
(1) inlines-then-reflattens every temporary that is used exactly once and can be moved to
its use without crossing a reassignment of a name it reads, placing it in expression
evaluation order (post-order, arguments left to right), and (2) renumbers all
temporaries ``_1, _2, ...`` in order of definition. Normalization never changes what a
program computes; it is why two programs that print the same are equal. It also enforces
:data:`~evozero.program.vocabulary.MAX_DEPTH`, the nesting depth of the expression trees
(everything that walks them recurses, so no tree deeper than that is ever built).

:func:`expression_forest` is the other direction: the component as statements whose
right-hand sides are expression trees (:class:`Call`), exactly what the printer prints.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evozero.program.errors import ProgramError, msg_too_deep
from evozero.program.vocabulary import MAX_DEPTH

if TYPE_CHECKING:
    from evozero.program.model import Arg, Component, Instr

__all__ = ["Call", "Node", "expression_forest", "inline_plan", "is_temp", "normalize_instrs"]


def is_temp(name: str) -> bool:
    """Whether ``name`` is an anonymous temporary (``_<digits>``)."""
    return name[:1] == "_" and name[1:].isascii() and name[1:].isdigit()


def _ssa_temps(instrs: Sequence[Instr]) -> list[Instr]:
    """Give every temporary definition a unique name (``_<index+1>``), rebinding uses."""
    env: dict[str, str] = {}
    out: list[Instr] = []
    for i, ins in enumerate(instrs):
        args = tuple(env.get(a, a) if isinstance(a, str) else a for a in ins.args)
        target = ins.target
        if is_temp(target):
            env[target] = target = f"_{i + 1}"
        out.append(_with(ins, target, args))
    return out


def _with(ins: Instr, target: str, args: tuple[Arg, ...]) -> Instr:
    """``ins`` with a new target/args (``ins`` itself when unchanged; args are valid)."""
    if target == ins.target and args == ins.args:
        return ins
    # Skips Instr.__post_init__ (the args are already normalized): this is a hot path.
    new = object.__new__(type(ins))
    for f, v in (
        ("target", target),
        ("op", ins.op),
        ("args", args),
        ("loc", ins.loc),
        ("arg_locs", ins.arg_locs),
    ):
        object.__setattr__(new, f, v)
    return new


def inline_plan(instrs: Sequence[Instr]) -> list[int | None]:
    """For each instruction, the index of the instruction it is inlined into, or None.

    A temporary is inlined into its use when it is used exactly once (by a later
    instruction) and no name it reads is reassigned between its definition and the
    statement its use ends up in. Requires uniquely named temporaries (SSA).
    """
    n = len(instrs)
    use_count: dict[str, int] = {}
    use_at: dict[str, int] = {}
    assigned: dict[str, list[int]] = {}
    for i, ins in enumerate(instrs):
        for a in ins.args:
            if isinstance(a, str) and is_temp(a):
                use_count[a] = use_count.get(a, 0) + 1
                use_at[a] = i
        if not is_temp(ins.target):
            assigned.setdefault(ins.target, []).append(i)
    parent: list[int | None] = [None] * n
    root = list(range(n))
    for i in range(n - 1, -1, -1):
        ins = instrs[i]
        t = ins.target
        if not is_temp(t) or use_count.get(t, 0) != 1:
            continue
        j = use_at[t]
        r = root[j]
        safe = True
        for a in ins.args:
            if isinstance(a, str) and not is_temp(a) and a in assigned:
                idx = assigned[a]
                k = bisect.bisect_right(idx, i)
                if k < len(idx) and idx[k] < r:
                    safe = False
                    break
        if safe:
            parent[i] = j
            root[i] = r
    return parent


def _check_depth(instrs: Sequence[Instr], parent: Sequence[int | None], component: str) -> None:
    """Raise :class:`ProgramError` if a tree of ``parent`` is deeper than :data:`MAX_DEPTH`.

    Iterative (a parent comes after its children). The error is at the leftmost node one
    level too deep, where the parser's check on a single statement points too.
    """
    level = [1] * len(instrs)
    for i in range(len(instrs) - 1, -1, -1):
        p = parent[i]
        if p is not None:
            level[i] = level[p] + 1
    if MAX_DEPTH + 1 in level:
        raise ProgramError(msg_too_deep(component), instrs[level.index(MAX_DEPTH + 1)].loc)


def normalize_instrs(instrs: Sequence[Instr], component: str = "a component") -> tuple[Instr, ...]:
    """The normal form of a (valid) component body; see the module docstring.

    Raises :class:`ProgramError` (naming ``component``) if an expression tree would nest
    deeper than :data:`MAX_DEPTH`.
    """
    ssa = _ssa_temps(instrs)
    parent = inline_plan(ssa)
    _check_depth(ssa, parent, component)
    def_at = {ins.target: i for i, ins in enumerate(ssa) if is_temp(ins.target)}
    order: list[int] = []

    def emit(i: int) -> None:
        for a in ssa[i].args:
            if isinstance(a, str) and is_temp(a):
                k = def_at[a]
                if parent[k] == i:
                    emit(k)
        order.append(i)

    for i in range(len(ssa)):
        if parent[i] is None:
            emit(i)
    rename: dict[str, str] = {}
    out: list[Instr] = []
    for i in order:
        ins = ssa[i]
        args = tuple(rename.get(a, a) if isinstance(a, str) else a for a in ins.args)
        target = ins.target
        if is_temp(target):
            rename[target] = target = f"_{len(rename) + 1}"
        out.append(_with(ins, target, args))
    return tuple(out)


# ----------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Call:
    """An expression node: ``op`` applied to argument nodes."""

    op: str
    args: tuple[Node, ...]


#: An expression tree: a name, a float32 literal, or a :class:`Call`.
Node = str | float | Call


def expression_forest(comp: Component) -> list[tuple[str, Node]]:
    """The component as statements ``(target, expression tree)``, temporaries inlined.

    This is exactly what the DSL printer prints, one statement per line; no tree is deeper
    than :data:`MAX_DEPTH` (the normal form checks it, so the recursion here and in the
    printers is bounded). Temporaries
    that cannot be inlined (used several times or never, or unsafe to move) appear as
    statements with their ``_k`` name.
    """
    instrs = comp.instrs
    parent = inline_plan(instrs)
    def_at = {ins.target: i for i, ins in enumerate(instrs) if is_temp(ins.target)}

    def node(i: int) -> Call:
        ins = instrs[i]
        args: list[Node] = []
        for a in ins.args:
            if isinstance(a, str) and is_temp(a) and parent[def_at[a]] == i:
                args.append(node(def_at[a]))
            else:
                args.append(a)
        return Call(ins.op, tuple(args))

    return [(ins.target, node(i)) for i, ins in enumerate(instrs) if parent[i] is None]
