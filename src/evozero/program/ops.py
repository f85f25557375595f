"""The op table: the single source of truth for every primitive an update rule can use.

Each :class:`Op` fixes the op's name, arity, the components where it may appear, its
exact float32 numpy definition, its partial derivatives (for forward-mode tangents),
and its sympy and torch forms. The C++ interpreter, the sympy canonicalizer and the
numpy/torch exports are derived from or tested against this table.

Adding an op is docs/ARCHITECTURE.md, "Add an op": its numpy form and partials plus one
row of ``_TABLE`` here, its C++ kernel in csrc/interpreter/ops.hpp, then
``python -m evozero.native.codegen`` and its export forms. A step left out fails loudly
(a compile error, tests/test_codegen.py, or the form checks of tests/test_ops.py,
tests/test_interpreter.py and tests/test_export.py).

Numeric contract
----------------
Everything is IEEE-754 binary32 (float32), elementwise with numpy broadcasting. Every
constant below is a float32 value (``np.float32(...)`` of the decimal shown; a C++ port
writes it as a ``float`` literal, e.g. ``1e-6f``).

=========== ===================================================================================
op          exact definition (float32 arithmetic, evaluated left to right as written)
=========== ===================================================================================
add(a,b)    ``a + b``
sub(a,b)    ``a - b``
mul(a,b)    ``a * b``
div(a,b)    ``a / b2`` with ``b2 = max(b, 1e-6)`` if ``b >= 0`` else ``min(b, -1e-6)``;
            ``-0.0 >= 0`` is true, so zero of either sign becomes ``+1e-6``
neg(x)      ``-x``
abs(x)      ``|x|``
square(x)   ``x * x``
sqrt(x)     ``sqrt(|x|)`` (correctly rounded, as IEEE sqrt is)
exp(x)      ``exp(min(x, 80))``; ``exp(80) ~ 5.5e34`` is finite
log(x)      ``log(max(|x|, 1e-6))``
tanh(x)     ``tanh(x)``
sigmoid(x)  ``1 / (1 + exp(-x))`` with the *unclamped* exp; ``exp(-x)`` overflowing to +inf
            (x < ~-88.7) gives exactly 0 (this is also what torch.sigmoid computes)
relu(x)     ``x`` if ``x > 0`` else ``0``
sign(x)     -1, 0 or +1 (``sign(±0) = 0``)
min(a,b)    ``a`` if ``a < b`` else ``b``; max(a,b): ``a`` if ``a > b`` else ``b``
clip(x,l,h) ``min(max(x, l), h)`` (so ``h`` wins when ``l > h``, as torch.clamp does)
where(c,a,b) ``a`` if ``c > 0`` else ``b``
copy(x)     ``x`` (the statement ``y = x``)
mean(x)     post only, over the whole T×B batch: ``m = float64(S) / N`` in float64, where ``S``
            is the exact sum of the elements correctly rounded to float64 (``math.fsum``;
            order independent; with an inf or NaN element, the IEEE sum: NaN when both
            infinities occur); the result ``float32(m)`` is broadcast to x's shape
std(x)      post only, population std: ``d_i = float64(x_i) - m`` and ``q_i = d_i * d_i`` in
            float64, ``float32(sqrt(float64(fsum(q)) / N))`` (float64 sqrt)
normalize(x) post only: ``(x - mean(x)) / (std(x) + 1e-8)`` in float32 arithmetic, using the
            float32 results of mean and std above
=========== ===================================================================================

Arithmetic ops and the protection logic reproduce bit for bit in any IEEE float32
implementation; ``exp``, ``log``, ``tanh`` and ``sigmoid`` depend on the libm's float32
functions (correct to within an ulp or two, not bitwise across libraries; torch's CPU
float32 sqrt is not always correctly rounded either). The batch reductions use an exact
(order-independent) sum, so they reproduce bitwise given an fsum (Shewchuk) port.

Totality: for finite inputs no op returns NaN. Ops whose result is bounded by their
inputs (abs, neg, sqrt, log, exp, tanh, sigmoid, relu, sign, min, max, clip, where, copy,
mean, std) return finite values; add, sub, mul, div, square and normalize may overflow to
±inf on huge operands (IEEE overflow), which the trainer reports as divergence.

Derivatives
-----------
``Op.partials(*args)`` returns the partial derivative of the output with respect to each
argument, as float32 arrays of the broadcast shape. The conventions at kinks and ties are
exactly PyTorch autograd's for the op's torch form (tested):
``abs'(0) = 0``, ``relu'(0) = 0``, ``sign' = 0``; ``min``/``max`` ties give 0.5 to each
argument; ``clip(x, l, h)``: ``dx = [l <= x <= h]``, ``dl = [x < l and l < h]``,
``dh = [x > h or h < l]`` (so ``l == h`` with ``x`` outside gives all zeros, as torch does);
``where``: ``dc = 0``, ``da = [c > 0]``, ``db = [not c > 0]``; ``div``: ``da = 1 / b2``,
``db = -((a / b2) / b2)`` where ``|b| >= 1e-6`` and 0 inside the protection band;
``log``: ``1 / x`` where ``|x| >= 1e-6``, else 0; ``sqrt``: ``sign(x) * (1 / (2 * sqrt(|x|)))``
and 0 at ``x == 0``; ``exp``: ``exp(x)`` where ``x <= 80``, else 0; ``tanh``: ``1 - t * t``;
``sigmoid``: ``(1 - s) * s``; ``square``: ``x + x``. For finite inputs partials are never NaN
but can overflow to ±inf (e.g. ``div``'s ``db`` for huge ``a``); an evaluator should skip
the partials of arguments whose tangent is structurally zero, as autograd does.
The batch ops have no partials (``partials is None``): they only occur in ``post``, whose
outputs are fixed targets for the objective.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import sympy

__all__ = [
    "ALL_COMPONENTS",
    "DIV_EPS",
    "EXP_MAX",
    "LOG_EPS",
    "NORM_EPS",
    "OPS",
    "PREC_ADD",
    "PREC_ATOM",
    "PREC_MUL",
    "PREC_UNARY",
    "Op",
    "get_op",
    "ops_for",
    "pdiv",
    "pexp",
    "plog",
    "sympy_functions",
]

#: Components an op can be allowed in (mirrors ``program.COMPONENTS``; a test checks).
ALL_COMPONENTS: frozenset[str] = frozenset({"scan", "post", "objective"})
_POST_ONLY: frozenset[str] = frozenset({"post"})

#: Protection constants, all float32.
DIV_EPS: np.float32 = np.float32(1e-6)
LOG_EPS: np.float32 = np.float32(1e-6)
EXP_MAX: np.float32 = np.float32(80.0)
NORM_EPS: np.float32 = np.float32(1e-8)

#: Printing precedences, those of Python's grammar (the DSL is parsed with ``ast``).
PREC_ADD = 1  # binary + -
PREC_MUL = 2  # binary * /
PREC_UNARY = 3  # unary -
PREC_ATOM = 4  # names, literals, calls

_F32 = np.float32
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_TWO = np.float32(2.0)


@dataclass(frozen=True)
class Op:
    """One primitive op.

    Attributes:
        name: the op's name as written in programs (``clip``, ``add`` ...).
        arity: number of arguments.
        components: components where the op may appear.
        numpy: exact float32 definition; takes arrays/scalars, returns a float32 array.
        partials: ``partials(*args) -> tuple`` of float32 arrays, d out / d arg_i, with the
            conventions of PyTorch autograd on :attr:`torch`; ``None`` for batch ops.
        sympy: builds the op's sympy expression from sympy argument expressions.
        torch: the same computation on torch tensors (python floats are accepted too).
        infix: infix symbol (``+ - * /``; ``-`` for unary neg) or ``None`` for call syntax.
        prec: printing precedence (``PREC_*``), that of Python's grammar.
        batch: True for the batch reductions (mean, std, normalize).
        doc: the exact numeric definition, in words.
        params: argument names, for messages and generated code (``("x", "lo", "hi")``).
    """

    name: str
    arity: int
    components: frozenset[str]
    numpy: Callable[..., np.ndarray] = field(repr=False)
    partials: Callable[..., tuple[np.ndarray, ...]] | None = field(repr=False)
    sympy: Callable[..., sympy.Expr] = field(repr=False)
    torch: Callable[..., Any] = field(repr=False)
    infix: str | None = None
    prec: int = PREC_ATOM
    batch: bool = False
    doc: str = ""
    params: tuple[str, ...] = ()

    def allowed_in(self, component: str) -> bool:
        """Whether the op may appear in ``component``."""
        return component in self.components

    @property
    def differentiable(self) -> bool:
        """Whether the op has partials (all elementwise ops do)."""
        return self.partials is not None


# ----------------------------------------------------------------------------- numpy helpers


def _f32(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Silence IEEE warnings: overflow to inf is part of the contract, not an error."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            return fn(*(_f32(a) for a in args))

    return wrapper


def _bcast(*xs: np.ndarray) -> tuple[np.ndarray, ...]:
    shape = np.broadcast_shapes(*(np.shape(x) for x in xs))
    return tuple(np.broadcast_to(_f32(x), shape).copy() for x in xs)


def _ones(*xs: np.ndarray) -> np.ndarray:
    return np.ones(np.broadcast_shapes(*(np.shape(x) for x in xs)), dtype=np.float32)


def _mask(cond: np.ndarray, *xs: np.ndarray) -> np.ndarray:
    shape = np.broadcast_shapes(np.shape(cond), *(np.shape(x) for x in xs))
    return np.broadcast_to(np.asarray(cond, dtype=np.float32), shape).copy()


def _div_denominator(b: np.ndarray) -> np.ndarray:
    return np.where(b >= _ZERO, np.maximum(b, DIV_EPS), np.minimum(b, -DIV_EPS))


# ----------------------------------------------------------------------------- numpy forms


@_quiet
def np_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b``."""
    return _f32(a + b)


