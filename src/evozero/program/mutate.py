"""Mutation operators for regularized evolution (AutoML-Zero style).

:func:`mutate` returns a valid child of a program together with the :class:`Mutation`
applied. Every child constructs (it is a validated, normalized :class:`Program`) and
differs from its parent in its *live* code: what :meth:`Program.live` keeps, plus the
values of the constants that live code reads. A mutation that only touches dead code is
retried (up to ``max_tries``); after that :func:`mutate` falls back to
``randomize_component``.

The kinds (:data:`MUTATIONS`), one function each (see :data:`_MUTATORS`):

* ``insert``: a random instruction that reassigns a name read later (or an output), or a
  new value that a later instruction is rewired to read;
* ``remove``: drop one instruction; later reads of its target read one of its arguments
  instead when they must;
* ``change_op``: another op of the same arity (or not: arguments are dropped or added);
* ``rewire``: one argument becomes another name in scope or a literal;
* ``perturb_constant``: a named constant or a literal is scaled by ``exp(N(0, 0.2))`` or
  shifted by a little noise;
* ``replace_literal``: a named constant or a literal gets a fresh value;
* ``rebind_output``: an output (or carry) is bound to another name or to a subexpression
  of its current value;
* ``randomize_component``: a component is replaced by a fresh random one.

Sites are chosen among live instructions, live constants and live outputs (post only
when the objective reads its outputs): a change to dead code cannot change live code.
Temporaries that a mutation leaves unread are dropped (nothing could ever read them
again; they would only fill the ``max_instrs`` budget). Everything is driven by the
``rng`` passed in, and nothing depends on set iteration order, so a seed fixes the child.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from evozero.program.errors import ProgramError
from evozero.program.liveness import program_liveness
from evozero.program.model import Arg, Carry, Component, Instr, Program
from evozero.program.normal_form import is_temp
from evozero.program.ops import OPS, ops_for
from evozero.program.printer import format_literal, instruction_text, render_expr
from evozero.program.random_programs import CARRY_POOL as _CARRY_POOL
from evozero.program.random_programs import NAME_POOL as _NAME_POOL
from evozero.program.random_programs import random_instr, random_literal
from evozero.program.vocabulary import CARRY_INITS, COMPONENTS, INPUTS, MAX_CARRIES, OUTPUTS

__all__ = ["MAX_INSTRS", "MUTATIONS", "Mutation", "mutate"]

#: The mutation kinds, in the order of the dispatcher table.
MUTATIONS: tuple[str, ...] = (
    "insert",
    "remove",
    "change_op",
    "rewire",
    "perturb_constant",
    "replace_literal",
    "rebind_output",
    "randomize_component",
)

#: Default cap on instructions per component: insert never grows a component past it.
MAX_INSTRS: int = 24

#: ``randomize_component`` draws at most this many instructions (and at most max_instrs).
RANDOM_INSTRS: int = 10

_P_LITERAL = 0.15  # chance that a new argument is a literal rather than a name
_FALLBACK_TRIES = 200  # randomize_component attempts once max_tries are spent
_NICE = (0.0, 0.5, 0.99, 1.0, 2.0, -1.0, 0.1, 0.01, 0.95, 0.2, 1e-8)
_F32_MAX = float(np.finfo(np.float32).max)
_RESERVED = frozenset(n for k in COMPONENTS for n in INPUTS[k] + OUTPUTS[k]) | frozenset(OPS)


@dataclass(frozen=True)
class Mutation:
    """What :func:`mutate` did: its kind, the component it touched and a description."""

    kind: str
    component: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}"


# ----------------------------------------------------------------------------- helpers


_T = TypeVar("_T")


def _pick(rng: np.random.Generator, seq: Sequence[_T]) -> _T:
    """A uniformly random element of a non-empty sequence."""
    return seq[int(rng.integers(len(seq)))]


def _with_args(ins: Instr, args: Sequence[Arg]) -> Instr:
    return Instr(ins.target, ins.op, tuple(args))


def _signature(program: Program) -> tuple:
    """What must change for a child to count: live code and the live constants' values."""
    live = program.live()
    read = {a for comp in live.components for ins in comp.instrs for a in ins.names()}
    consts = tuple((c.name, c.value) for c in program.constants if c.name in read)
    return live.scan, live.post, live.objective, consts


