"""The program model: constants plus three straight-line components (scan, post, objective).

This module is the single source of truth for the vocabulary of update programs:
:data:`COMPONENTS`, each component's :data:`INPUTS` and :data:`OUTPUTS`, carries and their
initial values. A :class:`Program` is immutable, hashable and compared structurally; it is
validated and brought to a normal form on construction, so any two programs that print
to the same text are equal (``dsl.parse(dsl.to_text(p)) == p``).

Semantics
---------
Each component is a list of instructions ``name = op(arg, ...)``; an argument is a
component input, a constant, a float32 literal or an earlier name. Names may be
reassigned; a use refers to the latest binding, and a component's outputs are the final
bindings of its output names (in ``post`` an unassigned output passes its input through).
``scan`` may declare up to :data:`MAX_CARRIES` carries with an initial value ``0`` or
``v_next`` at the last step of the rollout; reading a carry before it is reassigned gives
its value from step t+1, and its final binding is its value at t.

Anonymous temporaries
---------------------
Names of the form ``_<digits>`` (``_1``, ``_2`` ...) are anonymous temporaries: the DSL
parser flattens nested expressions into them and the printer inlines them back. They have
no identity of their own: on construction every component is normalized by
:func:`normalize_instrs`, which (1) inlines-then-reflattens every temporary that is used
exactly once and can be moved to its use without crossing a reassignment of a name it
reads, placing it in expression evaluation order (post-order, arguments left to right),
and (2) renumbers all temporaries ``_1, _2, ...`` in order of definition. Normalization
never changes what a program computes.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import keyword
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from evozero.program.ops import OPS, ops_for

if TYPE_CHECKING:
    import networkx as nx

__all__ = [
    "CARRY_INITS",
    "COMPONENTS",
    "DIFF_INPUTS",
    "INPUTS",
    "MAX_CARRIES",
    "OUTPUTS",
    "Arg",
    "Call",
    "Carry",
    "Component",
    "Const",
    "Instr",
    "Loc",
    "Node",
    "Program",
    "ProgramError",
    "expression_forest",
    "inline_plan",
    "is_temp",
    "normalize_instrs",
    "random_instr",
    "random_literal",
    "random_parts",
    "random_program",
]

from evozero.program.vocabulary import (  # noqa: E402  (re-exported: the model's vocabulary)
    CARRY_INITS,
    COMPONENTS,
    DIFF_INPUTS,
    INPUTS,
    MAX_CARRIES,
    OUTPUTS,
)

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def is_temp(name: str) -> bool:
    """Whether ``name`` is an anonymous temporary (``_<digits>``)."""
    return name[:1] == "_" and name[1:].isascii() and name[1:].isdigit()


# ----------------------------------------------------------------------------- errors


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

    def __init__(self, message: str, loc: Loc | None = None, *, file: str | None = None,
                 line: int | None = None, col: int | None = None) -> None:
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


def _rebuild_error(message: str, file: str | None, line: int | None,
                   col: int | None) -> ProgramError:
    return ProgramError(message, file=file, line=line, col=col)


# ----------------------------------------------------------------------------- IR

#: An instruction argument: a name (str) or a float32 literal (a python float).
Arg = str | float


def _literal(x: object) -> float:
    """Normalize a numeric literal to the python float of its float32 value (-0.0 -> 0.0)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer,
                                                             np.floating)):
        raise ProgramError(f"literal {x!r} is not a number")
    if type(x) is float or type(x) is int:
        return _literal_cached(x)
    return _to_float32(x)


@functools.lru_cache(maxsize=4096)
def _literal_cached(x: float | int) -> float:
    # Programs reuse few distinct literals; converting through numpy is the slow part.
    return _to_float32(x)


def _to_float32(x: object) -> float:
    with np.errstate(over="ignore"):
        try:
            f = float(np.float32(x))
        except OverflowError:
            f = math.inf
    if not math.isfinite(f):
        raise ProgramError(f"literal {x!r} is not a finite float32")
    return 0.0 if f == 0.0 else f


