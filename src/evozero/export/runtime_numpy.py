"""The op helpers of numpy exports: evozero's exact float32 definitions, for numba too.

A real module (linted, and tested against :mod:`evozero.program.ops`) that
:func:`evozero.export.export_source` copies from, as text: its imports (evozero's
excepted) head every numpy export, and each function a program uses is copied verbatim,
in this order. So the functions may use only numpy, ``_jitable`` and the protection
constants, which the export writes from :mod:`evozero.program.ops` (imported here only so
that this module runs). Scalar results of ``np.where`` are 0-d arrays; ``[()]`` makes
them scalars again, as numba needs.
"""

import numpy as np

from evozero.program.ops import DIV_EPS, EXP_MAX, LOG_EPS, NORM_EPS

try:  # optional: lets numba.njit compile functions that call the helpers
    from numba.extending import register_jitable as _jitable
except ImportError:  # numpy alone

    def _jitable(fn):
        return fn


@_jitable
def safe_div(a, b):
    """Protected division: a / b2, b2 = max(b, 1e-6) if b >= 0 else min(b, -1e-6)."""
    return a / np.where(b >= np.float32(0), np.maximum(b, DIV_EPS), np.minimum(b, -DIV_EPS))[()]


@_jitable
def square(x):
    """x * x."""
    return x * x


@_jitable
def safe_sqrt(x):
    """Protected square root: sqrt(|x|)."""
    return np.sqrt(np.abs(x))


@_jitable
def safe_exp(x):
    """Clamped exponential: exp(min(x, 80))."""
    return np.exp(np.minimum(x, EXP_MAX))


@_jitable
def safe_log(x):
    """Protected logarithm: log(max(|x|, 1e-6))."""
    return np.log(np.maximum(np.abs(x), LOG_EPS))


@_jitable
def sigmoid(x):
    """1 / (1 + exp(-x)) (exp unclamped: its overflow to inf gives 0)."""
    return np.float32(1) / (np.float32(1) + np.exp(-x))


@_jitable
def relu(x):
    """x if x > 0 else 0."""
    return np.where(x > np.float32(0), x, np.float32(0))[()]


@_jitable
def minimum(a, b):
    """a if a < b else b."""
    return np.where(a < b, a, b)[()]


@_jitable
def maximum(a, b):
    """a if a > b else b."""
    return np.where(a > b, a, b)[()]


@_jitable
def clip(x, lo, hi):
    """min(max(x, lo), hi): hi wins when lo > hi."""
    m = np.where(x > lo, x, lo)[()]
    return np.where(m < hi, m, hi)[()]


@_jitable
def where(c, a, b):
    """a if c > 0 else b."""
    return np.where(c > np.float32(0), a, b)[()]


@_jitable
def mean(x):
    """Mean over all elements (float64 accumulation), broadcast to x's shape."""
    m = np.float32(np.sum(x.astype(np.float64)) / x.size)
    return np.full(x.shape, m, np.float32)


@_jitable
def std(x):
    """Population std over all elements (float64 accumulation), broadcast to x's shape."""
    x64 = x.astype(np.float64)
    d = x64 - np.sum(x64) / x.size
    return np.full(x.shape, np.float32(np.sqrt(np.sum(d * d) / x.size)), np.float32)


@_jitable
def normalize(x):
    """(x - mean(x)) / (std(x) + 1e-8), with float32 mean and std over all elements."""
    x64 = x.astype(np.float64)
    m = np.sum(x64) / x.size
    d = x64 - m
    s = np.float32(np.sqrt(np.sum(d * d) / x.size))
    return (x - np.float32(m)) / (s + NORM_EPS)