def _scope(program: Program, kind: str, instrs: Sequence[Instr], i: int) -> list[str]:
    """Names readable just before instruction ``i`` (temporaries left out), in order."""
    comp = program.component(kind)
    names = list(INPUTS[kind]) + [c.name for c in program.constants] + list(comp.carry_names)
    seen = set(names)
    for ins in instrs[:i]:
        if not is_temp(ins.target) and ins.target not in seen:
            names.append(ins.target)
            seen.add(ins.target)
    return names


def _random_arg(
    rng: np.random.Generator,
    scope: Sequence[str],
    exclude: Arg | None = None,
    p_literal: float = _P_LITERAL,
) -> Arg:
    """A name from ``scope`` (not ``exclude``) or, with probability ``p_literal``, a literal."""
    names = [n for n in scope if n != exclude]
    if not names or rng.random() < p_literal:
        return _nice_or_random(rng)
    return _pick(rng, names)


def _nice_or_random(rng: np.random.Generator) -> float:
    """A literal: half the time a value rules like (0.5, 0.99, 1, 2 ...), else random."""
    if rng.random() < 0.5:
        return float(_pick(rng, _NICE))
    return random_literal(rng)


def _fresh_name(
    rng: np.random.Generator, program: Program, kind: str, instrs: Sequence[Instr]
) -> str:
    """A user name not used in ``kind`` (nor a constant, input, output or op name)."""
    used = set(_RESERVED) | {c.name for c in program.constants}
    used |= set(program.component(kind).carry_names) | {ins.target for ins in instrs}
    free = [n for n in _NAME_POOL if n not in used]
    if free:
        return _pick(rng, free)
    k = 1
    while f"t{k}" in used:
        k += 1
    return f"t{k}"


def _fresh_temp(instrs: Sequence[Instr]) -> str:
    """A temporary name not defined in ``instrs`` (normalization renumbers it)."""
    taken = {ins.target for ins in instrs}
    k = len(instrs) + 1
    while f"_{k}" in taken:
        k += 1
    return f"_{k}"


def _prune_temps(instrs: Sequence[Instr]) -> tuple[Instr, ...]:
    """Drop temporaries that nothing reads (nothing can ever read them again)."""
    read: set[str] = set()
    keep: list[Instr] = []
    for ins in reversed(instrs):
        if is_temp(ins.target) and ins.target not in read:
            continue
        keep.append(ins)
        read.update(ins.names())
    return tuple(reversed(keep))


def _child(program: Program, kind: str, instrs: Sequence[Instr]) -> Program:
    """``program`` with ``kind``'s instructions replaced; raises ProgramError if invalid.

    Temporaries left unread (an argument rewired away, a removed reader) are dropped.
    """
    comp = program.component(kind)
    return program.with_component(replace(comp, instrs=_prune_temps(instrs)))


@dataclass(frozen=True)
class _Ctx:
    """Everything a mutator needs about the parent."""

    program: Program
    rng: np.random.Generator
    max_instrs: int
    signature: tuple
    live: Mapping[str, Sequence[int]]  # live instruction indices (see program_liveness)
    live_outputs: Mapping[str, Sequence[str]]

    def instrs(self, kind: str) -> list[Instr]:
        return list(self.program.component(kind).instrs)

    def changes(self, child: Program) -> bool:
        return _signature(child) != self.signature

    def live_site(self) -> tuple[str, int, list[Instr]] | None:
        """A random live instruction (a component first, then an index), with a copy of
        its component's instructions to edit."""
        kinds = [k for k in COMPONENTS if self.live[k]]
        if not kinds:
            return None
        kind = _pick(self.rng, kinds)
        return kind, _pick(self.rng, self.live[kind]), self.instrs(kind)

    def live_constants(self) -> list[str]:
        read = {
            a
            for k in COMPONENTS
            for i in self.live[k]
            for a in self.program.component(k).instrs[i].names()
        }
        return [c.name for c in self.program.constants if c.name in read]

    def literal_sites(self) -> list[tuple[str, int, int]]:
        """(component, instruction, argument) of every literal in live code."""
        return [
            (k, i, j)
            for k in COMPONENTS
            for i in self.live[k]
            for j, a in enumerate(self.program.component(k).instrs[i].args)
            if not isinstance(a, str)
        ]