def _arg(x: object) -> Arg:
    if isinstance(x, str):
        return x
    return _literal(x)


@dataclass(frozen=True)
class Instr:
    """One instruction ``target = op(*args)``.

    ``args`` holds names (str) and float32 literals (python floats; ints and numpy scalars
    are converted, ``-0.0`` becomes ``0.0``). ``loc``/``arg_locs`` are source positions used
    in error messages; they take no part in equality or hashing.
    """

    target: str
    op: str
    args: tuple[Arg, ...]
    loc: Loc | None = field(default=None, compare=False, repr=False)
    arg_locs: tuple[Loc | None, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not isinstance(self.op, str):
            raise ProgramError("instruction target and op must be strings", self.loc)
        object.__setattr__(self, "args", tuple(_arg(a) for a in self.args))
        object.__setattr__(self, "arg_locs", tuple(self.arg_locs))

    def arg_loc(self, i: int) -> Loc | None:
        """Location of argument ``i`` (falls back to the instruction's)."""
        if i < len(self.arg_locs) and self.arg_locs[i] is not None:
            return self.arg_locs[i]
        return self.loc

    def names(self) -> tuple[str, ...]:
        """The names among the arguments, in order."""
        return tuple(a for a in self.args if isinstance(a, str))

    def __str__(self) -> str:
        args = ", ".join(a if isinstance(a, str) else repr(a) for a in self.args)
        return f"{self.target} = {self.op}({args})"


@dataclass(frozen=True)
class Carry:
    """A scan carry with its initial value (``"0"`` or ``"v_next"``) at the last step."""

    name: str
    init: str = "0"
    loc: Loc | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Const:
    """A named, evolvable constant (value is the python float of a float32)."""

    name: str
    value: float
    loc: Loc | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "value", _literal(self.value))
        except ProgramError as e:
            raise ProgramError(f"constant {self.name!r}: {e.message}", self.loc) from None


@dataclass(frozen=True)
class Component:
    """One component: its kind, instructions and (scan only) carries.

    Build freely; a :class:`Program` validates and normalizes its components.
    ``loc`` is the position of the section header, for messages.
    """

    kind: str
    instrs: tuple[Instr, ...] = ()
    carries: tuple[Carry, ...] = ()
    loc: Loc | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "instrs", tuple(self.instrs))
        object.__setattr__(self, "carries", tuple(self.carries))

    @property
    def inputs(self) -> tuple[str, ...]:
        """The component's inputs (not counting carries)."""
        return INPUTS[self.kind]

    @property
    def outputs(self) -> tuple[str, ...]:
        """The component's outputs, carries included."""
        return OUTPUTS[self.kind] + self.carry_names

    @property
    def carry_names(self) -> tuple[str, ...]:
        """Names of the carries, in declaration order."""
        return tuple(c.name for c in self.carries)

    def __len__(self) -> int:
        return len(self.instrs)


# ----------------------------------------------------------------------------- messages
# Shared with the DSL parser so a message reads the same wherever it is found.


def _suggest(name: str, candidates: Iterable[str]) -> str:
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


def check_name_syntax(name: str, what: str = "name") -> str | None:
    """Return a message if ``name`` cannot be a user name (constant, carry, target)."""
    if not _NAME_RE.match(name):
        return f"invalid {what} {name!r}"
    if keyword.iskeyword(name) or name in ("True", "False", "None"):
        return f"{name!r} is a Python keyword and cannot be a {what}"
    if name in OPS:
        return f"{name!r} is an op and cannot be a {what}"
    return None


# ----------------------------------------------------------------------------- validation


def _validate_constants(constants: tuple[Const, ...]) -> None:
    seen: set[str] = set()
    all_inputs = {n for c in COMPONENTS for n in INPUTS[c]}
    all_outputs = {n for c in COMPONENTS for n in OUTPUTS[c]}
    for c in constants:
        if not isinstance(c, Const):
            raise ProgramError(f"constants must be Const objects, got {c!r}")
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


