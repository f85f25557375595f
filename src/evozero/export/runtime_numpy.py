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
def exact_sum(x):
    """The exact sum of a float32 array's elements correctly rounded to float64 (what
    math.fsum gives); with an inf or NaN element, the IEEE sum.

    Elements with the same float32 exponent are multiples of one power of two below
    2**24 times it, so float64 sums them exactly (in any order) for fewer than 2**29
    elements; the at most 255 exponents' sums are then added by Shewchuk's algorithm with
    CPython's half-even correction (math.fsum's).
    """
    x64 = x.astype(np.float64).ravel()
    total = np.sum(x64)
    if not np.isfinite(total):
        return total
    exponent = (x.astype(np.float32).ravel().view(np.int32) >> 23) & 0xFF
    partials = np.zeros(64, np.float64)  # non-overlapping, so at most ~40 of them
    n = 0
    for a in np.bincount(exponent, x64):
        i = 0
        for j in range(n):
            b = partials[j]
            if abs(a) < abs(b):
                a, b = b, a
            hi = a + b
            lo = b - (hi - a)
            if lo != 0.0:
                partials[i] = lo
                i += 1
            a = hi
        n = i
        if a != 0.0:
            partials[n] = a
            n += 1
    hi = np.float64(0.0)
    lo = np.float64(0.0)
    if n > 0:
        n -= 1
        hi = partials[n]
        while n > 0:  # add from the top while the sum stays exact
            a = hi
            n -= 1
            b = partials[n]
            hi = a + b
            lo = b - (hi - a)
            if lo != 0.0:
                break
        # Round half-even across partials: a half-ulp lo is settled by the next partial.
        if n > 0 and ((lo < 0.0 and partials[n - 1] < 0.0) or (lo > 0.0 and partials[n - 1] > 0.0)):
            b = lo * 2.0
            a = hi + b
            if b == a - hi:
                hi = a
    return hi


@_jitable
def mean64(x):
    """Mean over all elements in float64, from the exact sum (0 for no elements)."""
    return exact_sum(x) / x.size if x.size else np.float64(0.0)


@_jitable
def std32(x):
    """Population std over all elements: float64 deviations from mean64, squared and
    summed in float64 (no cancellation: within rounding of the exact sum), float32."""
    if not x.size:
        return np.float32(0.0)
    d = x.astype(np.float64) - mean64(x)
    return np.float32(np.sqrt(np.sum(d * d) / x.size))


@_jitable
def mean(x):
    """Mean over all elements (exact sum, one rounding to float32), broadcast to x's shape."""
    return np.full(x.shape, np.float32(mean64(x)), np.float32)


@_jitable
def std(x):
    """Population std over all elements (std32), broadcast to x's shape."""
    return np.full(x.shape, std32(x), np.float32)


@_jitable
def normalize(x):
    """(x - mean(x)) / (std(x) + 1e-8), with the float32 mean and std over all elements."""
    return (x - np.float32(mean64(x))) / (std32(x) + NORM_EPS)
