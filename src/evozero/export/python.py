"""Pretty-printing and export of update programs.

Everything here reads a program through one form: the expression forest of its live
code (:func:`evozero.program.expression_forest` of :meth:`Program.live`), the statements
the DSL printer prints. From it come

* :func:`pseudocode`: the live program as ``.evz`` text;
* :func:`latex`: one ``aligned`` block per component, each statement built with the ops'
  sympy forms (unevaluated, so it reads as written) and printed by ``sympy.latex``;
* :func:`simplified`: each component's outputs as sympy expressions
  (:func:`evozero.symbolic.component_exprs`), simplified under a time bound;
* :func:`export_source`: a standalone Python module (numpy or torch, no evozero import)
  with ``scan``, ``post`` and ``objective`` functions.

Export
------
Op semantics come from :mod:`evozero.ops`. Infix ops are written as Python operators
(float32 ``+ - *`` are exact in numpy, numba and torch alike); every other op is written
from the per-backend templates below, which reproduce the op table's numpy and torch
forms (``tests/test_export.py`` checks every op, values and derivatives). Literals are
float32 (``np.float32(0.5)``; in torch, Python numbers, which torch rounds to the
tensor's float32). The numpy module compiles with ``numba.njit``: the helpers are
decorated with numba's ``register_jitable`` when numba is installed (a guarded, optional
import; without numba they are plain functions), scan is an explicit loop over ``t``,
and a helper's scalar result is made a scalar again with ``[()]`` (``np.where`` returns
0-d arrays). The batch reductions accumulate in float64 with numpy's (or torch's) sum,
within rounding of the exactly rounded sum :mod:`evozero.ops` specifies.
"""

from __future__ import annotations

import builtins
import multiprocessing
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sympy
from sympy.printing.latex import LatexPrinter

import evozero
from evozero.program import dsl, ops
from evozero.program.model import Program
from evozero.program.normal_form import Call, Node, expression_forest, is_temp
from evozero.program.ops import OPS, PREC_ATOM, PREC_UNARY
from evozero.program.vocabulary import COMPONENTS, INPUTS

__all__ = [
    "BACKENDS",
    "SimplifiedOutput",
    "export_source",
    "latex",
    "latex_expr",
    "live_program",
    "pseudocode",
    "simplified",
    "simplified_text",
    "text_expr",
    "write_export",
]

#: Export backends.
BACKENDS: tuple[str, ...] = ("numpy", "torch")

# ----------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class _Form:
    """How a non-infix op is written: a call template over rendered args (``{0}``...) and
    the helpers it needs."""

    template: str
    helpers: tuple[str, ...] = ()


def _c(x: np.float32) -> str:
    return _lit_text(float(x))


#: numpy forms of the non-infix ops (``copy`` writes its argument as is).
_NUMPY_FORMS: Mapping[str, _Form] = {
    "div": _Form("safe_div({0}, {1})", ("safe_div",)),
    "abs": _Form("np.abs({0})"),
    "square": _Form("square({0})", ("square",)),
    "sqrt": _Form("safe_sqrt({0})", ("safe_sqrt",)),
    "exp": _Form("safe_exp({0})", ("safe_exp",)),
    "log": _Form("safe_log({0})", ("safe_log",)),
    "tanh": _Form("np.tanh({0})"),
    "sigmoid": _Form("sigmoid({0})", ("sigmoid",)),
    "relu": _Form("relu({0})", ("relu",)),
    "sign": _Form("np.sign({0})"),
    "min": _Form("minimum({0}, {1})", ("minimum",)),
    "max": _Form("maximum({0}, {1})", ("maximum",)),
    "clip": _Form("clip({0}, {1}, {2})", ("clip",)),
    "where": _Form("where({0}, {1}, {2})", ("where",)),
    "copy": _Form("{0}"),
    "mean": _Form("mean({0})", ("mean",)),
    "std": _Form("std({0})", ("std",)),
    "normalize": _Form("normalize({0})", ("normalize",)),
}