_Result = tuple[Program, Mutation] | None


# ----------------------------------------------------------------------------- mutators


def _insert(ctx: _Ctx) -> _Result:
    """Insert a random instruction whose value is likely to be read."""
    rng, program = ctx.rng, ctx.program
    kinds = [
        k for k in COMPONENTS if len(program.component(k)) < ctx.max_instrs and ctx.live_outputs[k]
    ]
    if not kinds:
        return None
    kind = _pick(rng, kinds)
    instrs = ctx.instrs(kind)
    n = len(instrs)
    if n and rng.random() < 0.5:
        # A new value read by a live instruction in place of one of its arguments; it
        # either wraps that argument (reads it) or replaces a named/literal argument.
        j = _pick(rng, ctx.live[kind] or list(range(n)))
        old = instrs[j]
        target = (
            _fresh_temp(instrs) if rng.random() < 0.5 else _fresh_name(rng, program, kind, instrs)
        )
        named = [k for k, x in enumerate(old.args) if not (isinstance(x, str) and is_temp(x))]
        wrap = not named or rng.random() < 0.5
        a = int(rng.integers(len(old.args))) if wrap else _pick(rng, named)
        pos = j if wrap else int(rng.integers(j + 1))
        new = random_instr(
            rng, kind, target, _scope(program, kind, instrs, pos), p_literal=_P_LITERAL
        )
        if wrap:
            b = int(rng.integers(len(new.args)))
            new = _with_args(new, [old.args[a] if k == b else x for k, x in enumerate(new.args)])
        instrs[j] = _with_args(old, [target if k == a else x for k, x in enumerate(old.args)])
        instrs.insert(pos, new)
        detail = (
            f"{kind}: `{instruction_text(new)}` at {pos}, "
            f"read by `{instruction_text(old)}` as arg {a}"
        )
        return _child(program, kind, instrs), Mutation("insert", kind, detail)
    # Reassign a live output or a name live code reads, possibly reading its old value.
    consts = {c.name for c in program.constants}
    outputs = ctx.live_outputs[kind]
    targets = list(outputs)
    for i in ctx.live[kind]:
        targets += [
            a for a in instrs[i].names() if not is_temp(a) and a not in consts and a not in targets
        ]
    target = _pick(rng, targets)
    if target in outputs:
        pos = n if rng.random() < 0.5 else int(rng.integers(n + 1))
    else:
        last = max(i for i in ctx.live[kind] if target in instrs[i].args)
        pos = int(rng.integers(last + 1))
    scope = _scope(program, kind, instrs, pos)
    new = random_instr(rng, kind, target, scope, p_literal=_P_LITERAL)
    if target in scope and rng.random() < 0.5:
        a = int(rng.integers(len(new.args)))
        new = _with_args(new, [target if k == a else x for k, x in enumerate(new.args)])
    instrs.insert(pos, new)
    detail = f"{kind}: `{instruction_text(new)}` at {pos}"
    return _child(program, kind, instrs), Mutation("insert", kind, detail)


def _bypass(instrs: Sequence[Instr], i: int, value: Arg) -> list[Instr]:
    """Drop instruction ``i``; reads of its binding read ``value`` instead.

    When ``value`` is a temporary and the removed instruction was the last binding of its
    target, the temporary's definition takes the target's name instead (so an output
    stays bound: ``loss = sub(_1, _2)`` becomes ``_1``'s instruction assigned to loss).
    """
    t = instrs[i].target
    out = list(instrs[:i])
    rebound = False
    for ins in instrs[i + 1 :]:
        if not rebound and t in ins.args:
            ins = _with_args(ins, [value if a == t else a for a in ins.args])
        rebound = rebound or ins.target == t
        out.append(ins)
    if not rebound and isinstance(value, str) and is_temp(value):
        uses = sum(a == value for ins in out for a in ins.args)
        if uses == 0:
            out = [Instr(t, ins.op, ins.args) if ins.target == value else ins for ins in out]
    return out


