"""LaTeX of programs: one ``aligned`` block per component, as written.

Each statement is built with the ops' sympy forms (:attr:`evozero.program.ops.Op.sympy`),
unevaluated so that it reads as written, and printed by ``sympy.latex`` with the protected
and batch ops spelled out (:class:`_LatexPrinter`). A statement sympy fails on (it still
evaluates some parts, such as the conditions of nested ``where``) is printed as its
``.evz`` text in ``\texttt``, so every valid program has a LaTeX form.
"""

from __future__ import annotations

from typing import Any

import sympy
from sympy.printing.latex import LatexPrinter

from evozero.export.pseudocode import live_program
from evozero.program.model import Program
from evozero.program.normal_form import Node, expression_forest, is_temp
from evozero.program.ops import OPS
from evozero.program.printer import format_literal, render_expr
from evozero.program.symbolic import display_number, display_numbers
from evozero.program.vocabulary import COMPONENTS

__all__ = ["latex", "latex_expr"]


def _power(text: str, exp: str | None) -> str:
    return text if exp is None else rf"\left({text}\right)^{{{exp}}}"


class _LatexPrinter(LatexPrinter):
    """sympy's LaTeX printer with the protected and batch ops of :mod:`evozero.program.ops`.

    sympy prints a power of a function by passing ``exp`` (``square(exp(x))``).
    """

    def _print_pdiv(self, expr: sympy.Expr, exp: str | None = None) -> str:
        a, b = expr.args
        return _power(rf"\frac{{{self._print(a)}}}{{{self._print(b)}}}", exp)

    def _print_plog(self, expr: sympy.Expr, exp: str | None = None) -> str:
        return _power(rf"\log\left|{self._print(expr.args[0])}\right|", exp)

    def _print_pexp(self, expr: sympy.Expr, exp: str | None = None) -> str:
        return _power(rf"\exp\left({self._print(expr.args[0])}\right)", exp)

    def _batch(self, name: str, expr: sympy.Expr, exp: str | None) -> str:
        return _power(rf"\operatorname{{{name}}}\left({self._print(expr.args[0])}\right)", exp)

    def _print_mean(self, expr: sympy.Expr, exp: str | None = None) -> str:
        return self._batch("mean", expr, exp)

    def _print_std(self, expr: sympy.Expr, exp: str | None = None) -> str:
        return self._batch("std", expr, exp)

    def _print_normalize(self, expr: sympy.Expr, exp: str | None = None) -> str:
        return self._batch("normalize", expr, exp)


def _latex_symbol(name: str) -> sympy.Symbol:
    # Temporaries print as t_{k}; carries' t+1 symbols keep their bracket.
    return sympy.Symbol(f"t_{name[1:]}" if is_temp(name) else name, real=True)


def _sympy_statement(node: Node) -> sympy.Expr:
    """A statement's expression with the ops' sympy forms, unevaluated (as written).

    Call inside ``sympy.evaluate(False)``. Directly nested sums and products are
    flattened (``(a + b) - c`` prints as ``a + b - c``); nothing is reordered.
    """
    if isinstance(node, str):
        return _latex_symbol(node)
    if isinstance(node, float):
        return display_number(node)
    expr = OPS[node.op].sympy(*[_sympy_statement(a) for a in node.args])
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        args: list[sympy.Expr] = []
        for a in expr.args:
            args += list(a.args) if type(a) is type(expr) else [a]
        expr = type(expr)(*args, evaluate=False)
    return expr


def _statement_latex(node: Node) -> str:
    """A statement's right-hand side as written, or its ``.evz`` text where sympy fails."""
    try:
        with sympy.evaluate(False):
            return _latex_text(_sympy_statement(node), keep_order=True)
    except Exception:  # a sympy failure on an odd expression (recursion included)
        text = render_expr(node).replace("_", r"\_")
        return rf"\texttt{{{text}}}"


def latex_expr(expr: sympy.Basic) -> str:
    """LaTeX of a sympy expression from this module or :mod:`evozero.symbolic`, numbers
    shown as the float32 values the program computes with
    (:func:`~evozero.program.symbolic.display_numbers`)."""
    return _latex_text(display_numbers(expr))


def _latex_text(expr: sympy.Basic, *, keep_order: bool = False) -> str:
    """LaTeX of an expression whose numbers are already shown as they should print."""
    # Carry values from step t+1 (symbolic.carry_symbol) print as g_{t+1}.
    names = {
        s: f"{LatexPrinter().doprint(sympy.Symbol(s.name[:-5]))}_{{t+1}}"
        for s in expr.free_symbols
        if s.name.endswith("[t+1]")
    }
    settings: dict[str, Any] = {"mul_symbol": "dot", "symbol_names": names}
    if keep_order:
        settings["order"] = "none"
    return _LatexPrinter(settings).doprint(expr)


def latex(program: Program) -> str:
    """The live program as LaTeX: the constants, then an ``aligned`` block per component.

    Statements are written ``target \\leftarrow expression`` (names may be rebound);
    a carry read before it is rebound is its value from step t+1.
    """
    live = live_program(program)
    lines = [
        r"% div, log, sqrt and exp are protected (evozero.ops): |b| >= 1e-6 in a / b,"
        r" log|x| >= log(1e-6), sqrt|x|, exp(min(x, 80))"
    ]
    if live.constants:
        consts = r",\quad ".join(
            f"{_latex_text(_latex_symbol(c.name))} = {format_literal(c.value)}"
            for c in live.constants
        )
        lines += ["% constants", consts]
    for kind in COMPONENTS:
        comp = live.component(kind)
        forest = expression_forest(comp)
        note = {
            "scan": "backwards over t = T-1, ..., 0",
            "post": "once over the whole rollout",
            "objective": "per sample, minimized",
        }[kind]
        carries = "".join(f"; carry {c.name} = {c.init} at t = T-1" for c in comp.carries)
        lines.append(f"% {kind}: {note}{carries}")
        if not forest:
            lines.append(r"% (outputs pass through)")
            continue
        rows = [
            f"{_latex_text(_latex_symbol(target))} &\\leftarrow {_statement_latex(node)}"
            for target, node in forest
        ]
        lines += [r"\begin{aligned}", " \\\\\n".join(rows), r"\end{aligned}"]
    return "\n".join(lines) + "\n"
