"""Every number evozero shows is the float32 value the program computes with.

``show`` prints a program's live part as ``.evz`` text, ``show --simplify`` as simplified
expressions (text or LaTeX), ``show --latex`` as LaTeX statements; exports carry the
``.evz`` text in their docstrings. On random programs with random constants, the printed
forms are read back (the ``.evz`` text by the DSL parser, expressions by sympy's parser,
never Python's eval), evaluated at random inputs and compared with the reference
evaluator; the LaTeX forms must show the same numbers as the text forms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np
import sympy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sympy.parsing.sympy_parser import parse_expr

from evozero import export
from evozero.program import Program, dsl, random_program
from evozero.program.evaluate import (
    OBJECTIVE_INPUTS,
    POST_INPUTS,
    SCAN_INPUTS,
    run_objective,
    run_post,
    run_scan,
)
from evozero.program.ops import mean, normalize, std, sympy_functions
from evozero.program.symbolic import ExpressionTooLarge, component_exprs
from evozero.program.vocabulary import COMPONENTS, INPUTS

f32 = np.float32
SQRT_2R = "scan:\n  adv = sqrt(2 * r)\n  vtarget = v\nobjective:\n  loss = -logp * adv\n"

# A number as sympy's str printer writes a Float, or the .evz text a non-integer literal.
TEXT_NUMBER = re.compile(r"(?<![\w.])(\d+\.\d*(?:e[+-]?\d+)?|\d+e[+-]?\d+)")
# A number as sympy's LaTeX printer writes a Float (``1.0 \cdot 10^{-8}``).
LATEX_NUMBER = re.compile(r"(\d+\.\d*)(?: \\cdot 10\^\{(-?\d+)\})?")


def text_numbers(text: str) -> list[float]:
    """The magnitudes of the non-integer numbers in plain text, sorted."""
    return sorted(float(m) for m in TEXT_NUMBER.findall(text))


def latex_numbers(text: str) -> list[float]:
    """The magnitudes of the non-integer numbers in LaTeX output, sorted: in the
    expressions, and in the constants' line (written as in ``.evz`` text); other comment
    lines are skipped."""
    lines = text.splitlines()
    consts = [
        ln
        for i, ln in enumerate(lines)
        if ln.startswith("% const ") or (i and lines[i - 1] == "% constants")
    ]
    body = "\n".join(ln for ln in lines if not ln.startswith("%") and ln not in consts)
    return sorted(
        [float(f"{m}e{e or 0}") for m, e in LATEX_NUMBER.findall(body)]
        + text_numbers("\n".join(consts))
    )


# ----------------------------------------------------------------------------- evaluation


def evaluate_at(
    live: Program, seed: int
) -> tuple[dict[str, dict[str, float]], dict[tuple[str, str], float]]:
    """One random input point per component: the symbols' values by name, and the
    reference evaluator's outputs there. Scan runs one step (T = 1), so each carry's value
    from step t+1 is its initial value; post runs on one element, so mean(x) = x,
    std(x) = 0 and normalize(x) = 0."""
    rng = np.random.default_rng(seed)
    progress = 0.3
    x = {n: (rng.normal(size=(1, 1)) * 2).astype(f32) for n in SCAN_INPUTS}
    pin = {n: (rng.normal(size=1) * 2).astype(f32) for n in POST_INPUTS}
    oin = {n: (rng.normal(size=1) * 2).astype(f32) for n in OBJECTIVE_INPUTS}
    consts = {c.name: float(f32(c.value)) for c in live.constants}
    env = {kind: {"progress": float(f32(progress)), **consts} for kind in COMPONENTS}
    env["scan"].update({n: float(a[0, 0]) for n, a in x.items()})
    for c in live.scan.carries:
        env["scan"][f"{c.name}[t+1]"] = 0.0 if c.init == "0" else env["scan"]["v_next"]
    env["post"].update({n: float(a[0]) for n, a in pin.items()})
    env["objective"].update({n: float(a[0]) for n, a in oin.items()})
    with np.errstate(all="ignore"):
        env["objective"]["ratio"] = float(np.exp(oin["logp"][0] - oin["logp_old"][0]))
    ref: dict[tuple[str, str], float] = {}
    ref.update({("scan", n): float(a.ravel()[0]) for n, a in run_scan(live, x, progress).items()})
    ref.update({("post", n): float(a[0]) for n, a in run_post(live, pin, progress).items()})
    ref[("objective", "loss")] = float(run_objective(live, oin, progress).loss[0])
    return env, ref


def sympy_value(expr: sympy.Expr, env: Mapping[str, float]) -> float:
    """``expr`` at the point ``env`` (30 digits), or NaN where it is not a real number."""
    expr = (
        expr.replace(mean, lambda a: a)
        .replace(std, lambda a: sympy.Integer(0))
        .replace(normalize, lambda a: sympy.Integer(0))
    )
    point = {s: sympy.Float(env[s.name], 30) for s in expr.free_symbols}
    try:
        return float(expr.xreplace(point).evalf(30))
    except (TypeError, ValueError):  # complex, or not a number
        return math.nan


def close(got: float, want: float, rtol: float, atol: float) -> bool:
    return math.isfinite(got) and math.isfinite(want) and abs(got - want) <= atol + rtol * abs(want)


# ----------------------------------------------------------------------------- reading back


def read_simplified(
    text: str, names: set[str]
) -> tuple[dict[str, float], dict[tuple[str, str], sympy.Expr]]:
    """``simplified_text``'s constants (their float32 values) and expressions, parsed."""
    local: dict[str, object] = {n: sympy.Symbol(n, real=True) for n in names}
    local.update({f"{n}__next": sympy.Symbol(f"{n}[t+1]", real=True) for n in names})
    local.update(sympy_functions())
    consts: dict[str, float] = {}
    exprs: dict[tuple[str, str], sympy.Expr] = {}
    kind = ""
    for line in text.splitlines():
        if line.startswith("const "):
            for item in line.removeprefix("const ").split(", "):
                name, value = item.split(" = ")
                consts[name] = float(f32(float(value)))
        elif not line.startswith(" "):
            kind = line.split(":")[0]
        else:
            name, rhs = line.strip().split(" = ", 1)
            if rhs.startswith("<"):  # too large to expand
                continue
            rhs = re.sub(r"(\w+)\[t\+1\]", r"\1__next", rhs.split("  # ")[0])
            exprs[(kind, name)] = parse_expr(rhs, local_dict=local)
    return consts, exprs