def _remove(ctx: _Ctx) -> _Result:
    """Remove one live instruction, passing one of its arguments through if needed."""
    rng, program = ctx.rng, ctx.program
    sites = [(k, i) for k in COMPONENTS for i in ctx.live[k]]
    for s in rng.permutation(len(sites)):
        kind, i = sites[int(s)]
        instrs = ctx.instrs(kind)
        ins = instrs[i]
        candidates = [instrs[:i] + instrs[i + 1 :]]
        candidates += [_bypass(instrs, i, ins.args[int(a)]) for a in rng.permutation(len(ins.args))]
        for cand in candidates:
            try:
                child = _child(program, kind, cand)
            except ProgramError:
                continue
            if ctx.changes(child):
                return child, Mutation("remove", kind, f"{kind}: `{instruction_text(ins)}`")
    return None


def _change_op(ctx: _Ctx) -> _Result:
    """Replace an op, keeping arguments (dropping some or adding random ones if needed)."""
    rng, program = ctx.rng, ctx.program
    site = ctx.live_site()
    if site is None:
        return None
    kind, i, instrs = site
    ins = instrs[i]
    ops = [op for op in ops_for(kind) if op.name != ins.op]
    same = [op for op in ops if op.arity == len(ins.args)]
    op = _pick(rng, same) if same and rng.random() < 0.75 else _pick(rng, ops)
    if op.arity <= len(ins.args):
        keep = sorted(int(k) for k in rng.choice(len(ins.args), op.arity, replace=False))
        args = [ins.args[k] for k in keep]
    else:
        scope = _scope(program, kind, instrs, i)
        args = list(ins.args) + [_random_arg(rng, scope) for _ in range(op.arity - len(ins.args))]
    instrs[i] = Instr(ins.target, op.name, tuple(args))
    if op.arity == len(ins.args):
        detail = f"{kind}: `{instruction_text(ins)}` -> op {op.name}"
    else:
        detail = f"{kind}: `{instruction_text(ins)}` -> `{instruction_text(instrs[i])}`"
    return _child(program, kind, instrs), Mutation("change_op", kind, detail)


def _rewire(ctx: _Ctx) -> _Result:
    """Replace one argument by another name in scope or a literal."""
    rng, program = ctx.rng, ctx.program
    site = ctx.live_site()
    if site is None:
        return None
    kind, i, instrs = site
    ins = instrs[i]
    a = int(rng.integers(len(ins.args)))
    old = ins.args[a]
    new = _random_arg(rng, _scope(program, kind, instrs, i), exclude=old)
    if new == old:
        return None
    instrs[i] = _with_args(ins, [new if k == a else x for k, x in enumerate(ins.args)])
    detail = f"{kind}: `{instruction_text(ins)}` arg {a} {render_expr(old)} -> {render_expr(new)}"
    return _child(program, kind, instrs), Mutation("rewire", kind, detail)


def _perturbed(rng: np.random.Generator, x: float) -> float | None:
    """``x * exp(N(0, 0.2))`` or ``x`` plus a little noise, as a new finite float32."""
    for _ in range(10):
        if x != 0.0 and rng.random() < 0.75:
            y = x * math.exp(rng.normal(0.0, 0.2))
        else:
            y = x + rng.normal(0.0, 0.1) * max(1.0, abs(x))
        if abs(y) <= _F32_MAX:
            y = float(np.float32(y))
            if y != x:
                return 0.0 if y == 0.0 else y
    return None


def _fresh_value(rng: np.random.Generator, x: float) -> float | None:
    """A new value (nice or random) different from ``x``."""
    for _ in range(10):
        y = float(np.float32(_nice_or_random(rng)))
        if y != x:
            return 0.0 if y == 0.0 else y
    return None


