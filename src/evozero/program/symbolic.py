"""Symbolic execution of program components into sympy expressions.

Each component is executed instruction by instruction, applying each op's sympy form from
the op table (:data:`evozero.ops.OPS`; there is no second copy of op semantics here), and
its outputs come out as sympy expressions over symbols:

* a component input ``x`` is ``Symbol("x", real=True)`` (in the objective ``ratio`` is an
  input symbol of its own, not ``exp(logp - logp_old)``);
* a constant ``c`` is ``Symbol("c", real=True)``, or with ``substitute_constants=True`` its
  value, exactly like a literal;
* a literal is the *exact* value of its float32 as a sympy ``Rational`` (``Integer`` when
  integral): float32 values are dyadic rationals, so this is lossless, ``1.0`` and ``1``
  are the same ``Integer(1)``, ``0.99`` is always ``8304721/8388608`` and products of
  literals fold exactly. (``sympy.Float`` would not do: since sympy 1.13 ``Float(1) != 1``
  and ``x*1.0`` does not collapse to ``x``.) :func:`display_numbers` shows every number
  as the float32 value the program computes with, in its shortest decimal, for printing;
* in ``scan`` the value of carry ``g`` from step t+1 (what reading ``g`` before it is
  reassigned gives) is ``Symbol("g[t+1]", real=True)`` (see :func:`carry_symbol`); the
  output named ``g`` is the carry's value at t.

Everything is interpreted over the reals: float32 rounding is ignored, so expressions
that differ only in rounding (``(a + b) + c`` and ``a + (b + c)``) are equal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import sympy

from evozero.program.liveness import liveness
from evozero.program.model import Program
from evozero.program.ops import OPS
from evozero.program.printer import format_literal
from evozero.program.vocabulary import INPUTS, MAX_DEPTH, OUTPUTS

__all__ = [
    "ExpressionTooLarge",
    "carry_symbol",
    "component_exprs",
    "display_number",
    "display_numbers",
    "input_symbol",
    "literal",
    "output_names",
]


class ExpressionTooLarge(ValueError):
    """Raised when an expression would exceed the ``max_degree`` or ``max_depth`` bound
    (see :func:`component_exprs`)."""


def input_symbol(name: str) -> sympy.Symbol:
    """The symbol of a component input or (unsubstituted) constant called ``name``."""
    return sympy.Symbol(name, real=True)


def carry_symbol(name: str) -> sympy.Symbol:
    """The symbol of carry ``name``'s value from step t+1: ``Symbol("name[t+1]")``."""
    return sympy.Symbol(f"{name}[t+1]", real=True)


def literal(value: float) -> sympy.Rational:
    """The exact sympy number of a float32 value (a ``Rational``; ``Integer`` if integral)."""
    f = float(np.float32(value))
    if not math.isfinite(f):
        raise ValueError(f"literal {value!r} is not a finite float32")
    num, den = f.as_integer_ratio()
    return sympy.Rational(num, den)


def output_names(program: Program, kind: str) -> tuple[str, ...]:
    """The outputs of component ``kind``: ``OUTPUTS[kind]`` plus, for scan, its carries."""
    return program.component(kind).outputs


# Degree bound (see component_exprs): how each op can grow the largest integer power or
# the number of literal factors in a product. Ops not listed keep the max over their args.
_DEGREE_SUM = frozenset({"mul", "div"})


def _degree(op: str, args: Sequence[int]) -> int:
    if op in _DEGREE_SUM:
        return sum(args)
    if op == "square":
        return 2 * args[0]
    return max(args)


def _fold(op: str, args: Sequence[sympy.Expr], res: sympy.Expr) -> sympy.Expr:
    """The float32 value of ``op`` on number arguments, exactly (``res`` if not finite)."""
    with np.errstate(all="ignore"):
        vals = [np.float32(float(a)) for a in args]
        out = float(np.asarray(OPS[op].numpy(*vals), dtype=np.float32).reshape(()))
    return literal(out) if math.isfinite(out) else res