def _validate_component(comp: Component, kind: str, constants: frozenset[str]) -> None:
    if not isinstance(comp, Component):
        raise ProgramError(f"{kind} must be a Component, got {type(comp).__name__}")
    if comp.kind != kind:
        raise ProgramError(f"component of kind {comp.kind!r} given as {kind}", comp.loc)
    inputs = INPUTS[kind]
    # Carries.
    if comp.carries and kind != "scan":
        raise ProgramError(f"carries are only allowed in scan, not in {kind}",
                           comp.carries[0].loc)
    seen: set[str] = set()
    for i, c in enumerate(comp.carries):
        if not isinstance(c, Carry):
            raise ProgramError(f"carries must be Carry objects, got {c!r}", comp.loc)
        msg = check_name_syntax(c.name, "carry name")
        if msg is None and is_temp(c.name):
            msg = f"{c.name!r} is reserved for anonymous temporaries"
        if msg is None and i >= MAX_CARRIES:
            msg = (f"scan declares {len(comp.carries)} carries; at most {MAX_CARRIES} are"
                   " allowed")
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
        if not isinstance(ins, Instr):
            raise ProgramError(f"instructions must be Instr objects, got {ins!r}", comp.loc)
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
                raise ProgramError(_msg_unknown_name(a, kind, scope, targets_later, i),
                                   ins.arg_loc(j))
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


def _msg_unknown_name(name: str, kind: str, scope: set[str], first_target: dict[str, int],
                      at: int) -> str:
    if first_target.get(name, -1) >= at:
        return f"{name!r} is used before it is assigned in {kind}"
    owners = [c for c in COMPONENTS if c != kind and name in INPUTS[c]]
    if owners:
        return (f"{name!r} is not an input of {kind} (it is an input of "
                f"{' and '.join(owners)})")
    visible = {n for n in scope if not is_temp(n)}
    return f"unknown name {name!r} in {kind}{_suggest(name, visible)}"


# ----------------------------------------------------------------------------- normal form


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
    new = object.__new__(Instr)
    for f, v in (("target", target), ("op", ins.op), ("args", args), ("loc", ins.loc),
                 ("arg_locs", ins.arg_locs)):
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


def normalize_instrs(instrs: Sequence[Instr]) -> tuple[Instr, ...]:
    """The normal form of a (valid) component body; see the module docstring."""
    ssa = _ssa_temps(instrs)
    parent = inline_plan(ssa)
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

    This is exactly what the DSL printer prints, one statement per line. Temporaries
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


# ----------------------------------------------------------------------------- program


def _constants(constants: Mapping[str, float] | Iterable[Const | tuple[str, float]]
               ) -> tuple[Const, ...]:
    if isinstance(constants, Mapping):
        return tuple(Const(k, v) for k, v in constants.items())
    return tuple(c if isinstance(c, Const) else Const(*c) for c in constants)