_NUMPY_HELPERS: Mapping[str, str] = {
    "safe_div": '''
@_jitable
def safe_div(a, b):
    """Protected division: a / b2, b2 = max(b, 1e-6) if b >= 0 else min(b, -1e-6)."""
    return a / np.where(b >= np.float32(0), np.maximum(b, DIV_EPS), np.minimum(b, -DIV_EPS))[()]
''',
    "square": '''
@_jitable
def square(x):
    """x * x."""
    return x * x
''',
    "safe_sqrt": '''
@_jitable
def safe_sqrt(x):
    """Protected square root: sqrt(|x|)."""
    return np.sqrt(np.abs(x))
''',
    "safe_exp": '''
@_jitable
def safe_exp(x):
    """Clamped exponential: exp(min(x, 80))."""
    return np.exp(np.minimum(x, EXP_MAX))
''',
    "safe_log": '''
@_jitable
def safe_log(x):
    """Protected logarithm: log(max(|x|, 1e-6))."""
    return np.log(np.maximum(np.abs(x), LOG_EPS))
''',
    "sigmoid": '''
@_jitable
def sigmoid(x):
    """1 / (1 + exp(-x)) (exp unclamped: its overflow to inf gives 0)."""
    return np.float32(1) / (np.float32(1) + np.exp(-x))
''',
    "relu": '''
@_jitable
def relu(x):
    """x if x > 0 else 0."""
    return np.where(x > np.float32(0), x, np.float32(0))[()]
''',
    "minimum": '''
@_jitable
def minimum(a, b):
    """a if a < b else b."""
    return np.where(a < b, a, b)[()]
''',
    "maximum": '''
@_jitable
def maximum(a, b):
    """a if a > b else b."""
    return np.where(a > b, a, b)[()]
''',
    "clip": '''
@_jitable
def clip(x, lo, hi):
    """min(max(x, lo), hi): hi wins when lo > hi."""
    m = np.where(x > lo, x, lo)[()]
    return np.where(m < hi, m, hi)[()]
''',
    "where": '''
@_jitable
def where(c, a, b):
    """a if c > 0 else b."""
    return np.where(c > np.float32(0), a, b)[()]
''',
    "mean": '''
@_jitable
def mean(x):
    """Mean over all elements (float64 accumulation), broadcast to x's shape."""
    m = np.float32(np.sum(x.astype(np.float64)) / x.size)
    return np.full(x.shape, m, np.float32)
''',
    "std": '''
@_jitable
def std(x):
    """Population std over all elements (float64 accumulation), broadcast to x's shape."""
    x64 = x.astype(np.float64)
    d = x64 - np.sum(x64) / x.size
    return np.full(x.shape, np.float32(np.sqrt(np.sum(d * d) / x.size)), np.float32)
''',
    "normalize": '''
@_jitable
def normalize(x):
    """(x - mean(x)) / (std(x) + 1e-8), with float32 mean and std over all elements."""
    x64 = x.astype(np.float64)
    m = np.sum(x64) / x.size
    d = x64 - m
    s = np.float32(np.sqrt(np.sum(d * d) / x.size))
    return (x - np.float32(m)) / (s + NORM_EPS)
''',
}

#: torch forms of the non-infix ops; arguments that would be Python numbers are wrapped
#: in ``as_f32`` by the renderer, so templates see tensors.
_TORCH_FORMS: Mapping[str, _Form] = {
    "div": _Form("safe_div({0}, {1})", ("safe_div",)),
    "abs": _Form("torch.abs({0})"),
    "square": _Form("square({0})", ("square",)),
    "sqrt": _Form("safe_sqrt({0})", ("safe_sqrt",)),
    "exp": _Form("safe_exp({0})", ("safe_exp",)),
    "log": _Form("safe_log({0})", ("safe_log",)),
    "tanh": _Form("torch.tanh({0})"),
    "sigmoid": _Form("torch.sigmoid({0})"),
    "relu": _Form("torch.relu({0})"),
    "sign": _Form("torch.sign({0})"),
    "min": _Form("torch.minimum({0}, {1})"),
    "max": _Form("torch.maximum({0}, {1})"),
    "clip": _Form("torch.clamp({0}, {1}, {2})"),
    "where": _Form("torch.where({0} > 0, {1}, {2})"),
    "copy": _Form("{0}"),
    "mean": _Form("mean({0})", ("mean",)),
    "std": _Form("std({0})", ("std",)),
    "normalize": _Form("normalize({0})", ("normalize",)),
}

