"""Simplified forms: each component's live outputs as simplified sympy expressions.

Symbolic execution is :func:`evozero.program.symbolic.component_exprs` (constants stay
symbols); each output is simplified with ``sympy.simplify`` under a time limit
(:func:`evozero.program.time_limit.call_with_time_limit`), and kept unsimplified when the
limit passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from evozero.export.latex import latex_expr
from evozero.export.pseudocode import live_program
from evozero.program.model import Program
from evozero.program.printer import format_literal
from evozero.program.time_limit import call_with_time_limit
from evozero.program.vocabulary import COMPONENTS

__all__ = ["SimplifiedOutput", "simplified", "simplified_text", "text_expr"]


def _simplify_bounded(expr: sympy.Expr, timeout: float) -> tuple[sympy.Expr, bool]:
    """``sympy.simplify(expr)`` given ``timeout`` seconds.

    Returns ``(expression, simplified)``; on timeout or a sympy failure the input comes
    back, with False.
    """
    if expr.is_Atom:
        return expr, True
    try:
        # ratio 1: never longer than the input
        return call_with_time_limit(lambda: sympy.simplify(expr, ratio=1), timeout), True
    except Exception:  # the time limit, or a sympy failure: keep the input
        return expr, False


@dataclass(frozen=True)
class SimplifiedOutput:
    """One output's expression; ``simplified`` is False when simplify timed out or failed
    (``expr`` is then the unsimplified expression), ``expr`` is None when the expression was
    too large to build."""

    expr: sympy.Expr | None
    simplified: bool


def simplified(
    program: Program, *, timeout: float = 5.0, max_degree: int = 64
) -> dict[str, dict[str, SimplifiedOutput]]:
    """Each component's live outputs as simplified sympy expressions.

    Symbolic execution is :func:`evozero.symbolic.component_exprs` (constants stay
    symbols). Each output is simplified given ``timeout`` seconds; on timeout the
    unsimplified expression is kept.
    """
    from evozero.program.symbolic import ExpressionTooLarge, component_exprs

    live = live_program(program)
    out: dict[str, dict[str, SimplifiedOutput]] = {}
    for kind in COMPONENTS:
        try:
            exprs = component_exprs(live, kind, max_degree=max_degree)
        except ExpressionTooLarge:
            out[kind] = {n: SimplifiedOutput(None, False) for n in live.component(kind).outputs}
            continue
        out[kind] = {n: SimplifiedOutput(*_simplify_bounded(e, timeout)) for n, e in exprs.items()}
    return out


def text_expr(expr: sympy.Basic) -> str:
    """Plain text of a sympy expression, numbers shown as short decimals."""
    from evozero.program.symbolic import display_numbers

    return sympy.sstr(display_numbers(expr))


def simplified_text(program: Program, *, latex: bool = False, timeout: float = 5.0) -> str:
    """:func:`simplified` as text (``name = expr`` per output) or LaTeX (``aligned`` blocks).

    An output whose simplification timed out is shown unsimplified and marked.
    """
    live = live_program(program)
    lines = []
    if live.constants:
        consts = ", ".join(f"{c.name} = {format_literal(c.value)}" for c in live.constants)
        lines.append(f"% const {consts}" if latex else f"const {consts}")
    for kind, outs in simplified(program, timeout=timeout).items():
        carries = ", ".join(f"{c}[t+1]" for c in live.component(kind).carry_names)
        note = f" ({carries}: value from step t+1)" if carries else ""
        lines.append(f"% {kind}:{note}" if latex else f"{kind}:{note}")
        rows = []
        for name, out in outs.items():
            why = "" if out.simplified else "  # not simplified (timed out)"
            if out.expr is None:
                rows.append(f"  {name} = <too large to expand>")
            elif latex:
                rows.append(f"{name} &= {latex_expr(out.expr)}")
            else:
                rows.append(f"  {name} = {text_expr(out.expr)}{why}")
        if latex:
            rows = [r.strip() for r in rows]
            lines += [r"\begin{aligned}", " \\\\\n".join(rows), r"\end{aligned}"]
            slow = [n for n, o in outs.items() if o.expr is not None and not o.simplified]
            if slow:
                lines.append(f"% not simplified (timed out): {', '.join(slow)}")
        else:
            lines += rows
    return "\n".join(lines) + "\n"