@dataclass(frozen=True)
class Program:
    """An update rule: named constants and the scan, post and objective components.

    Construction validates (raising :class:`ProgramError`) and normalizes the components
    (see :func:`normalize_instrs`); two programs are equal iff they print the same.
    Use :meth:`build` for a terser constructor.
    """

    constants: tuple[Const, ...] = ()
    scan: Component = field(default_factory=lambda: Component("scan"))
    post: Component = field(default_factory=lambda: Component("post"))
    objective: Component = field(default_factory=lambda: Component("objective"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "constants", _constants(self.constants))
        _validate_constants(self.constants)
        names = frozenset(c.name for c in self.constants)
        for kind in COMPONENTS:
            comp = getattr(self, kind)
            _validate_component(comp, kind, names)
            object.__setattr__(self, kind, replace(comp, instrs=normalize_instrs(comp.instrs)))

    # -- construction helpers

    @classmethod
    def build(cls, constants: Mapping[str, float] | Iterable[Const | tuple[str, float]] = (),
              *, scan: Iterable[Instr | tuple] = (), carries: Iterable[Carry | tuple] = (),
              post: Iterable[Instr | tuple] = (), objective: Iterable[Instr | tuple] = ()
              ) -> Program:
        """Build a program from plain data.

        Instructions may be :class:`Instr` or tuples ``(target, op, arg, ...)``; carries
        may be :class:`Carry` or ``(name, init)``; constants a mapping or ``(name, value)``
        pairs. Example: ``Program.build({"g": 0.99}, scan=[("adv", "copy", "r"),
        ("vtarget", "copy", "r")], objective=[("loss", "mul", "logp", "adv")])``.
        """

        def instrs(xs: Iterable[Instr | tuple]) -> tuple[Instr, ...]:
            return tuple(x if isinstance(x, Instr) else Instr(x[0], x[1], tuple(x[2:]))
                         for x in xs)

        return cls(
            _constants(constants),
            Component("scan", instrs(scan),
                      tuple(c if isinstance(c, Carry) else Carry(*c) for c in carries)),
            Component("post", instrs(post)),
            Component("objective", instrs(objective)),
        )

    # -- access

    @property
    def components(self) -> tuple[Component, Component, Component]:
        """``(scan, post, objective)``."""
        return (self.scan, self.post, self.objective)

    def component(self, kind: str) -> Component:
        """The component called ``kind``."""
        if kind not in COMPONENTS:
            raise KeyError(kind)
        return getattr(self, kind)

    @property
    def constant_values(self) -> dict[str, float]:
        """Constants as a ``{name: value}`` dict, in declaration order."""
        return {c.name: c.value for c in self.constants}

    def with_constants(self, values: Mapping[str, float]) -> Program:
        """A copy with some constant values replaced (unknown names raise KeyError)."""
        unknown = set(values) - {c.name for c in self.constants}
        if unknown:
            raise KeyError(f"unknown constants: {sorted(unknown)}")
        return replace(self, constants=tuple(
            replace(c, value=values[c.name]) if c.name in values else c
            for c in self.constants))

    def with_component(self, comp: Component) -> Program:
        """A copy with one component replaced (validated and normalized)."""
        return replace(self, **{comp.kind: comp})

    # -- analysis

    def _live_indices(self) -> dict[str, tuple[list[int], frozenset[str]]]:
        obj_keep, obj_reads = _liveness(self.objective.instrs, {"loss"})
        post_roots = {o for o in OUTPUTS["post"] if o in obj_reads}
        post_keep, _ = _liveness(self.post.instrs, post_roots)
        carries = set(self.scan.carry_names)
        live_carries: set[str] = set()
        while True:
            scan_keep, reads = _liveness(self.scan.instrs, set(OUTPUTS["scan"]) | live_carries)
            new = (reads & carries) - live_carries
            if not new:
                break
            live_carries |= new
        return {"scan": (scan_keep, frozenset(live_carries)),
                "post": (post_keep, frozenset()), "objective": (obj_keep, frozenset())}

    def live(self) -> Program:
        """The program without dead code.

        Drops instructions that no needed output depends on: objective keeps what ``loss``
        needs, post what the objective reads of its outputs, scan what ``adv``,
        ``vtarget`` and the live carries need; a carry is live when a live instruction
        (or output) reads its value from step t+1. Dead carries are dropped.
        """
        live = self._live_indices()
        comps = {}
        for kind in COMPONENTS:
            comp = getattr(self, kind)
            keep, live_carries = live[kind]
            comps[kind] = replace(
                comp, instrs=tuple(comp.instrs[i] for i in keep),
                carries=tuple(c for c in comp.carries if c.name in live_carries))
        return replace(self, **comps)

    def complexity(self) -> int:
        """Number of live ops (``copy`` statements do not count)."""
        total = 0
        for kind, (keep, _) in self._live_indices().items():
            instrs = getattr(self, kind).instrs
            total += sum(1 for i in keep if instrs[i].op != "copy")
        return total

    def ops_used(self) -> frozenset[str]:
        """Names of the ops that occur in the program."""
        return frozenset(ins.op for comp in self.components for ins in comp.instrs)

    def graph(self) -> nx.DiGraph:
        """The dataflow graph (a DAG).

        Nodes: ``("const", name)``; ``(kind, "in", name)`` for inputs; ``("scan", "carry",
        name)`` for a carry's value from t+1; ``(kind, i)`` for instruction ``i`` (attrs
        ``op``, ``target``, ``args``); ``(kind, "out", name)`` for final bindings of outputs
        and carries. Every node has attrs ``kind`` and ``component`` (None for constants).
        Edges go from a value to its consumer with attr ``positions`` (argument indices).
        Scan outputs feed post inputs and post outputs feed objective inputs; the
        recurrence from a carry's value at t to its value at t-1 is not an edge.
        """
        import networkx as nx

        g = nx.DiGraph()
        for c in self.constants:
            g.add_node(("const", c.name), kind="const", component=None, value=c.value)
        for kind in COMPONENTS:
            comp = getattr(self, kind)
            env: dict[str, tuple] = {}
            for name in INPUTS[kind]:
                env[name] = (kind, "in", name)
                g.add_node(env[name], kind="input", component=kind, name=name)
            for c in comp.carries:
                env[c.name] = (kind, "carry", c.name)
                g.add_node(env[c.name], kind="carry", component=kind, name=c.name,
                           init=c.init)
            for c in self.constants:
                env.setdefault(c.name, ("const", c.name))
            for i, ins in enumerate(comp.instrs):
                node = (kind, i)
                g.add_node(node, kind="instr", component=kind, op=ins.op, target=ins.target,
                           args=ins.args)
                for j, a in enumerate(ins.args):
                    if isinstance(a, str):
                        src = env[a]
                        if g.has_edge(src, node):
                            g.edges[src, node]["positions"].append(j)
                        else:
                            g.add_edge(src, node, positions=[j])
                env[ins.target] = node
            for name in comp.outputs:
                out = (kind, "out", name)
                g.add_node(out, kind="output", component=kind, name=name)
                g.add_edge(env[name], out, positions=[0])
        for a, b in (("scan", "post"), ("post", "objective")):
            for name in OUTPUTS[a]:
                if name in INPUTS[b]:
                    g.add_edge((a, "out", name), (b, "in", name), positions=[0])
        return g

    def __str__(self) -> str:
        from evozero.program.dsl import to_text

        return to_text(self)


def _liveness(instrs: Sequence[Instr], roots: set[str]) -> tuple[list[int], frozenset[str]]:
    """Backward liveness: kept instruction indices and the names read at entry."""
    needed = set(roots)
    keep: list[int] = []
    for i in range(len(instrs) - 1, -1, -1):
        ins = instrs[i]
        if ins.target in needed:
            keep.append(i)
            needed.discard(ins.target)
            needed.update(ins.names())
    keep.reverse()
    return keep, frozenset(needed)


# ----------------------------------------------------------------------------- random programs

_NAME_POOL = ("a", "b", "c", "d", "x", "y", "z", "u", "w", "delta", "tmp", "k")
_CONST_POOL = ("gamma", "lam", "eps", "c_v", "c_h", "alpha", "beta", "k1", "k2")
_CARRY_POOL = ("g", "h", "acc", "m")


def random_literal(rng: np.random.Generator) -> float:
    """A random float32 literal, biased to the values rules use but covering all ranges."""
    kind = rng.integers(6)
    if kind == 0:
        x = float(rng.integers(-3, 4))
    elif kind == 1:
        x = float(rng.choice([0.5, 0.1, 0.01, 0.99, 0.95, 0.2, 1e-8, 2.0, -0.5]))
    elif kind == 2:
        x = float(rng.normal())
    elif kind == 3:
        x = float(10.0 ** rng.uniform(-38, 38)) * float(rng.choice([-1.0, 1.0]))
    elif kind == 4:  # any finite float32 bit pattern
        while True:
            bits = np.array([rng.integers(0, 2**32)], dtype=np.uint64).astype(np.uint32)
            x = float(bits.view(np.float32)[0])
            if math.isfinite(x):
                break
    else:
        x = float(np.round(rng.uniform(-10, 10), int(rng.integers(0, 4))))
    return _literal(x) if math.isfinite(float(np.float32(x))) else 1.0


def random_instr(rng: np.random.Generator, kind: str, target: str, scope: Sequence[str],
                 *, p_literal: float = 0.15, ops: Sequence[str] | None = None) -> Instr:
    """A random instruction ``target = op(...)`` valid in ``kind`` reading from ``scope``."""
    names = list(ops) if ops is not None else [op.name for op in ops_for(kind)]
    op = OPS[names[int(rng.integers(len(names)))]]
    args: list[Arg] = []
    for _ in range(op.arity):
        if not scope or rng.random() < p_literal:
            args.append(random_literal(rng))
        else:
            args.append(scope[int(rng.integers(len(scope)))])
    return Instr(target, op.name, tuple(args))


def random_program(rng: np.random.Generator, *, max_constants: int = 4,
                   max_instrs: int = 10, max_carries: int = 2, p_literal: float = 0.15,
                   p_temp: float = 0.4, p_reassign: float = 0.15) -> Program:
    """A random valid program (for search seeds, fuzzing and property tests).

    Temporaries are placed at random (so normalization has work to do), names are
    reassigned with probability ``p_reassign``, literals cover the whole float32 range,
    and dead code is common.
    """
    constants, comps = random_parts(rng, max_constants=max_constants, max_instrs=max_instrs,
                                    max_carries=max_carries, p_literal=p_literal,
                                    p_temp=p_temp, p_reassign=p_reassign)
    return Program(constants, comps["scan"], comps["post"], comps["objective"])


def random_parts(rng: np.random.Generator, *, max_constants: int = 4, max_instrs: int = 10,
                 max_carries: int = 2, p_literal: float = 0.15, p_temp: float = 0.4,
                 p_reassign: float = 0.15) -> tuple[tuple[Const, ...], dict[str, Component]]:
    """The constants and raw (not yet normalized) components of :func:`random_program`."""
    n_const = int(rng.integers(0, max_constants + 1))
    const_names = list(rng.choice(_CONST_POOL, size=n_const, replace=False))
    constants = tuple(Const(str(n), random_literal(rng)) for n in const_names)
    comps: dict[str, Component] = {}
    for kind in COMPONENTS:
        carries: tuple[Carry, ...] = ()
        if kind == "scan" and max_carries:
            k = int(rng.integers(0, max_carries + 1))
            carries = tuple(
                Carry(str(n), CARRY_INITS[int(rng.integers(2))])
                for n in rng.choice(_CARRY_POOL, size=min(k, len(_CARRY_POOL)), replace=False))
        scope = list(INPUTS[kind]) + [c.name for c in constants] + [c.name for c in carries]
        assignable = [n for n in scope if n not in const_names]
        instrs: list[Instr] = []
        n = int(rng.integers(0, max_instrs + 1))
        next_temp = 1
        for _ in range(n):
            u = rng.random()
            if u < p_temp:
                # Sometimes reuse a temp number: reassigned temporaries get renumbered.
                target = f"_{int(rng.integers(1, next_temp + 1))}"
                next_temp += 1
            elif u < p_temp + p_reassign and assignable:
                target = assignable[int(rng.integers(len(assignable)))]
            else:
                target = str(rng.choice(_NAME_POOL + OUTPUTS[kind]))
            instrs.append(random_instr(rng, kind, target, scope, p_literal=p_literal))
            if target not in scope:
                scope.append(target)
            if target not in assignable and not is_temp(target):
                assignable.append(target)
        for out in OUTPUTS[kind]:
            if out not in scope:
                instrs.append(random_instr(rng, kind, out, scope, p_literal=p_literal))
                scope.append(out)
        comps[kind] = Component(kind, tuple(instrs), carries)
    return constants, comps