_TORCH_HELPERS: Mapping[str, str] = {
    "safe_div": '''
def safe_div(a, b):
    """Protected division: a / b2, b2 = max(b, 1e-6) if b >= 0 else min(b, -1e-6)."""
    return a / torch.where(b >= 0, torch.clamp(b, min=DIV_EPS), torch.clamp(b, max=-DIV_EPS))
''',
    "square": '''
def square(x):
    """x * x."""
    return x * x
''',
    "safe_sqrt": '''
def safe_sqrt(x):
    """Protected square root: sqrt(|x|), with derivative 0 (not NaN) at x == 0."""
    zero = x == 0
    s = torch.sqrt(torch.where(zero, torch.ones_like(x), torch.abs(x)))
    return torch.where(zero, torch.zeros_like(x), s)
''',
    "safe_exp": '''
def safe_exp(x):
    """Clamped exponential: exp(min(x, 80))."""
    return torch.exp(torch.clamp(x, max=EXP_MAX))
''',
    "safe_log": '''
def safe_log(x):
    """Protected logarithm: log(max(|x|, 1e-6))."""
    return torch.log(torch.clamp(torch.abs(x), min=LOG_EPS))
''',
    "mean": '''
def mean(x):
    """Mean over all elements (float64 accumulation), broadcast to x's shape."""
    return x.double().mean().float().expand_as(x)
''',
    "std": '''
def std(x):
    """Population std over all elements (float64 accumulation), broadcast to x's shape."""
    x64 = x.double()
    d = x64 - x64.mean()
    return torch.sqrt((d * d).mean()).float().expand_as(x)
''',
    "normalize": '''
def normalize(x):
    """(x - mean(x)) / (std(x) + 1e-8), with float32 mean and std over all elements."""
    x64 = x.double()
    m = x64.mean()
    d = x64 - m
    return (x - m.float()) / (torch.sqrt((d * d).mean()).float() + NORM_EPS)
''',
}


def _protection_constants(backend: str) -> str:
    values = {"DIV_EPS": ops.DIV_EPS, "LOG_EPS": ops.LOG_EPS, "EXP_MAX": ops.EXP_MAX,
              "NORM_EPS": ops.NORM_EPS}
    if backend == "numpy":
        return "\n".join(f"{k} = np.float32({_c(v)})" for k, v in values.items())
    return "\n".join(f"{k} = {_c(v)}" for k, v in values.items())


_FORMS = {"numpy": _NUMPY_FORMS, "torch": _TORCH_FORMS}
_HELPERS = {"numpy": _NUMPY_HELPERS, "torch": _TORCH_HELPERS}

# ----------------------------------------------------------------------------- naming

#: Identifiers the generated modules use for themselves; a program name equal to one of
#: them (or to a Python builtin) is written with a trailing underscore.
_RESERVED: frozenset[str] = frozenset(
    set(dir(builtins))
    | {"np", "torch", "numba", "_jitable", "as_f32", "as_batch", "scan", "scan_step",
       "post", "objective", "constants", "Rule", "DIV_EPS", "LOG_EPS", "EXP_MAX",
       "NORM_EPS", "T", "B", "t", "shape", "adv_t", "vtarget_t"}
    | set(_NUMPY_HELPERS) | set(_TORCH_HELPERS)
)


def _python_names(program: Program) -> dict[str, str]:
    """Program name -> identifier in generated code (the same unless reserved)."""
    names: set[str] = {c.name for c in program.constants}
    for comp in program.components:
        names.update(INPUTS[comp.kind])
        names.update(comp.carry_names)
        names.update(ins.target for ins in comp.instrs)
    taken = set(names) | _RESERVED
    out: dict[str, str] = {}
    for n in sorted(names):
        new = n
        if n in _RESERVED:
            while new in taken:
                new += "_"
            taken.add(new)
        out[n] = new
    return out


def _lit_text(x: float) -> str:
    """Shortest decimal text of a float32 value whose double rounds back to it."""
    s = dsl.format_literal(x)
    return s if float(np.float32(float(s))) == float(np.float32(x)) else repr(float(x))


# ----------------------------------------------------------------------------- code generation

#: Ops written as Python operators (float32 + - * and unary - are exact everywhere).
_PYTHON_OPERATORS = frozenset({"add", "sub", "mul", "neg"})