@_quiet
def np_sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b``."""
    return _f32(a - b)


@_quiet
def np_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a * b``."""
    return _f32(a * b)


@_quiet
def np_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Protected division ``a / b2``, ``b2 = max(b, 1e-6) if b >= 0 else min(b, -1e-6)``."""
    return _f32(a / _div_denominator(b))


@_quiet
def np_neg(x: np.ndarray) -> np.ndarray:
    """``-x``."""
    return _f32(-x)


@_quiet
def np_abs(x: np.ndarray) -> np.ndarray:
    """``|x|``."""
    return _f32(np.abs(x))


@_quiet
def np_square(x: np.ndarray) -> np.ndarray:
    """``x * x``."""
    return _f32(x * x)


@_quiet
def np_sqrt(x: np.ndarray) -> np.ndarray:
    """``sqrt(|x|)``."""
    return _f32(np.sqrt(np.abs(x)))


@_quiet
def np_exp(x: np.ndarray) -> np.ndarray:
    """``exp(min(x, 80))``."""
    return _f32(np.exp(np.minimum(x, EXP_MAX)))


@_quiet
def np_log(x: np.ndarray) -> np.ndarray:
    """``log(max(|x|, 1e-6))``."""
    return _f32(np.log(np.maximum(np.abs(x), LOG_EPS)))


@_quiet
def np_tanh(x: np.ndarray) -> np.ndarray:
    """``tanh(x)``."""
    return _f32(np.tanh(x))


@_quiet
def np_sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``; exp overflowing to inf gives 0."""
    return _f32(_ONE / (_ONE + np.exp(-x)))


