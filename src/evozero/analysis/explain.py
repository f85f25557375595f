"""Explain a rule by how it differs from the nearest reference program.

Every rule is a symbolic program, so it can be read against the rules people know
(``programs/*.evz``). :func:`explain` symbolically executes each component of the rule and
of every reference (:func:`evozero.program.symbolic.component_exprs`), compares the live
outputs expression by expression, and returns the differences to the nearest reference as
:class:`Edit` records, each with a sentence in plain words:

* ``constant``: a named constant both programs use has a new value (``eps 0.2 → 0.3``);
* ``number``: a literal changed, shown with the sum or product around it
  (``eps + 1 → eps + 0.5``);
* ``op``: an operation replaced, its arguments kept (``min → max``);
* ``term_added`` / ``term_removed``: a term of a sum (or a factor of a product);
* ``wrapped`` / ``unwrapped``: an operation put around, or taken off, a subexpression;
* ``replaced``: any other change of a subexpression (old and new shown);
* ``constant_output``: an output that became a number;
* ``component_removed``: a component whose outputs now pass their inputs through.

Constants both programs declare under the same name stay symbols (their values are
compared once, as ``constant`` edits); any other constant is its value. The comparison is
over sympy's automatic normal form (sums and products flattened, arguments of ``+ * min
max`` ordered), not the expanded canonical form of :mod:`evozero.program.canon`, so a
change reads the way the program is written; two programs with the same canonical key
are the same rule and have no differences. The nearest reference is the one with the
smallest :attr:`Explanation.distance` (the number of edits, a ``replaced`` one weighted
by the size of what it replaces).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import sympy
from sympy.printing.str import StrPrinter

from evozero.program import dsl
from evozero.program.canon import CanonUnavailable, canonical_key
from evozero.program.model import Program
from evozero.program.printer import format_literal
from evozero.program.symbolic import (
    ExpressionTooLarge,
    component_exprs,
    display_numbers,
    input_symbol,
    literal,
)
from evozero.program.time_limit import TimeLimitExceeded, call_with_time_limit
from evozero.program.vocabulary import OUTPUTS

__all__ = ["Edit", "Explanation", "explain", "explain_against", "reference_programs"]

#: Default wall-clock bound in seconds of one explanation (typical rules take well under 5 s).
DEFAULT_TIMEOUT = 60.0
#: Components in the order they are explained (the data flow of an update).
KINDS = ("scan", "post", "objective")

#: sympy heads shown under the program's op names.
_OP_NAMES = {"Min": "min", "Max": "max", "Abs": "abs", "Piecewise": "where"}


@dataclass(frozen=True)
class Edit:
    """One difference between a rule and a reference.

    ``component`` and ``outputs`` say where (empty for a ``constant`` edit, which is
    program-wide); ``old`` and ``new`` are what was there and what is there now, as text
    (a value, an op name or an expression).
    """

    kind: str
    component: str
    outputs: tuple[str, ...]
    old: str
    new: str
    weight: float = field(default=1.0, compare=False)

    @property
    def text(self) -> str:
        """The edit in plain words."""
        where = " ".join([self.component, ", ".join(self.outputs)]).strip()
        where = f"{where}: " if where else ""
        return where + _SENTENCES[self.kind].format(old=self.old, new=self.new)

    def to_dict(self) -> dict[str, Any]:
        """The edit as JSON-ready data, with its sentence."""
        d = asdict(self)
        d["outputs"] = list(self.outputs)
        d["text"] = self.text
        return d


_SENTENCES = {
    "constant": "{old} → {new}",
    "number": "{old} → {new}",
    "op": "{old} replaced by {new}",
    "term_added": "term {new} added",
    "term_removed": "term {old} removed",
    "factor_added": "factor {new} added",
    "factor_removed": "factor {old} removed",
    "wrapped": "{old} wrapped into {new}",
    "unwrapped": "{old} reduced to {new}",
    "replaced": "{old} replaced by {new}",
    "constant_output": "became the constant {new} (was {old})",
    "component_removed": "removed ({new} pass through)",
}


@dataclass(frozen=True)
class Explanation:
    """How ``name`` differs from reference ``reference`` (no edits: the same rule)."""

    name: str
    reference: str
    edits: tuple[Edit, ...]
    same_rule: bool

    @property
    def distance(self) -> float:
        """How far apart the two are: the edits' total weight (0: the same rule)."""
        return 0.0 if self.same_rule else sum(e.weight for e in self.edits)

    def text(self) -> str:
        """The explanation in plain words: a headline, then one line per edit."""
        if self.same_rule:
            return f"{self.name}: the same rule as {self.reference}"
        n = len(self.edits)
        lines = [f"{self.name} vs {self.reference}: {n} difference{'s' * (n != 1)}"]
        lines += [f"  - {e.text}" for e in self.edits]
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: ``vs ppo.evz: eps 0.2 → 0.3; ...``."""
        if self.same_rule:
            return f"same rule as {self.reference}"
        return f"vs {self.reference}: " + "; ".join(e.text for e in self.edits)

    def to_dict(self) -> dict[str, Any]:
        """The explanation as JSON-ready data."""
        return {
            "name": self.name,
            "reference": self.reference,
            "same_rule": self.same_rule,
            "distance": self.distance,
            "edits": [e.to_dict() for e in self.edits],
        }


# ----------------------------------------------------------------------------- references


def reference_programs() -> dict[str, Program]:
    """The reference programs shipped with evozero, by file name (``ppo.evz`` ...)."""
    return dict(_references())


@functools.cache
def _references() -> tuple[tuple[str, Program], ...]:
    root = resources.files("evozero.programs")
    found = sorted(p.name for p in root.iterdir() if p.name.endswith(".evz"))
    return tuple((n, dsl.parse((root / n).read_text(), filename=n)) for n in found)


@functools.lru_cache(maxsize=256)
def _key(program: Program) -> str | None:
    try:
        key = canonical_key(program)
    except CanonUnavailable:
        return None
    return key if key.startswith("s:") else None  # only sympy keys decide "same rule"


# ----------------------------------------------------------------------------- printing


class _Printer(StrPrinter):
    """sympy's text with the program's op names (``min``, ``max``, ``abs``, ``where``)."""

    def _call(self, name: str, args: Iterable[sympy.Basic]) -> str:
        return f"{name}({', '.join(self._print(a) for a in args)})"

    def _print_Min(self, e: sympy.Min) -> str:
        return self._call("min", e.args)

    def _print_Max(self, e: sympy.Max) -> str:
        return self._call("max", e.args)

    def _print_Abs(self, e: sympy.Abs) -> str:
        return self._call("abs", e.args)

    def _print_Piecewise(self, e: sympy.Piecewise) -> str:
        (a, cond), (b, _) = e.args  # the one Piecewise the op table builds: where
        return f"where({self._print(cond)}, {self._print(a)}, {self._print(b)})"


def show(expr: sympy.Basic) -> str:
    """An expression as text, numbers as the float32 values the program uses."""
    return _Printer().doprint(display_numbers(expr))


def _op_name(expr: sympy.Basic) -> str:
    name = type(expr).__name__
    if isinstance(expr, sympy.Pow) and expr.exp == 2:
        return "square"
    return _OP_NAMES.get(name, name.lower())


def _operands(expr: sympy.Basic) -> tuple[sympy.Basic, ...]:
    """What an op applies to: ``x`` for ``x**2`` (the op ``square``), else the arguments."""
    if isinstance(expr, sympy.Pow) and expr.exp == 2:
        return (expr.base,)
    return expr.args


# ----------------------------------------------------------------------------- expressions


@functools.lru_cache(maxsize=64)
def _exprs(program: Program, shared: frozenset[str]) -> dict[tuple[str, str], sympy.Expr]:
    """Every output of every component; constants not in ``shared`` are their values."""
    values = {
        input_symbol(c.name): literal(c.value) for c in program.constants if c.name not in shared
    }
    out: dict[tuple[str, str], sympy.Expr] = {}
    for kind in KINDS:
        for name, e in component_exprs(program, kind).items():
            out[kind, name] = e.xreplace(values)
    return out


def _live(exprs: dict[tuple[str, str], sympy.Expr]) -> set[tuple[str, str]]:
    """The outputs the loss depends on (post's read by the loss, scan's read by post,
    carries read by live scan outputs)."""
    live = {("objective", "loss")}
    names = {s.name for s in exprs["objective", "loss"].free_symbols}
    live |= {("post", o) for o in OUTPUTS["post"] if o in names}
    names = {s.name for k in live if k[0] == "post" for s in exprs[k].free_symbols}
    stack = [("scan", o) for o in OUTPUTS["scan"] if o in names]
    while stack:
        k = stack.pop()
        if k in live or k not in exprs:
            continue
        live.add(k)
        for s in exprs[k].free_symbols:
            if s.name.endswith("[t+1]"):
                stack.append(("scan", s.name[: -len("[t+1]")]))
    return live


# ----------------------------------------------------------------------------- the diff


def _multiset_diff(
    a: Sequence[sympy.Basic], b: Sequence[sympy.Basic]
) -> tuple[list[sympy.Basic], list[sympy.Basic]]:
    rest = list(b)
    only_a = []
    for x in a:
        if x in rest:
            rest.remove(x)
        else:
            only_a.append(x)
    return only_a, rest


def _weight(edits: Iterable[Edit]) -> float:
    return sum(e.weight for e in edits)


def _pair(
    old: list[sympy.Basic],
    new: list[sympy.Basic],
    ctx: tuple[str, str],
    part: str,
    whole: tuple[sympy.Basic, sympy.Basic],
) -> list[Edit]:
    """Edits between the unmatched terms (``part="term"``), factors or arguments of two
    sums, products or min/max ``whole``: a term that changed a little is one edit inside
    it, one that changed more than removing and adding it would say is removed and added.
    A changed number is shown with the sum or product around it (``eps + 1 → eps + 0.5``)."""
    if len(old) == 1 and len(new) == 1:
        if old[0].is_Number and new[0].is_Number and part != "argument":
            return [_edit("number", ctx, whole[0], whole[1])]
        return _diff(old[0], new[0], ctx)
    edits: list[Edit] = []
    new = list(new)
    for x in old:
        best: tuple[float, int, list[Edit]] | None = None
        for j, y in enumerate(new):
            d = _diff(x, y, ctx)
            if best is None or _weight(d) < best[0]:
                best = (_weight(d), j, d)
        if best is not None and best[0] < _size(x) + _size(new[best[1]]):
            edits += best[2]
            new.pop(best[1])
        else:
            edits.append(_edit(f"{part}_removed", ctx, x, "", _size(x)))
    edits += [_edit(f"{part}_added", ctx, "", y, _size(y)) for y in new]
    return edits


def _size(e: sympy.Basic) -> float:
    return 1.0 + 0.25 * sympy.count_ops(e)


def _edit(kind: str, ctx: tuple[str, str], old: Any, new: Any, weight: float = 1.0) -> Edit:
    """An edit whose ``old``/``new`` may still be expressions (shown by :func:`_merge`:
    printing is slow, and most trial edits of :func:`_pair` are thrown away)."""
    return Edit(kind, ctx[0], (ctx[1],), old, new, weight)


def _shown(x: Any) -> str:
    return x if isinstance(x, str) else show(x)


def _parts(e: sympy.Basic, head: type) -> tuple[sympy.Basic, ...]:
    if e == 0 and head is sympy.Add:
        return ()  # an empty sum: every term of the other side is added
    return e.args if isinstance(e, head) else (e,)


def _diff(a: sympy.Basic, b: sympy.Basic, ctx: tuple[str, str]) -> list[Edit]:
    """The edits that turn expression ``a`` into ``b``."""
    if a == b:
        return []
    if a.is_Number and b.is_Number:
        return [_edit("number", ctx, a, b)]
    for head, part in ((sympy.Add, "term"), (sympy.Mul, "factor")):
        if (
            (isinstance(a, head) and isinstance(b, head))
            or (
                # one side is a sum (or a product) and the other one of its terms (factors),
                # or (a sum) anything else: terms removed and added
                (isinstance(a, head) or isinstance(b, head))
                and (head is sympy.Add or a in b.args or b in a.args)
            )
            or (head is sympy.Add and 0 in (a, b))
        ):
            old, new = _multiset_diff(_parts(a, head), _parts(b, head))
            return _pair(old, new, ctx, part, (a, b))
    if a.func == b.func and len(a.args) == len(b.args) and a.args:
        if a.func in (sympy.Min, sympy.Max):  # unordered arguments
            old, new = _multiset_diff(a.args, b.args)
            return _pair(old, new, ctx, "argument", (a, b))
        return [e for x, y in zip(a.args, b.args, strict=True) for e in _diff(x, y, ctx)]
    if a.args and _operands(a) == _operands(b):
        return [_edit("op", ctx, _op_name(a), _op_name(b))]
    if b in _operands(a):
        return [_edit("unwrapped", ctx, a, b)]
    if a in _operands(b):
        return [_edit("wrapped", ctx, a, b)]
    return [_edit("replaced", ctx, a, b, _size(a) + _size(b))]


def _merge(edits: Iterable[Edit]) -> list[Edit]:
    """One edit per change: the same change in several outputs of a component (an
    advantage and the carry it equals) is listed once, with all of them."""
    merged: dict[tuple[str, str, str, str], Edit] = {}
    for e in edits:
        k = (e.kind, e.component, e.old, e.new)
        if k in merged:
            m = merged[k]
            merged[k] = Edit(m.kind, m.component, m.outputs + e.outputs, m.old, m.new, m.weight)
        else:
            merged[k] = e
    return list(merged.values())


def explain_against(
    program: Program,
    reference: Program,
    name: str = "rule",
    reference_name: str = "reference",
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Explanation:
    """How ``program`` differs from ``reference``; ValueError if it cannot be said within
    ``timeout`` seconds (None: no bound) or the program is too large for sympy."""
    return _bounded(
        lambda: _shown_edits(_explain_against(program, reference, name, reference_name)),
        name,
        timeout,
    )


def _bounded(work: Callable[[], Explanation], name: str, timeout: float | None) -> Explanation:
    """``work()`` under a wall-clock bound: sympy on an evolved rule has no size bound of
    its own that keeps it fast, and a report must not hang on one rule."""
    try:
        return call_with_time_limit(work, timeout)
    except TimeLimitExceeded:
        raise ValueError(f"{name}: comparing took longer than {timeout} s") from None
    except (ExpressionTooLarge, RecursionError) as e:
        raise ValueError(f"{name}: too large to compare symbolically ({e})") from None


def _explain_against(
    program: Program, reference: Program, name: str = "rule", reference_name: str = "reference"
) -> Explanation:
    """:func:`explain_against` with the edits' expressions not yet printed."""
    key = _key(program)
    if key is not None and key == _key(reference):
        return Explanation(name, reference_name, (), True)
    ref_consts = reference.constant_values
    prog_consts = program.constant_values
    shared = frozenset(ref_consts) & frozenset(prog_consts)
    ref, new = _exprs(reference, shared), _exprs(program, shared)
    live_ref, live_new = _live(ref), _live(new)
    edits: list[Edit] = []
    used = {
        s.name
        for k in live_ref | live_new
        for e in (ref.get(k), new.get(k))
        if e is not None
        for s in e.free_symbols
    }
    for c in sorted(shared & used, key=list(ref_consts).index):
        if ref_consts[c] != prog_consts[c]:
            old, new_value = format_literal(ref_consts[c]), format_literal(prog_consts[c])
            edits.append(Edit("constant", "", (), f"{c} {old}", new_value))
    for kind in KINDS:
        outs = [k for k in ref if k[0] == kind and k in new and k in live_ref | live_new]
        passes = [k for k in outs if new[k] == input_symbol(k[1]) and kind == "post"]
        if outs and len(passes) == len(outs) and any(ref[k] != new[k] for k in outs):
            names = ", ".join(k[1] for k in outs)
            edits.append(Edit("component_removed", kind, (), "", names, 1.0 + len(outs)))
            continue
        for k in outs:
            if new[k].is_Number and not ref[k].is_Number:
                edits.append(_edit("constant_output", k, ref[k], new[k], 2.0))
            else:
                edits += _diff(ref[k], new[k], k)
    return Explanation(name, reference_name, tuple(_merge(edits)), False)


def _shown_edits(x: Explanation) -> Explanation:
    edits = (
        Edit(e.kind, e.component, e.outputs, _shown(e.old), _shown(e.new), e.weight)
        for e in x.edits
    )
    return Explanation(x.name, x.reference, tuple(edits), x.same_rule)


def explain(
    program: Program,
    name: str = "rule",
    references: dict[str, Program] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Explanation:
    """How ``program`` differs from the nearest reference program (ties: by file name);
    ValueError if it cannot be said within ``timeout`` seconds (None: no bound) or the
    program is too large for sympy."""
    refs = reference_programs() if references is None else references
    if not refs:
        raise ValueError("no reference programs to compare with")

    def nearest() -> Explanation:
        found = [_explain_against(program, p, name, n) for n, p in sorted(refs.items())]
        return _shown_edits(min(found, key=lambda x: x.distance))

    return _bounded(nearest, name, timeout)