class _Codegen:
    """Renders a (live) program's components as Python source for one backend."""

    def __init__(self, program: Program, backend: str) -> None:
        self.program = program
        self.backend = backend
        self.py = _python_names(program)
        self.helpers: set[str] = set()
        self.consts = {c.name for c in program.constants}
        self.need_shape = False  # set when generated code needs the batch shape

    # -- expressions

    def literal(self, x: float) -> tuple[str, int]:
        s = _lit_text(x)
        if self.backend == "numpy":
            return f"np.float32({s})", PREC_ATOM
        return s, PREC_UNARY if s.startswith("-") else PREC_ATOM

    def is_py_number(self, node: Node) -> bool:
        """Whether ``node`` renders as a Python number in torch code (a literal, possibly
        negated or copied)."""
        if isinstance(node, float):
            return True
        return (isinstance(node, Call) and node.op in ("neg", "copy")
                and self.is_py_number(node.args[0]))

    def is_scalar(self, node: Node, scalars: set[str]) -> bool:
        """Whether ``node`` is statically a scalar (no batch input reaches it)."""
        if isinstance(node, float):
            return True
        if isinstance(node, str):
            return node in scalars
        if OPS[node.op].batch:
            return False
        return all(self.is_scalar(a, scalars) for a in node.args)

    def tensor(self, node: Node, scalars: set[str]) -> str:
        """``node`` rendered for a torch function argument (Python numbers wrapped)."""
        text = self.expr(node, scalars)[0]
        if self.backend == "torch" and self.is_py_number(node):
            return f"as_f32({text})"
        return text

    def expr(self, node: Node, scalars: set[str]) -> tuple[str, int]:
        if isinstance(node, str):
            return self.py[node], PREC_ATOM
        if isinstance(node, float):
            return self.literal(node)
        op = OPS[node.op]
        # Python's operators only where they are exactly the op (not div: it is protected).
        if node.op in _PYTHON_OPERATORS and op.arity == 2:
            a, b = node.args
            (lt, lp), (rt, rp) = self.expr(a, scalars), self.expr(b, scalars)
            if self.backend == "torch" and self.is_py_number(a) and self.is_py_number(b):
                # Two Python numbers would be combined in float64: make one a float32 tensor.
                lt, lp = f"as_f32({lt})", PREC_ATOM
            if lp < op.prec:
                lt = f"({lt})"
            if rp <= op.prec:  # left-associative operators
                rt = f"({rt})"
            return f"{lt} {op.infix} {rt}", op.prec
        if node.op in _PYTHON_OPERATORS:
            xt, xp = self.expr(node.args[0], scalars)
            if xp < PREC_UNARY or xt.startswith("-"):
                xt = f"({xt})"
            return f"{op.infix}{xt}", PREC_UNARY
        form = _FORMS[self.backend][node.op]
        if node.op == "copy":
            return self.expr(node.args[0], scalars)
        self.helpers.update(form.helpers)
        args = []
        for a in node.args:
            if op.batch and self.is_scalar(a, scalars):
                # A scalar stands for a full batch of equal values.
                self.need_shape = True
                text = self.expr(a, scalars)[0]
                text = (f"np.full(shape, {text}, np.float32)" if self.backend == "numpy"
                        else f"as_f32({text}).expand(shape)")
            else:
                text = self.tensor(a, scalars)
            args.append(text)
        return form.template.format(*args), PREC_ATOM

    # -- statements

    def body(self, kind: str, scalars: set[str], indent: str = "    ") -> list[str]:
        """The component's live statements; updates ``scalars`` as names are rebound."""
        lines = []
        for target, node in expression_forest(self.program.component(kind)):
            text = self.expr(node, scalars)[0]
            if self.backend == "torch" and self.is_py_number(node):
                text = f"as_f32({text})"
            lines.append(f"{indent}{self.py[target]} = {text}")
            if self.is_scalar(node, scalars):
                scalars.add(target)
            else:
                scalars.discard(target)
        return lines

    def full(self, name: str, scalars: set[str]) -> str:
        """An output, broadcast to the batch ``shape`` when it is statically a scalar."""
        text = self.py[name]
        if name not in scalars:
            return text
        self.need_shape = True
        if self.backend == "numpy":
            return f"np.full(shape, {text}, np.float32)"
        return f"as_f32({text}).expand(shape)"

    def used(self, kind: str) -> set[str]:
        """Names read by the component's live code."""
        return {a for ins in self.program.component(kind).instrs for a in ins.names()}

    def constant_lines(self, kind: str) -> list[str]:
        if self.backend != "torch":
            return []
        used = self.used(kind)
        return [f"    {self.py[c.name]} = constants[{c.name!r}]"
                for c in self.program.constants if c.name in used]

    def function(self, kind: str, signature: str, doc: str, setup: list[str],
                 returns: Sequence[str], shape_of: str, scalars: set[str],
                 decorator: str = "") -> str:
        self.need_shape = False
        body = self.body(kind, scalars)
        ret = ", ".join(self.full(n, scalars) for n in returns)
        head = [decorator] if decorator else []
        head += [f"def {signature}:", textwrap.indent(f'"""{doc}"""', "    ")]
        pre = list(self.constant_lines(kind)) + setup
        if self.need_shape:
            pre.insert(0, f"    shape = {shape_of}.shape")
        return "\n".join([*head, *pre, *body, f"    return {ret}"]) + "\n"


# ----------------------------------------------------------------------------- module parts

_SCAN_ARGS = ", ".join(INPUTS["scan"])
_POST_ARGS = ", ".join(INPUTS["post"])
_OBJ_ARGS = ", ".join(n for n in INPUTS["objective"] if n != "ratio")