def component_exprs(
    program: Program,
    kind: str,
    *,
    substitute_constants: bool = False,
    outputs: Iterable[str] | None = None,
    fold_numbers: bool = False,
    max_degree: int | None = None,
    max_depth: int | None = MAX_DEPTH,
) -> dict[str, sympy.Expr]:
    """Symbolically execute component ``kind`` of ``program``.

    Returns ``{output: expression}`` for each output of the component in order: scan gives
    ``adv``, ``vtarget`` and each carry's value at t (carries in declaration order); post
    gives ``adv`` and ``vtarget`` (an output post does not assign passes its input
    through); objective gives ``loss``. Symbols and numbers are as described in the module
    docstring. Only the instructions the requested outputs depend on are executed.

    Args:
        program: the program.
        kind: ``"scan"``, ``"post"`` or ``"objective"``.
        substitute_constants: put each constant's exact float32 value in place of its
            symbol.
        outputs: restrict the result to these outputs (default: all of them).
        fold_numbers: replace every result of an op on rationals that is not itself a
            rational (``exp(1/2)``, ``plog(3)``, ``sqrt(2)``, ``normalize(-3)``) by the
            exact value of the float32 the op's numpy form computes from its arguments'
            float32 values. Rational results stay exact, so ``gamma * lam`` still folds
            exactly however it is associated. Without it such numbers stay symbolic, and
            some (protected functions of numbers) are not comparable, which makes
            ``Min``/``Max`` raise.
        max_degree: if given, raise :class:`ExpressionTooLarge` *before* building an
            expression whose degree bound exceeds it. The bound starts at 1 for inputs,
            constants and literals, adds up under ``mul``/``div``, doubles under
            ``square`` and is the max of the arguments otherwise. sympy folds powers of
            numbers exactly and eagerly, in single C-level big-integer operations that no
            time limit can interrupt (``0.99`` squared 30 times is a number with 2**30 *
            24 bits); bounding the degree bounds those numbers' sizes.
        max_depth: if given, raise :class:`ExpressionTooLarge` *before* building an
            expression whose nesting depth bound exceeds it: 0 for inputs, constants and
            literals, one more than the deepest argument for an op. Named steps chain
            (``y = exp(y)`` many times) into one deep expression, and sympy's constructors,
            printers and ``expand`` recurse several Python frames per level; the default,
            :data:`~evozero.program.vocabulary.MAX_DEPTH` (the deepest expression a
            statement may write), keeps them far from Python's recursion limit.
    """
    comp = program.component(kind)
    names = comp.outputs if outputs is None else tuple(outputs)
    unknown = set(names) - set(comp.outputs)
    if unknown:
        raise KeyError(f"{kind} has no outputs {sorted(unknown)}")
    env: dict[str, sympy.Expr] = {n: input_symbol(n) for n in INPUTS[kind]}
    for c in program.constants:
        env[c.name] = literal(c.value) if substitute_constants else input_symbol(c.name)
    for c in comp.carries:
        env[c.name] = carry_symbol(c.name)
    degree: dict[str, int] = dict.fromkeys(env, 1)
    depth: dict[str, int] = dict.fromkeys(env, 0)
    for i in liveness(comp.instrs, names).instrs:
        ins = comp.instrs[i]
        if max_depth is not None:
            d = 1 + max((depth[a] for a in ins.args if isinstance(a, str)), default=0)
            if d > max_depth:
                raise ExpressionTooLarge(
                    f"{kind}: {ins.target} = {ins.op}(...) nests {d} > {max_depth} deep"
                )
            depth[ins.target] = d
        if max_degree is not None:
            d = _degree(ins.op, [degree[a] if isinstance(a, str) else 1 for a in ins.args])
            if d > max_degree:
                raise ExpressionTooLarge(
                    f"{kind}: {ins.target} = {ins.op}(...) has degree bound {d} > {max_degree}"
                )
            degree[ins.target] = d
        args = [env[a] if isinstance(a, str) else literal(a) for a in ins.args]
        res = OPS[ins.op].sympy(*args)
        if fold_numbers and not res.is_Rational and all(a.is_Rational for a in args):
            res = _fold(ins.op, args, res)
        env[ins.target] = res
    for out in OUTPUTS[kind]:
        if out not in env:  # unreachable for valid programs except post pass-through
            env[out] = input_symbol(out)
    return {n: env[n] for n in names}


def display_number(value: float) -> sympy.Expr:
    """A number as shown: the float32 value the program computes with, as the shortest
    decimal that reads back to it (``0.99``, ``1.4142135``), an ``Integer`` when that is
    integral and below 1e6. A value no float32 holds to within its precision (beyond
    float32's range, or so small it would be a denormal that is not exactly ``value``)
    keeps 9 significant digits.

    The result is for printing only: a ``Float`` with the precision of its digits prints
    as written, but sympy arithmetic on it would lose precision, so put it in place
    unevaluated (as :func:`display_numbers` does).
    """
    with np.errstate(over="ignore"):  # beyond float32's range: inf, not shown
        f32 = np.float32(value)
    if float(f32) == value or (np.isfinite(f32) and abs(value) >= np.finfo(np.float32).tiny):
        text = format_literal(f32)
    else:
        text = f"{value:.9g}"
    if "." not in text and "e" not in text:
        return sympy.Integer(int(text))
    # As many digits as written (two in scientific notation: 1.0e+40, not 1.e+40).
    written = len(text.split("e")[0].lstrip("-").replace(".", "").lstrip("0"))
    return sympy.Float(text, max(written, 2 if "e" in text else 1))


def _evaluated(expr: sympy.Basic) -> sympy.Basic:
    """``expr`` with each number-valued part outside exponents evaluated to 17 digits."""
    if isinstance(expr, sympy.Expr) and expr.is_number:
        value = expr.evalf(17)
        if value.is_Number:
            return value
    if isinstance(expr, sympy.Pow) and expr.exp.is_Rational:
        return sympy.Pow(_evaluated(expr.base), expr.exp)
    if not expr.args:
        return expr
    return expr.func(*map(_evaluated, expr.args))


def display_numbers(expr: sympy.Basic) -> sympy.Basic:
    """``expr`` for printing, each number shown by :func:`display_number`.

    Every number-valued part outside exponents (a rational such as ``8304721/8388608``,
    ``sqrt(2)``, ``exp(1/2)``, a numeric coefficient ``2*sqrt(2)``) is evaluated to 17
    digits and shown as the float32 value the program computes with (``0.99``,
    ``2.828427``); exponents stay exact (``sqrt(x)``, ``x**(3/2)``). The shown numbers are
    put in place unevaluated: sympy arithmetic on them would lose precision.
    """
    evaluated = _evaluated(expr)
    reps = {
        f: display_number(float(f)) for f in evaluated.atoms(sympy.Float) if math.isfinite(float(f))
    }
    if not reps:
        return evaluated
    with sympy.evaluate(False):
        return evaluated.xreplace(reps)
