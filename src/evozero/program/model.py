"""The program model: constants plus three straight-line components (scan, post, objective).

The vocabulary (:data:`~evozero.program.vocabulary.COMPONENTS`, each component's inputs
and outputs, carries and their initial values) is :mod:`evozero.program.vocabulary`. A
:class:`Program` is immutable, hashable and compared structurally; it is validated
(:mod:`evozero.program.validate`) and brought to a normal form
(:mod:`evozero.program.normal_form`) on construction, so any two programs that print to
the same text are equal (``dsl.parse(dsl.to_text(p)) == p``). What its loss depends on
is :mod:`evozero.program.liveness`; random programs are
:mod:`evozero.program.random_programs`.

Semantics
---------
Each component is a list of instructions ``name = op(arg, ...)``; an argument is a
component input, a constant, a float32 literal or an earlier name. Names may be
reassigned; a use refers to the latest binding, and a component's outputs are the final
bindings of its output names (in ``post`` an unassigned output passes its input through).
``scan`` may declare up to :data:`~evozero.program.vocabulary.MAX_CARRIES` carries with an
initial value ``0`` or ``v_next`` at the last step of the rollout; reading a carry before
it is reassigned gives its value from step t+1, and its final binding is its value at t.
A component has at most :data:`~evozero.program.vocabulary.MAX_INSTRUCTIONS`
instructions, and its expression trees (see :mod:`evozero.program.normal_form`) nest at
most :data:`~evozero.program.vocabulary.MAX_DEPTH` deep.
Names ``_1``, ``_2`` ... are anonymous temporaries (see :mod:`evozero.program.normal_form`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from evozero.program.errors import Loc, ProgramError
from evozero.program.liveness import program_liveness
from evozero.program.normal_form import normalize_instrs
from evozero.program.validate import validate_component, validate_constants
from evozero.program.vocabulary import COMPONENTS, INPUTS, OUTPUTS

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["Arg", "Carry", "Component", "Const", "Instr", "Program"]


# ----------------------------------------------------------------------------- IR

#: An instruction argument: a name (str) or a float32 literal (a python float).
Arg = str | float


def _literal(x: object) -> float:
    """Normalize a numeric literal to the python float of its float32 value (-0.0 -> 0.0)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
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


# ----------------------------------------------------------------------------- program


def _constants(
    constants: Mapping[str, float] | Iterable[Const | tuple[str, float]],
) -> tuple[Const, ...]:
    if isinstance(constants, Mapping):
        return tuple(Const(k, v) for k, v in constants.items())
    return tuple(c if isinstance(c, Const) else Const(*c) for c in constants)


def _check_types(comp: object, kind: str) -> None:
    """Raise :class:`ProgramError` unless ``comp`` is a Component of Carry/Instr objects."""
    if not isinstance(comp, Component):
        raise ProgramError(f"{kind} must be a Component, got {type(comp).__name__}")
    for c in comp.carries:
        if not isinstance(c, Carry):
            raise ProgramError(f"carries must be Carry objects, got {c!r}", comp.loc)
    for ins in comp.instrs:
        if not isinstance(ins, Instr):
            raise ProgramError(f"instructions must be Instr objects, got {ins!r}", comp.loc)


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
        validate_constants(self.constants)
        names = frozenset(c.name for c in self.constants)
        for kind in COMPONENTS:
            comp = getattr(self, kind)
            _check_types(comp, kind)
            validate_component(comp, kind, names)
            instrs = normalize_instrs(comp.instrs, kind)
            object.__setattr__(self, kind, replace(comp, instrs=instrs))

    # -- construction helpers

    @classmethod
    def build(
        cls,
        constants: Mapping[str, float] | Iterable[Const | tuple[str, float]] = (),
        *,
        scan: Iterable[Instr | tuple] = (),
        carries: Iterable[Carry | tuple] = (),
        post: Iterable[Instr | tuple] = (),
        objective: Iterable[Instr | tuple] = (),
    ) -> Program:
        """Build a program from plain data.

        Instructions may be :class:`Instr` or tuples ``(target, op, arg, ...)``; carries
        may be :class:`Carry` or ``(name, init)``; constants a mapping or ``(name, value)``
        pairs. Example: ``Program.build({"g": 0.99}, scan=[("adv", "copy", "r"),
        ("vtarget", "copy", "r")], objective=[("loss", "mul", "logp", "adv")])``.
        """

        def instrs(xs: Iterable[Instr | tuple]) -> tuple[Instr, ...]:
            return tuple(x if isinstance(x, Instr) else Instr(x[0], x[1], tuple(x[2:])) for x in xs)

        return cls(
            _constants(constants),
            Component(
                "scan",
                instrs(scan),
                tuple(c if isinstance(c, Carry) else Carry(*c) for c in carries),
            ),
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
        return replace(
            self,
            constants=tuple(
                replace(c, value=values[c.name]) if c.name in values else c for c in self.constants
            ),
        )

    def with_component(self, comp: Component) -> Program:
        """A copy with one component replaced (validated and normalized)."""
        return replace(self, **{comp.kind: comp})

    # -- analysis

    def live(self) -> Program:
        """The program without dead code (see :func:`~evozero.program.liveness.program_liveness`).

        Drops instructions that no needed output depends on: objective keeps what ``loss``
        needs, post what the objective reads of its outputs, scan what ``adv``,
        ``vtarget`` and the live carries need; a carry is live when a live instruction
        (or output) reads its value from step t+1. Dead carries are dropped.
        """
        lv = program_liveness(self)
        carries = lv.carries
        comps = {}
        for kind in COMPONENTS:
            comp = getattr(self, kind)
            comps[kind] = replace(
                comp,
                instrs=tuple(comp.instrs[i] for i in lv.instrs[kind]),
                carries=tuple(c for c in comp.carries if c.name in carries),
            )
        return replace(self, **comps)

    def complexity(self) -> int:
        """Number of live ops (``copy`` statements do not count)."""
        total = 0
        for kind, live in program_liveness(self).instrs.items():
            instrs = getattr(self, kind).instrs
            total += sum(1 for i in live if instrs[i].op != "copy")
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
                g.add_node(env[c.name], kind="carry", component=kind, name=c.name, init=c.init)
            for c in self.constants:
                env.setdefault(c.name, ("const", c.name))
            for i, ins in enumerate(comp.instrs):
                node = (kind, i)
                g.add_node(
                    node, kind="instr", component=kind, op=ins.op, target=ins.target, args=ins.args
                )
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