def _scan_functions(g: _Codegen) -> list[str]:
    comp = g.program.scan
    torch = g.backend == "torch"
    carries = [g.py[c] for c in comp.carry_names]
    extra = "".join(f", {c}" for c in carries)
    kw = ", constants=constants" if torch else ""
    uses_progress = "progress" in g.used("scan")
    setup = []
    step = g.function(
        "scan",
        f"scan_step({_SCAN_ARGS}{extra}{kw})",
        "One step t of scan: inputs at t (shape (B,)) and each carry's value at t+1;\n"
        "returns adv and vtarget at t, then each carry's value at t.",
        setup, ["adv", "vtarget", *comp.carry_names], "r", {"progress", *g.consts},
        decorator="" if torch else "@_jitable")
    lines = [f"def scan({_SCAN_ARGS}{', constants=constants' if torch else ''}):",
             '    """Run scan backwards over t = T-1..0; inputs (T, B) -> adv, vtarget (T, B)."""']
    if uses_progress:
        lines.append("    progress = as_f32(progress)" if torch
                     else "    progress = np.float32(progress)")
    lines.append("    T, B = r.shape")
    if torch:
        lines += ["    adv = [None] * T", "    vtarget = [None] * T"]
    else:
        lines += ["    adv = np.empty((T, B), dtype=np.float32)",
                  "    vtarget = np.empty((T, B), dtype=np.float32)"]
    for c in comp.carries:
        zeros = "r.new_zeros(B)" if torch else "np.zeros(B, dtype=np.float32)"
        if c.init == "0":
            code = f"    {g.py[c.name]} = {zeros}"
        else:
            init = "v_next[T - 1]" if torch else "v_next[T - 1].copy()"
            code = f"    {g.py[c.name]} = {init} if T > 0 else {zeros}"
        comment = f"# carry {c.name} = {c.init} at t = T-1"
        lines += ([f"{code}  {comment}"] if len(code) + len(comment) < 98
                  else [f"    {comment}", code])
    args = [f"{n}[t]" for n in INPUTS["scan"] if n != "progress"]
    args += ["progress", *carries] + (["constants"] if torch else [])
    lines.append("    for t in range(T - 1, -1, -1):")
    if torch:
        lines += _wrap_call(f"adv[t], vtarget[t]{extra} = scan_step", args, " " * 8)
        lines += ["    if T == 0:", "        return torch.zeros_like(r), torch.zeros_like(r)",
                  "    return torch.stack(adv), torch.stack(vtarget)"]
    else:
        lines += _wrap_call(f"adv_t, vtarget_t{extra} = scan_step", args, " " * 8)
        lines += ["        adv[t] = adv_t", "        vtarget[t] = vtarget_t",
                  "    return adv, vtarget"]
    return [step, "\n".join(lines) + "\n"]


def _post_function(g: _Codegen) -> str:
    torch = g.backend == "torch"
    setup = []
    if "progress" in g.used("post"):
        setup.append("    progress = as_f32(progress)" if torch
                     else "    progress = np.float32(progress)")
    return g.function(
        "post", f"post({_POST_ARGS}{', constants=constants' if torch else ''})",
        "Post-process the whole rollout: inputs of one shape -> adv, vtarget.",
        setup, ["adv", "vtarget"], "adv", {"progress", *g.consts})


def _objective_function(g: _Codegen) -> str:
    torch = g.backend == "torch"
    used = g.used("objective")
    setup = []
    if "progress" in used:
        setup.append("    progress = as_f32(progress)" if torch
                     else "    progress = np.float32(progress)")
    if "ratio" in used:
        setup.append(f"    ratio = {'torch' if torch else 'np'}.exp(logp - logp_old)")
    return g.function(
        "objective", f"objective({_OBJ_ARGS}{', constants=constants' if torch else ''})",
        "Per-sample loss (to be minimized, e.g. as its mean); inputs (N,) -> loss (N,).",
        setup, ["loss"], "logp", {"progress", *g.consts})