def _set_value(
    ctx: _Ctx, kind: str, new_value: Callable[[np.random.Generator, float], float | None]
) -> _Result:
    """Give a live named constant or a live literal argument ``new_value(rng, old)``."""
    rng, program = ctx.rng, ctx.program
    consts, literals = ctx.live_constants(), ctx.literal_sites()
    if not consts and not literals:
        return None
    if consts and (not literals or rng.random() < 0.5):
        name = _pick(rng, consts)
        old = program.constant_values[name]
        y = new_value(rng, old)
        if y is None:
            return None
        detail = f"constant {name}: {format_literal(old)} -> {format_literal(y)}"
        return program.with_constants({name: y}), Mutation(kind, "constants", detail)
    comp, i, j = literals[int(rng.integers(len(literals)))]
    instrs = ctx.instrs(comp)
    ins = instrs[i]
    old = float(ins.args[j])
    y = new_value(rng, old)
    if y is None:
        return None
    instrs[i] = _with_args(ins, [y if k == j else x for k, x in enumerate(ins.args)])
    detail = (
        f"{comp}: `{instruction_text(ins)}` literal {format_literal(old)} -> {format_literal(y)}"
    )
    return _child(program, comp, instrs), Mutation(kind, comp, detail)


def _perturb_constant(ctx: _Ctx) -> _Result:
    """Scale or nudge a named constant or a literal argument."""
    return _set_value(ctx, "perturb_constant", _perturbed)


def _replace_literal(ctx: _Ctx) -> _Result:
    """Give a named constant or a literal argument a fresh value."""
    return _set_value(ctx, "replace_literal", _fresh_value)


def _rebind_output(ctx: _Ctx) -> _Result:
    """Bind an output (or carry) to another name or to a subexpression of its value."""
    rng, program = ctx.rng, ctx.program
    kind = _pick(rng, [k for k in COMPONENTS if ctx.live_outputs[k]])
    out = _pick(rng, ctx.live_outputs[kind])
    instrs = ctx.instrs(kind)
    n = len(instrs)
    final = max((i for i, ins in enumerate(instrs) if ins.target == out), default=None)
    if final is None or (n < ctx.max_instrs and rng.random() < 0.4):
        if n >= ctx.max_instrs:
            return None
        src = _random_arg(rng, _scope(program, kind, instrs, n), exclude=out, p_literal=0.0)
        if src == out:
            return None
        instrs.append(Instr(out, "copy", (src,)))
        detail = f"{kind}: {out} -> {src} (appended)"
        return _child(program, kind, instrs), Mutation("rebind_output", kind, detail)
    old = instrs[final]
    temps = [
        a
        for a in old.names()
        if is_temp(a) and sum(x == a for ins in instrs for x in ins.args) == 1
    ]
    if temps and rng.random() < 0.6:
        # Promote a direct subexpression: its instruction now assigns the output.
        temp = _pick(rng, temps)
        instrs = [
            Instr(out, ins.op, ins.args) if ins.target == temp else ins
            for k, ins in enumerate(instrs)
            if k != final
        ]
        detail = f"{kind}: {out} -> argument {old.args.index(temp)} of `{instruction_text(old)}`"
        return _child(program, kind, instrs), Mutation("rebind_output", kind, detail)
    src = _random_arg(rng, _scope(program, kind, instrs, final), exclude=out, p_literal=0.0)
    if src == out:
        return None
    instrs[final] = Instr(out, "copy", (src,))
    detail = f"{kind}: {out} -> {src} (was `{instruction_text(old)}`)"
    return _child(program, kind, instrs), Mutation("rebind_output", kind, detail)


def _random_carries(rng: np.random.Generator, program: Program) -> tuple[Carry, ...]:
    """The parent's carries (half the time) or up to two fresh ones."""
    if rng.random() < 0.5:
        return program.scan.carries
    consts = {c.name for c in program.constants}
    pool = [n for n in _CARRY_POOL if n not in consts]
    k = min(int(rng.integers(0, 3)), MAX_CARRIES, len(pool))
    names = [pool[int(i)] for i in rng.choice(len(pool), k, replace=False)] if k else []
    return tuple(Carry(n, _pick(rng, CARRY_INITS)) for n in names)