def check_simplified(p: Program, seed: int, timeout: float = 2.0) -> int:
    """``show --simplify``'s text, evaluated, against the reference evaluator; its LaTeX
    shows the same numbers. Returns how many outputs could be compared: those whose exact
    (real-number) expression agrees with the float32 evaluator at the point."""
    live = export.live_program(p)
    names = {c.name for c in live.constants} | set(live.scan.carry_names)
    names |= {n for kind in INPUTS.values() for n in kind}
    text = export.simplified_text(p, timeout=timeout)
    consts, printed = read_simplified(text, names)
    assert consts == {c.name: float(f32(c.value)) for c in live.constants}, text
    env, ref = evaluate_at(live, seed)
    compared = 0
    for (kind, name), expr in printed.items():
        want = ref[(kind, name)]
        try:
            exact = component_exprs(live, kind, outputs=[name], max_degree=64)[name]
        except ExpressionTooLarge:
            continue
        if not close(sympy_value(exact, env[kind]), want, 1e-5, 1e-6):
            continue  # float32 rounding or overflow, not printing, separates them
        got = sympy_value(expr, env[kind])
        assert close(got, want, 1e-4, 1e-5), f"{kind}: {name} = {expr}: {got} != {want}"
        compared += 1
    latex = export.simplified_text(p, latex=True, timeout=timeout)
    if "not simplified" not in text and "not simplified" not in latex:
        assert latex_numbers(latex) == text_numbers(text), (text, latex)
    return compared


def check_evz(p: Program, seed: int) -> None:
    """``show``'s ``.evz`` text (also the export docstrings' pseudocode) parses back to a
    program that computes the same float32 values; ``show --latex`` shows its numbers."""
    text = export.pseudocode(p)
    back = dsl.parse(text)
    live = export.live_program(p)
    env, ref = evaluate_at(live, seed)
    _, ref_back = evaluate_at(back, seed)
    assert ref_back.keys() == ref.keys()
    for key, want in ref.items():
        assert ref_back[key] == want or (math.isnan(want) and math.isnan(ref_back[key])), key
    latex = export.latex(p)
    assert latex_numbers(latex) == text_numbers(text), (text, latex)


# ----------------------------------------------------------------------------- the tests


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(seed=st.integers(0, 2**32 - 1), p_literal=st.sampled_from([0.15, 0.5]))
def test_shown_numbers_are_computed_numbers(seed: int, p_literal: float) -> None:
    p = random_program(np.random.default_rng(seed), max_instrs=6, p_literal=p_literal)
    check_evz(p, seed)
    assume(check_simplified(p, seed) > 0)


def test_folded_numbers_keep_their_precision() -> None:
    """sqrt(2 * r) simplifies to sqrt(2) * sqrt(|r|): the number shown is float32
    sqrt(2) = 1.4142135, not a short decimal's low-precision 1.0."""
    p = dsl.parse(SQRT_2R)
    assert "adv = 1.4142135*sqrt(Abs(r))" in export.simplified_text(p)
    assert r"1.4142135 \cdot \sqrt{\left|{r}\right|}" in export.simplified_text(p, latex=True)
    assert check_simplified(p, 0) == 5