def _docstring(program: Program, backend: str, name: str, source: str | None) -> str:
    code = textwrap.indent(pseudocode(program).rstrip("\n"), "    ")
    where = f"Source: {source}\n\n" if source else ""
    extra = ""
    if backend == "numpy":
        extra = ("\nAll arrays are float32. The functions compile with numba.njit (for\n"
                 "example numba.njit(scan)); numba freezes the module's constants at\n"
                 "compile time.\n")
    else:
        extra = ("\nAll tensors are float32. The constants are float32 tensors in the dict\n"
                 "`constants`; every function takes constants=... (any dict of tensors with\n"
                 "the same keys), so constants that require grad receive gradients. `Rule`\n"
                 "is the same rule as an nn.Module whose constants are nn.Parameters.\n")
    ctor = "torch.Tensor" if backend == "torch" else "np.ndarray"
    text = f"""{name}: an RL update rule exported by evozero {evozero.__version__} ({backend}).

{where}Live program (pseudocode; div, log, sqrt and exp are protected, see the helpers):

{code}

Functions ({ctor} arguments; T steps, B envs, N samples; progress is the fraction of
the training budget used, a float in [0, 1]):

    adv, vtarget = scan(r, term, reset, v, v_next, logp, entropy, progress)
        Each input has shape (T, B): reward, 1 if s[t+1] is terminal, 1 if an episode
        ended at t for any reason, V(s[t]), V(s[t+1]) of the true next state,
        behaviour log-prob of a[t], policy entropy. Runs backwards over t; returns
        two (T, B) arrays.
    adv, vtarget = post(adv, vtarget, v, r, progress)
        Inputs of one shape (the whole rollout); returns adv and vtarget of that shape.
    loss = objective(logp, logp_old, adv, v, v_old, vtarget, entropy, progress)
        Inputs of shape (N,): current and behaviour log-probs, the targets from post,
        current and behaviour values, entropy; returns the per-sample loss (N,), which
        the learner minimizes (ratio = exp(logp - logp_old)).
{extra}"""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def export_source(program: Program, backend: str = "numpy", *, name: str = "rule",
                  source: str | None = None) -> str:
    """A standalone Python module implementing ``program``'s live code.

    Args:
        program: the update rule.
        backend: ``"numpy"`` (numba-compilable) or ``"torch"`` (differentiable; constants
            are tensors that may require grad, plus an ``nn.Module`` ``Rule``).
        name: the program's name, for the module docstring.
        source: where the program came from (a path), for the module docstring.

    Returns:
        The module's source text. It imports only numpy (and, optionally, numba's
        ``register_jitable``) or torch.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    live = live_program(program)
    g = _Codegen(live, backend)
    funcs = [*_scan_functions(g), _post_function(g), _objective_function(g)]
    doc = _docstring(program, backend, name, source)
    blocks: list[str] = []
    if backend == "numpy":
        imports = _NUMPY_IMPORTS
        if live.constants:
            blocks.append("\n".join(["# Constants (float32).", *[
                f"{g.py[c.name]} = np.float32({_lit_text(c.value)})" for c in live.constants]]))
    else:
        imports = "import torch"
        items = "".join(f"\n    {c.name!r}: torch.tensor({_lit_text(c.value)}, "
                        "dtype=torch.float32)," for c in live.constants)
        blocks.append(
            "#: The rule's constants (float32 tensors); call .requires_grad_() on them to\n"
            "#: differentiate through the rule, or pass another dict as constants=... .\n"
            + (f"constants = {{{items}\n}}" if items else "constants = {}"))
    blocks.append("# Op helpers (evozero's exact float32 definitions).\n"
                  + _protection_constants(backend))
    if backend == "torch":
        blocks.append(_AS_F32)
    table = _HELPERS[backend]
    blocks += [table[h] for h in table if h in g.helpers]
    blocks += funcs
    if backend == "torch":
        blocks.append(_torch_rule(live))
    body = "\n\n\n".join(b.strip("\n") for b in blocks)
    gap = "\n\n\n" if backend == "numpy" else "\n\n"  # isort: 1 line before a statement
    return f'"""{doc}"""\n\n{imports}{gap}{body}\n'


_NUMPY_IMPORTS = """import numpy as np

try:  # optional: lets numba.njit compile functions that call the helpers
    from numba.extending import register_jitable as _jitable
