"""Validation of a program's constants and components against the vocabulary and op table.

:class:`~evozero.program.model.Program` calls these on construction, after it has
checked that its parts are :class:`~evozero.program.model.Const`,
:class:`~evozero.program.model.Component`, :class:`~evozero.program.model.Carry` and
:class:`~evozero.program.model.Instr` objects. Each check raises
:class:`~evozero.program.errors.ProgramError` at the offending part's source location;
the messages are shared with the DSL parser (:mod:`evozero.program.errors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from evozero.program.errors import (
    ProgramError,
    _suggest,
    check_name_syntax,
    msg_arity,
    msg_op_not_allowed,
    msg_too_many_instructions,
    msg_unknown_op,
)
from evozero.program.normal_form import is_temp
from evozero.program.ops import OPS
from evozero.program.vocabulary import (
    CARRY_INITS,
    COMPONENTS,
    INPUTS,
    MAX_CARRIES,
    MAX_INSTRUCTIONS,
    OUTPUTS,
)

if TYPE_CHECKING:
    from evozero.program.model import Component, Const

__all__ = ["validate_component", "validate_constants"]


def validate_constants(constants: Sequence[Const]) -> None:
    """Raise :class:`ProgramError` unless the constants have distinct, free user names.

    A constant may not be called like a temporary, an input or an output of any
    component.
    """
    seen: set[str] = set()
    all_inputs = {n for c in COMPONENTS for n in INPUTS[c]}
    all_outputs = {n for c in COMPONENTS for n in OUTPUTS[c]}
    for c in constants:
        msg = check_name_syntax(c.name, "constant name")
        if msg is None and is_temp(c.name):
            msg = f"{c.name!r} is reserved for anonymous temporaries"
        if msg is None and c.name in seen:
            msg = f"duplicate constant {c.name!r}"
        if msg is None and c.name in all_inputs:
            owners = " and ".join(k for k in COMPONENTS if c.name in INPUTS[k])
            msg = f"constant {c.name!r} has the name of an input (of {owners})"
        if msg is None and c.name in all_outputs:
            msg = f"constant {c.name!r} has the name of an output"
        if msg is not None:
            raise ProgramError(msg, c.loc)
        seen.add(c.name)


def validate_component(comp: Component, kind: str, constants: frozenset[str]) -> None:
    """Raise :class:`ProgramError` unless ``comp`` is a valid component ``kind``.

    Checks its kind, its size (at most :data:`MAX_INSTRUCTIONS` instructions; the nesting
    depth, :data:`~evozero.program.vocabulary.MAX_DEPTH`, is checked by the normal form,
    which builds the expression trees), its carries (scan only, at most
    :data:`MAX_CARRIES`, free names, initial value in :data:`CARRY_INITS`), every
    instruction (a known op allowed in ``kind`` with its arity; every name read is in
    scope; targets are user names or temporaries, never constants) and that each output
    of ``kind`` is assigned (post passes an unassigned output through, so its outputs are
    always in scope).
    """
    if comp.kind != kind:
        raise ProgramError(f"component of kind {comp.kind!r} given as {kind}", comp.loc)
    if len(comp.instrs) > MAX_INSTRUCTIONS:
        raise ProgramError(
            msg_too_many_instructions(kind), comp.instrs[MAX_INSTRUCTIONS].loc or comp.loc
        )
    inputs = INPUTS[kind]
    # Carries.
    if comp.carries and kind != "scan":
        raise ProgramError(f"carries are only allowed in scan, not in {kind}", comp.carries[0].loc)
    seen: set[str] = set()
    for i, c in enumerate(comp.carries):
        msg = check_name_syntax(c.name, "carry name")
        if msg is None and is_temp(c.name):
            msg = f"{c.name!r} is reserved for anonymous temporaries"
        if msg is None and i >= MAX_CARRIES:
            msg = f"scan declares {len(comp.carries)} carries; at most {MAX_CARRIES} are allowed"
        if msg is None and c.name in seen:
            msg = f"duplicate carry {c.name!r}"
        if msg is None and c.name in inputs:
            msg = f"carry {c.name!r} has the name of an input of scan"
        if msg is None and c.name in OUTPUTS[kind]:
            msg = f"carry {c.name!r} has the name of an output of scan"
        if msg is None and c.name in constants:
            msg = f"carry {c.name!r} has the name of a constant"
        if msg is None and c.init not in CARRY_INITS:
            msg = f"carry {c.name!r} has initial value {c.init!r}; it must be 0 or v_next"
        if msg is not None:
            raise ProgramError(msg, c.loc)
        seen.add(c.name)
    # Instructions.
    targets_later: dict[str, int] = {}
    for i, ins in enumerate(comp.instrs):
        targets_later.setdefault(ins.target, i)
    scope: set[str] = set(inputs) | set(constants) | set(comp.carry_names)
    for i, ins in enumerate(comp.instrs):
        op = OPS.get(ins.op)
        if op is None:
            raise ProgramError(msg_unknown_op(ins.op, kind), ins.loc)
        if not op.allowed_in(kind):
            raise ProgramError(msg_op_not_allowed(ins.op, kind), ins.loc)
        if len(ins.args) != op.arity:
            raise ProgramError(msg_arity(ins.op, len(ins.args)), ins.loc)
        for j, a in enumerate(ins.args):
            if isinstance(a, str) and a not in scope:
                raise ProgramError(
                    _msg_unknown_name(a, kind, scope, targets_later, i), ins.arg_loc(j)
                )
        t = ins.target
        if not is_temp(t):
            msg = check_name_syntax(t, "name")
            if msg is None and t in constants:
                msg = f"cannot assign to constant {t!r}"
            if msg is not None:
                raise ProgramError(msg, ins.loc)
        scope.add(t)
    for out in OUTPUTS[kind]:
        if out not in scope:
            raise ProgramError(f"{kind} never assigns its output {out!r}", comp.loc)


def _msg_unknown_name(
    name: str, kind: str, scope: set[str], first_target: dict[str, int], at: int
) -> str:
    if first_target.get(name, -1) >= at:
        return f"{name!r} is used before it is assigned in {kind}"
    owners = [c for c in COMPONENTS if c != kind and name in INPUTS[c]]
    if owners:
        return f"{name!r} is not an input of {kind} (it is an input of {' and '.join(owners)})"
    visible = {n for n in scope if not is_temp(n)}
    return f"unknown name {name!r} in {kind}{_suggest(name, visible)}"