def _random_component(
    rng: np.random.Generator, program: Program, kind: str, max_instrs: int
) -> Component | None:
    """A random component of ``kind`` reading the program's constants (<= max_instrs)."""
    consts = [c.name for c in program.constants]
    carries = _random_carries(rng, program) if kind == "scan" else ()
    carry_names = [c.name for c in carries]
    required = [o for o in OUTPUTS[kind] if kind != "post" or rng.random() < 0.5]
    limit = min(max_instrs, RANDOM_INSTRS)
    if len(required) > limit:
        return None
    scope = list(INPUTS[kind]) + consts + carry_names
    targets = [n for n in _NAME_POOL if n not in consts] + list(OUTPUTS[kind]) + carry_names
    instrs: list[Instr] = []
    for k in range(int(rng.integers(0, limit - len(required) + 1))):
        target = f"_{k + 1}" if rng.random() < 0.4 else _pick(rng, targets)
        instrs.append(random_instr(rng, kind, target, scope, p_literal=_P_LITERAL))
        if target not in scope:
            scope.append(target)
    assigned = {ins.target for ins in instrs}
    for out in required:
        if out not in assigned:
            instrs.append(random_instr(rng, kind, out, scope, p_literal=_P_LITERAL))
            scope.append(out)
    return Component(kind, _prune_temps(instrs), carries)


def _randomize_component(ctx: _Ctx) -> _Result:
    """Replace one component by a fresh random one."""
    rng, program = ctx.rng, ctx.program
    kind = _pick(rng, [k for k in COMPONENTS if ctx.live_outputs[k]])
    comp = _random_component(rng, program, kind, ctx.max_instrs)
    if comp is None:
        return None
    old = program.component(kind)
    detail = f"{kind}: {len(old)} -> {len(comp)} random instructions"
    if kind == "scan" and comp.carries != old.carries:
        detail += f", carries {list(comp.carry_names)}"
    return program.with_component(comp), Mutation("randomize_component", kind, detail)


#: The dispatcher table: one mutator per kind.
_MUTATORS: dict[str, Callable[[_Ctx], _Result]] = {
    "insert": _insert,
    "remove": _remove,
    "change_op": _change_op,
    "rewire": _rewire,
    "perturb_constant": _perturb_constant,
    "replace_literal": _replace_literal,
    "rebind_output": _rebind_output,
    "randomize_component": _randomize_component,
}


# ----------------------------------------------------------------------------- driver


def _attempt(ctx: _Ctx, kind: str) -> tuple[Program, Mutation] | None:
    """One try of mutator ``kind``: its result if valid and live code changed."""
    try:
        result = _MUTATORS[kind](ctx)
    except ProgramError:
        return None
    if result is None or not ctx.changes(result[0]):
        return None
    return result


def mutate(
    program: Program,
    rng: np.random.Generator,
    *,
    kinds: Sequence[str] = MUTATIONS,
    max_instrs: int = MAX_INSTRS,
    max_tries: int = 50,
) -> tuple[Program, Mutation]:
    """A valid child of ``program`` that differs from it in its live code, and the mutation.

    Each try picks a kind uniformly from ``kinds``; a try that fails (not applicable,
    invalid, or only dead code changed) is retried, ``max_tries`` times in all, after which
    ``randomize_component`` is tried until the child differs. Components are never grown
    past ``max_instrs`` (one already longer is never grown); scan keeps at most
    :data:`MAX_CARRIES` carries. Raises ``ValueError`` for unknown kinds and
    ``RuntimeError`` if no child could be found.
    """
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in _MUTATORS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {MUTATIONS}, got {kinds}")
    lv = program_liveness(program)
    ctx = _Ctx(program, rng, max_instrs, _signature(program), lv.instrs, lv.outputs)
    for _ in range(max_tries):
        result = _attempt(ctx, kinds[int(rng.integers(len(kinds)))])
        if result is not None:
            return result
    for _ in range(_FALLBACK_TRIES):
        result = _attempt(ctx, "randomize_component")
        if result is not None:
            return result
    raise RuntimeError(
        f"no mutation of this program changes its live code "
        f"({max_tries} tries and {_FALLBACK_TRIES} random components)"
    )