except ImportError:  # numpy alone

    def _jitable(fn):
        return fn"""

_AS_F32 = '''
def as_f32(x):
    """x as a float32 tensor (Python numbers become 0-d tensors)."""
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float32)
'''


def _wrap_call(prefix: str, args: Sequence[str], indent: str, width: int = 96) -> list[str]:
    """``prefix(args)`` on one line, or wrapped with the arguments on continuation lines."""
    one = f"{indent}{prefix}({', '.join(args)})"
    if len(one) <= width:
        return [one]
    inner = indent + "    "
    wrapped = textwrap.wrap(", ".join(args) + ")", width=width - len(inner),
                            break_on_hyphens=False)
    return [f"{indent}{prefix}(", *(inner + w for w in wrapped)]


def _torch_rule(program: Program) -> str:
    module_attrs = _module_attributes()
    keys = {c.name: c.name + "_" if c.name in module_attrs else c.name
            for c in program.constants}
    items = "".join(f"\n        {k!r}: {v!r}," for k, v in keys.items())
    keys_text = f"{{{items}\n    }}" if items else "{}"
    return f'''class Rule(torch.nn.Module):
    """The rule as a module whose constants are trainable nn.Parameters."""

    #: Parameter key in self.constants of each constant (nn.Module attribute names get "_").
    keys = {keys_text}

    def __init__(self, values=None):
        super().__init__()
        values = constants if values is None else values
        self.constants = torch.nn.ParameterDict({{
            key: torch.nn.Parameter(as_f32(values[name]).detach().clone())
            for name, key in self.keys.items()}})

    def named_constants(self):
        """{{constant name: parameter}}, as the functions take it (constants=...)."""
        return {{name: self.constants[key] for name, key in self.keys.items()}}

    def scan(self, {_SCAN_ARGS}):
        """scan() with this module's constants."""
        c = self.named_constants()
        return scan({_SCAN_ARGS}, constants=c)

    def post(self, {_POST_ARGS}):
        """post() with this module's constants."""
        return post({_POST_ARGS}, constants=self.named_constants())

    def objective(self, {_OBJ_ARGS}):
        """objective() with this module's constants."""
        c = self.named_constants()
        return objective({_OBJ_ARGS}, constants=c)

    def forward(self, {_OBJ_ARGS}):
        """The per-sample loss (the objective)."""
        return self.objective({_OBJ_ARGS})