@_quiet
def np_relu(x: np.ndarray) -> np.ndarray:
    """``x if x > 0 else 0``."""
    return _f32(np.where(x > _ZERO, x, _ZERO))


@_quiet
def np_sign(x: np.ndarray) -> np.ndarray:
    """-1, 0 or +1."""
    return _f32(np.sign(x))


@_quiet
def np_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a if a < b else b``."""
    return _f32(np.where(a < b, a, b))


@_quiet
def np_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a if a > b else b``."""
    return _f32(np.where(a > b, a, b))


@_quiet
def np_clip(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``min(max(x, lo), hi)``."""
    m = np.where(x > lo, x, lo)
    return _f32(np.where(m < hi, m, hi))


@_quiet
def np_where(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a if c > 0 else b``."""
    return _f32(np.where(c > _ZERO, a, b))


@_quiet
def np_copy(x: np.ndarray) -> np.ndarray:
    """``x``."""
    return _f32(x).copy()


def _mean64(x: np.ndarray) -> np.float64:
    # Exact, order-independent sum (so any implementation can reproduce it bit for bit).
    # A non-finite element makes the IEEE sum non-finite (NaN for +inf and -inf, which
    # math.fsum refuses with ValueError).
    n = x.size
    if not n:
        return np.float64(0.0)
    x64 = x.ravel().astype(np.float64)
    total = np.sum(x64)
    return np.float64((math.fsum(x64) if np.isfinite(total) else total) / n)


@_quiet
def np_mean(x: np.ndarray) -> np.ndarray:
    """Batch mean (float64 accumulation, one rounding to float32), broadcast to x's shape."""
    return np.full(np.shape(x), np.float32(_mean64(x)), dtype=np.float32)


def _std32(x: np.ndarray) -> np.float32:
    if not x.size:
        return np.float32(0.0)
    d = x.ravel().astype(np.float64) - _mean64(x)
    return np.float32(math.sqrt(math.fsum(d * d) / x.size))


@_quiet
def np_std(x: np.ndarray) -> np.ndarray:
    """Batch population std (float64 accumulation, one rounding), broadcast to x's shape."""
    return np.full(np.shape(x), _std32(x), dtype=np.float32)


@_quiet
def np_normalize(x: np.ndarray) -> np.ndarray:
    """``(x - mean(x)) / (std(x) + 1e-8)`` in float32 with the float32 mean and std."""
    m = np.float32(_mean64(x))
    s = _std32(x)
    return _f32((x - m) / (s + NORM_EPS))


# ----------------------------------------------------------------------------- partials


@_quiet
def d_add(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    return _ones(a, b), _ones(a, b)


@_quiet
def d_sub(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    return _ones(a, b), -_ones(a, b)


@_quiet
def d_mul(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    return _bcast(b, a)


@_quiet
def d_div(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    b2 = _div_denominator(b)
    da = _ONE / b2
    outside = np.where(b >= _ZERO, b >= DIV_EPS, b <= -DIV_EPS)
    db = np.where(outside, -((a / b2) / b2), _ZERO)
    return _bcast(da, db, a)[:2]


@_quiet
def d_neg(x: np.ndarray) -> tuple[np.ndarray, ...]:
    return (-_ones(x),)


@_quiet
def d_abs(x: np.ndarray) -> tuple[np.ndarray, ...]:
    return (_f32(np.sign(x)),)


@_quiet
def d_square(x: np.ndarray) -> tuple[np.ndarray, ...]:
    return (_f32(x + x),)


@_quiet
def d_sqrt(x: np.ndarray) -> tuple[np.ndarray, ...]:
    zero = x == _ZERO
    s = np.sqrt(np.where(zero, _ONE, np.abs(x)))
    return (_f32(np.where(zero, _ZERO, np.sign(x) * (_ONE / (_TWO * s)))),)


@_quiet
def d_exp(x: np.ndarray) -> tuple[np.ndarray, ...]:
    return (_f32(np.where(x <= EXP_MAX, np.exp(np.minimum(x, EXP_MAX)), _ZERO)),)


@_quiet
def d_log(x: np.ndarray) -> tuple[np.ndarray, ...]:
    outside = np.abs(x) >= LOG_EPS
    return (_f32(np.where(outside, _ONE / np.where(outside, x, _ONE), _ZERO)),)


@_quiet
def d_tanh(x: np.ndarray) -> tuple[np.ndarray, ...]:
    t = np.tanh(x)
    return (_f32(_ONE - t * t),)


@_quiet
def d_sigmoid(x: np.ndarray) -> tuple[np.ndarray, ...]:
    s = _f32(_ONE / (_ONE + np.exp(-x)))
    return (_f32((_ONE - s) * s),)


@_quiet
def d_relu(x: np.ndarray) -> tuple[np.ndarray, ...]:
    return (_mask(x > _ZERO),)


@_quiet
def d_sign(x: np.ndarray) -> tuple[np.ndarray, ...]:
    return (np.zeros(np.shape(x), dtype=np.float32),)


@_quiet
def d_min(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    tie = np.where(a == b, _HALF, _ZERO)
    return (
        _mask(np.where(a < b, _ONE, tie), a, b),
        _mask(np.where(b < a, _ONE, tie), a, b),
    )


@_quiet
def d_max(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    tie = np.where(a == b, _HALF, _ZERO)
    return (
        _mask(np.where(a > b, _ONE, tie), a, b),
        _mask(np.where(b > a, _ONE, tie), a, b),
    )


@_quiet
def d_clip(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    # ATen's clamp_backward_min_max for tensor bounds.
    return (
        _mask((x >= lo) & (x <= hi), x, lo, hi),
        _mask((x < lo) & (lo < hi), x, lo, hi),
        _mask((x > hi) | (hi < lo), x, lo, hi),
    )


@_quiet
def d_where(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    pos = c > _ZERO
    return (
        _mask(np.zeros_like(pos), c, a, b),
        _mask(pos, c, a, b),
        _mask(~pos, c, a, b),
    )


@_quiet
def d_copy(x: np.ndarray) -> tuple[np.ndarray, ...]:
    return (_ones(x),)


# ----------------------------------------------------------------------------- sympy forms

_SP_DIV_EPS = sympy.Float(float(DIV_EPS))
_SP_LOG_EPS = sympy.Float(float(LOG_EPS))
_SP_EXP_MAX = sympy.Integer(80)


class _RealFunction(sympy.Function):
    """A real-valued, structurally compared sympy function (for protected/batch ops)."""

    def _eval_is_real(self) -> bool:
        return True

    def _eval_is_extended_real(self) -> bool:
        return True


class pdiv(_RealFunction):  # noqa: N801  (sympy functions are lower-case by convention)
    """Protected division; folds to ``a / b`` when ``b`` is a number outside the band."""

    nargs = 2

    @classmethod
    def eval(cls, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr | None:
        if b.is_Number:
            if abs(b) >= _SP_DIV_EPS:
                return a / b
            return a / (_SP_DIV_EPS if b >= 0 else -_SP_DIV_EPS)
        return None


class plog(_RealFunction):  # noqa: N801
    """Protected log ``log(max(|x|, 1e-6))``; folds on numbers."""

    nargs = 1

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        if x.is_Number:
            return sympy.log(sympy.Max(abs(x), _SP_LOG_EPS))
        return None


class pexp(_RealFunction):  # noqa: N801
    """Clamped exp ``exp(min(x, 80))``; folds on numbers."""

    nargs = 1

    @classmethod
    def eval(cls, x: sympy.Expr) -> sympy.Expr | None:
        if x.is_Number:
            return sympy.exp(sympy.Min(x, _SP_EXP_MAX))
        return None


class mean(_RealFunction):  # noqa: N801
    """Batch mean (post only)."""

    nargs = 1


class std(_RealFunction):  # noqa: N801
    """Batch population std (post only)."""

    nargs = 1


class normalize(_RealFunction):  # noqa: N801
    """Batch normalization (post only)."""

    nargs = 1


def sympy_functions() -> dict[str, type[sympy.Function]]:
    """The sympy Function classes used by op sympy forms, by name (for sympify/parsing)."""
    return {
        "pdiv": pdiv,
        "plog": plog,
        "pexp": pexp,
        "mean": mean,
        "std": std,
        "normalize": normalize,
    }


def _sp_sigmoid(x: sympy.Expr) -> sympy.Expr:
    return 1 / (1 + sympy.exp(-x))


def _sp_where(c: sympy.Expr, a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    return sympy.Piecewise((a, sympy.StrictGreaterThan(c, 0)), (b, True))


# ----------------------------------------------------------------------------- torch forms
# torch is imported lazily: it is only needed for refinement, exports and tests.


def _torch() -> Any:
    import torch

    return torch


def _tt(*xs: Any) -> list[Any]:
    """Convert python/numpy scalars to float32 tensors (literals in exported code)."""
    torch = _torch()
    return [
        x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float32) for x in xs
    ]


def t_add(a: Any, b: Any) -> Any:
    a, b = _tt(a, b)
    return a + b


def t_sub(a: Any, b: Any) -> Any:
    a, b = _tt(a, b)
    return a - b


def t_mul(a: Any, b: Any) -> Any:
    a, b = _tt(a, b)
    return a * b


def t_div(a: Any, b: Any) -> Any:
    torch = _torch()
    a, b = _tt(a, b)
    eps = float(DIV_EPS)
    return a / torch.where(b >= 0, torch.clamp(b, min=eps), torch.clamp(b, max=-eps))


def t_neg(x: Any) -> Any:
    (x,) = _tt(x)
    return -x


def t_abs(x: Any) -> Any:
    (x,) = _tt(x)
    return _torch().abs(x)


def t_square(x: Any) -> Any:
    (x,) = _tt(x)
    return x * x


def t_sqrt(x: Any) -> Any:
    # Double `where` keeps sqrt(|x|) exact while giving derivative 0 (not NaN) at x == 0.
    torch = _torch()
    (x,) = _tt(x)
    zero = x == 0
    s = torch.sqrt(torch.where(zero, torch.ones_like(x), torch.abs(x)))
    return torch.where(zero, torch.zeros_like(x), s)


def t_exp(x: Any) -> Any:
    torch = _torch()
    (x,) = _tt(x)
    return torch.exp(torch.clamp(x, max=float(EXP_MAX)))


def t_log(x: Any) -> Any:
    torch = _torch()
    (x,) = _tt(x)
    return torch.log(torch.clamp(torch.abs(x), min=float(LOG_EPS)))


def t_tanh(x: Any) -> Any:
    (x,) = _tt(x)
    return _torch().tanh(x)


def t_sigmoid(x: Any) -> Any:
    (x,) = _tt(x)
    return _torch().sigmoid(x)


def t_relu(x: Any) -> Any:
    (x,) = _tt(x)
    return _torch().relu(x)


def t_sign(x: Any) -> Any:
    (x,) = _tt(x)
    return _torch().sign(x)


def t_min(a: Any, b: Any) -> Any:
    a, b = _tt(a, b)
    return _torch().minimum(a, b)


def t_max(a: Any, b: Any) -> Any:
    a, b = _tt(a, b)
    return _torch().maximum(a, b)


def t_clip(x: Any, lo: Any, hi: Any) -> Any:
    x, lo, hi = _tt(x, lo, hi)
    return _torch().clamp(x, lo, hi)


def t_where(c: Any, a: Any, b: Any) -> Any:
    c, a, b = _tt(c, a, b)
    return _torch().where(c > 0, a, b)


def t_copy(x: Any) -> Any:
    (x,) = _tt(x)
    return x


def _t_mean32(x: Any) -> Any:
    # Batch reductions are never differentiated (post outputs are fixed targets), so the
    # exact numpy reduction is reused to get bitwise-equal values.
    torch = _torch()
    arr = x.detach().cpu().numpy().astype(np.float32)
    return torch.tensor(np.float32(_mean64(arr)), dtype=torch.float32, device=x.device)


def _t_std32(x: Any) -> Any:
    torch = _torch()
    arr = x.detach().cpu().numpy().astype(np.float32)
    return torch.tensor(_std32(arr), dtype=torch.float32, device=x.device)


def t_mean(x: Any) -> Any:
    (x,) = _tt(x)
    return _t_mean32(x).expand_as(x)


def t_std(x: Any) -> Any:
    (x,) = _tt(x)
    return _t_std32(x).expand_as(x)


def t_normalize(x: Any) -> Any:
    (x,) = _tt(x)
    return (x - _t_mean32(x)) / (_t_std32(x) + float(NORM_EPS))


# ----------------------------------------------------------------------------- the table


def _op(
    name: str,
    arity: int,
    np_fn: Callable[..., Any],
    d_fn: Callable[..., Any] | None,
    sp_fn: Callable[..., Any],
    t_fn: Callable[..., Any],
    *,
    infix: str | None = None,
    prec: int = PREC_ATOM,
    components: frozenset[str] = ALL_COMPONENTS,
    doc: str = "",
) -> Op:
    return Op(
        name=name,
        arity=arity,
        components=components,
        numpy=np_fn,
        partials=d_fn,
        sympy=sp_fn,
        torch=t_fn,
        infix=infix,
        prec=prec,
        batch=components == _POST_ONLY,
        doc=doc or (np_fn.__doc__ or "").strip(),
        params=tuple(inspect.signature(np_fn).parameters),
    )


_TABLE: tuple[Op, ...] = (
    _op("add", 2, np_add, d_add, lambda a, b: a + b, t_add, infix="+", prec=PREC_ADD),
    _op("sub", 2, np_sub, d_sub, lambda a, b: a - b, t_sub, infix="-", prec=PREC_ADD),
    _op("mul", 2, np_mul, d_mul, lambda a, b: a * b, t_mul, infix="*", prec=PREC_MUL),
    _op("div", 2, np_div, d_div, pdiv, t_div, infix="/", prec=PREC_MUL),
    _op("neg", 1, np_neg, d_neg, lambda x: -x, t_neg, infix="-", prec=PREC_UNARY),
    _op("abs", 1, np_abs, d_abs, sympy.Abs, t_abs),
    _op("square", 1, np_square, d_square, lambda x: x**2, t_square),
    _op("sqrt", 1, np_sqrt, d_sqrt, lambda x: sympy.sqrt(sympy.Abs(x)), t_sqrt),
    _op("exp", 1, np_exp, d_exp, pexp, t_exp),
    _op("log", 1, np_log, d_log, plog, t_log),
    _op("tanh", 1, np_tanh, d_tanh, sympy.tanh, t_tanh),
    _op("sigmoid", 1, np_sigmoid, d_sigmoid, _sp_sigmoid, t_sigmoid),
    _op("relu", 1, np_relu, d_relu, lambda x: sympy.Max(x, 0), t_relu),
    _op("sign", 1, np_sign, d_sign, sympy.sign, t_sign),
    _op("min", 2, np_min, d_min, sympy.Min, t_min),
    _op("max", 2, np_max, d_max, sympy.Max, t_max),
    _op("clip", 3, np_clip, d_clip, lambda x, lo, hi: sympy.Min(sympy.Max(x, lo), hi), t_clip),
    _op("where", 3, np_where, d_where, _sp_where, t_where),
    _op("copy", 1, np_copy, d_copy, lambda x: x, t_copy),
    _op("mean", 1, np_mean, None, mean, t_mean, components=_POST_ONLY),
    _op("std", 1, np_std, None, std, t_std, components=_POST_ONLY),
    _op("normalize", 1, np_normalize, None, normalize, t_normalize, components=_POST_ONLY),
)

#: All ops by name, in table order (the order is stable: the C++ opcode numbering uses it).
OPS: Mapping[str, Op] = MappingProxyType({op.name: op for op in _TABLE})

#: Op names that print with infix syntax, by (symbol, arity).
INFIX: Mapping[tuple[str, int], str] = MappingProxyType(
    {(op.infix, op.arity): op.name for op in _TABLE if op.infix is not None}
)


def get_op(name: str) -> Op:
    """Return the op called ``name``; raises ``KeyError`` for unknown names."""
    return OPS[name]


def ops_for(component: str) -> tuple[Op, ...]:
    """The ops allowed in ``component``, in table order."""
    return tuple(op for op in _TABLE if op.allowed_in(component))


def opcode(name: str) -> int:
    """A stable small integer per op (its index in the table), for compiled programs."""
    return list(OPS).index(name)