'''


def _module_attributes() -> frozenset[str]:
    """Attribute names of ``nn.ParameterDict`` (keys must avoid them)."""
    try:
        import torch
    except ImportError:  # generating code does not need torch; a conservative list
        return frozenset({"keys", "values", "items", "update", "get", "pop", "clear",
                          "forward", "training", "type", "float", "double", "half", "cuda",
                          "cpu", "to", "train", "eval", "apply", "setdefault", "fromkeys",
                          "popitem", "parameters", "buffers", "children", "modules"})
    return frozenset(dir(torch.nn.ParameterDict()))


def write_export(program: Program, path: str | os.PathLike[str], backend: str = "numpy", *,
                 name: str | None = None, source: str | None = None) -> None:
    """Write :func:`export_source` to ``path`` (name defaults to the source file's stem)."""
    if name is None:
        name = os.path.splitext(os.path.basename(source))[0] if source else "rule"
    text = export_source(program, backend, name=name, source=source)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# ----------------------------------------------------------------------------- pseudocode


def live_program(program: Program) -> Program:
    """:meth:`Program.live` without the constants no live instruction reads."""
    live = program.live()
    used = {a for comp in live.components for ins in comp.instrs for a in ins.names()}
    return replace(live, constants=tuple(c for c in live.constants if c.name in used))


def pseudocode(program: Program) -> str:
    """The live program (dead code, dead carries and unused constants dropped) as
    ``.evz`` text."""
    return dsl.to_text(live_program(program))


# ----------------------------------------------------------------------------- LaTeX


class _LatexPrinter(LatexPrinter):
    """sympy's LaTeX printer with the protected and batch ops of :mod:`evozero.ops`."""

    def _print_pdiv(self, expr: sympy.Expr) -> str:
        a, b = expr.args
        return rf"\frac{{{self._print(a)}}}{{{self._print(b)}}}"

    def _print_plog(self, expr: sympy.Expr) -> str:
        return rf"\log\left|{self._print(expr.args[0])}\right|"

    def _print_pexp(self, expr: sympy.Expr) -> str:
        return rf"\exp\left({self._print(expr.args[0])}\right)"

    def _batch(self, name: str, expr: sympy.Expr) -> str:
        return rf"\operatorname{{{name}}}\left({self._print(expr.args[0])}\right)"

    def _print_mean(self, expr: sympy.Expr) -> str:
        return self._batch("mean", expr)

    def _print_std(self, expr: sympy.Expr) -> str:
        return self._batch("std", expr)

    def _print_normalize(self, expr: sympy.Expr) -> str:
        return self._batch("normalize", expr)


def _latex_symbol(name: str) -> sympy.Symbol:
    # Temporaries print as t_{k}; carries' t+1 symbols keep their bracket.
    return sympy.Symbol(f"t_{name[1:]}" if is_temp(name) else name, real=True)


def _display_number(x: float) -> sympy.Expr:
    f = float(np.float32(x))
    if f.is_integer() and abs(f) < 1e6:
        return sympy.Integer(int(f))
    return sympy.Float(dsl.format_literal(f), "")


def _sympy_statement(node: Node) -> sympy.Expr:
    """A statement's expression with the ops' sympy forms, unevaluated (as written).

    Call inside ``sympy.evaluate(False)``. Directly nested sums and products are
    flattened (``(a + b) - c`` prints as ``a + b - c``); nothing is reordered.
    """
    if isinstance(node, str):
        return _latex_symbol(node)
    if isinstance(node, float):
        return _display_number(node)
    expr = OPS[node.op].sympy(*[_sympy_statement(a) for a in node.args])
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        args: list[sympy.Expr] = []
        for a in expr.args:
            args += list(a.args) if type(a) is type(expr) else [a]
        expr = type(expr)(*args, evaluate=False)
    return expr


def latex_expr(expr: sympy.Basic, *, keep_order: bool = False) -> str:
    """LaTeX of a sympy expression from this module or :mod:`evozero.symbolic`."""
    from evozero.program.symbolic import display_numbers

    expr = display_numbers(expr)
    # Carry values from step t+1 (symbolic.carry_symbol) print as g_{t+1}.
    names = {s: f"{LatexPrinter().doprint(sympy.Symbol(s.name[:-5]))}_{{t+1}}"
             for s in expr.free_symbols if s.name.endswith("[t+1]")}
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
    lines = [r"% div, log, sqrt and exp are protected (evozero.ops): |b| >= 1e-6 in a / b,"
             r" log|x| >= log(1e-6), sqrt|x|, exp(min(x, 80))"]
    if live.constants:
        consts = r",\quad ".join(
            f"{latex_expr(_latex_symbol(c.name))} = {dsl.format_literal(c.value)}"
            for c in live.constants)
        lines += ["% constants", consts]
    for kind in COMPONENTS:
        comp = live.component(kind)
        forest = expression_forest(comp)
        note = {"scan": "backwards over t = T-1, ..., 0",
                "post": "once over the whole rollout",
                "objective": "per sample, minimized"}[kind]
        carries = "".join(f"; carry {c.name} = {c.init} at t = T-1" for c in comp.carries)
        lines.append(f"% {kind}: {note}{carries}")
        if not forest:
            lines.append(r"% (outputs pass through)")
            continue
        rows = []
        with sympy.evaluate(False):
            for target, node in forest:
                rhs = latex_expr(_sympy_statement(node), keep_order=True)
                rows.append(f"{latex_expr(_latex_symbol(target))} &\\leftarrow {rhs}")
        lines += [r"\begin{aligned}", " \\\\\n".join(rows), r"\end{aligned}"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- simplify


def _simplify_worker(expr: sympy.Expr, conn: Any) -> None:
    try:
        conn.send(sympy.simplify(expr, ratio=1))  # ratio 1: never longer than the input
    except Exception as e:  # report, never hang the parent
        conn.send(e)
    finally:
        conn.close()


def _simplify_bounded(expr: sympy.Expr, timeout: float) -> tuple[sympy.Expr, bool]:
    """``sympy.simplify(expr)`` in a child process killed after ``timeout`` seconds.

    Returns ``(expression, simplified)``; on timeout or error the input comes back.
    """
    if expr.is_Atom:
        return expr, True
    if timeout <= 0:
        return expr, False
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_simplify_worker, args=(expr, child), daemon=True)
    proc.start()
    child.close()
    try:
        if parent.poll(timeout):
            result = parent.recv()
            if isinstance(result, sympy.Basic):
                return result, True
        return expr, False
    except (EOFError, OSError):
        return expr, False
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
        proc.join()


@dataclass(frozen=True)
class SimplifiedOutput:
    """One output's expression; ``simplified`` is False when simplify timed out or failed
    (``expr`` is then the unsimplified expression), ``expr`` is None when the expression was
    too large to build."""

    expr: sympy.Expr | None
    simplified: bool


def simplified(program: Program, *, timeout: float = 5.0, max_degree: int = 64
               ) -> dict[str, dict[str, SimplifiedOutput]]:
    """Each component's live outputs as simplified sympy expressions.

    Symbolic execution is :func:`evozero.symbolic.component_exprs` (constants stay
    symbols). Each output is simplified in a child process given ``timeout`` seconds;
    on timeout the unsimplified expression is kept.
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
        out[kind] = {n: SimplifiedOutput(*_simplify_bounded(e, timeout))
                     for n, e in exprs.items()}
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
        consts = ", ".join(f"{c.name} = {dsl.format_literal(c.value)}" for c in live.constants)
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
