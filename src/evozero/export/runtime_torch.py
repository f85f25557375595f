"""The op helpers of torch exports: evozero's float32 definitions, differentiable.

A real module (linted, and tested against :mod:`evozero.program.ops`) that
:func:`evozero.export.export_source` copies from, as text: its imports (evozero's
excepted) head every torch export, ``as_f32`` is always copied and each other function a
program uses is copied verbatim, in this order. So the functions may use only torch and
the protection constants, which the export writes from :mod:`evozero.program.ops`
(Python floats; torch rounds them to the tensors' float32). Where torch's own op differs
from the definition (at NaN: torch.relu, torch.sign, torch.minimum, torch.clamp; the
derivative of torch.abs) a helper writes the definition, with the op table's partials
under autograd.
"""

import torch

from evozero.program import ops

DIV_EPS = float(ops.DIV_EPS)
LOG_EPS = float(ops.LOG_EPS)
EXP_MAX = float(ops.EXP_MAX)
NORM_EPS = float(ops.NORM_EPS)


def as_f32(x):
    """x as a float32 tensor (Python numbers become 0-d tensors)."""
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float32)


def safe_div(a, b):
    """Protected division: a / b2, b2 = max(b, 1e-6) if b >= 0 else min(b, -1e-6)."""
    return a / torch.where(b >= 0, torch.clamp(b, min=DIV_EPS), torch.clamp(b, max=-DIV_EPS))


def square(x):
    """x * x."""
    return x * x


def safe_sqrt(x):
    """Protected square root: sqrt(|x|), with derivative 0 (not NaN) at x == 0."""
    zero = x == 0
    s = torch.sqrt(torch.where(zero, torch.ones_like(x), torch.abs(x)))
    return torch.where(zero, torch.zeros_like(x), s)


def safe_exp(x):
    """Clamped exponential: exp(min(x, 80))."""
    return torch.exp(torch.clamp(x, max=EXP_MAX))


def safe_log(x):
    """Protected logarithm: log(max(|x|, 1e-6))."""
    return torch.log(torch.clamp(torch.abs(x), min=LOG_EPS))


def absolute(x):
    """|x|, whose derivative sign(x) is NaN at NaN as ops.d_abs's is (torch.abs gives 0
    there): the added term is NaN**2 at NaN and 0 elsewhere."""
    nan = torch.where(torch.isnan(x), x, 0.0)
    return torch.abs(x) + nan * nan


def relu(x):
    """x if x > 0 else 0, so relu(NaN) = 0 (torch.relu gives NaN); derivative [x > 0]."""
    return torch.where(x > 0, x, 0.0)


def sign(x):
    """-1, 0 or +1; sign(NaN) = NaN (torch.sign gives 0); derivative 0."""
    return torch.where(torch.isnan(x), x.detach(), torch.sign(x))


def minimum(a, b):
    """a if a < b else b; torch.minimum's derivatives (ties give half to each), none
    where an argument is NaN (torch.minimum returns NaN there)."""
    ordered = ~(torch.isnan(a) | torch.isnan(b))
    return torch.where(ordered, torch.minimum(a, b), torch.where(a < b, a, b).detach())


def maximum(a, b):
    """a if a > b else b; torch.maximum's derivatives (ties give half to each), none
    where an argument is NaN (torch.maximum returns NaN there)."""
    ordered = ~(torch.isnan(a) | torch.isnan(b))
    return torch.where(ordered, torch.maximum(a, b), torch.where(a > b, a, b).detach())


def clip(x, lo, hi):
    """min(max(x, lo), hi): hi wins when lo > hi. torch.clamp's derivatives, which
    ops.d_clip copies; where an argument is NaN torch.clamp returns NaN, ops' clip lo or
    hi, and only hi may get a derivative ([x > hi or hi < lo], then the value is hi)."""
    m = torch.where(x > lo, x, lo)
    value = torch.where(m < hi, m, hi).detach()
    ordered = ~(torch.isnan(x) | torch.isnan(lo) | torch.isnan(hi))
    to_hi = (x > hi) | (hi < lo)
    return torch.where(ordered, torch.clamp(x, lo, hi), torch.where(to_hi, hi, value))


def mean64(x):
    """Mean over all elements in float64 from their exact sum, correctly rounded (0 for no
    elements; with an inf or NaN element, the IEEE mean); differentiable as x's mean.

    Elements with the same float32 exponent are multiples of one power of two below
    2**24 times it, so their float64 sum is exact in any order (below 2**29 elements);
    the per-exponent sums, as integers times 2**-150, add exactly in Python ints.
    """
    x64 = x.double()
    if x.numel() == 0:
        return x64.sum()
    m = x64.mean()
    if not torch.isfinite(m):
        return m
    flat = x.detach().float().reshape(-1)
    exponent = (flat.view(torch.int32) >> 23) & 0xFF
    sums = torch.bincount(exponent, weights=flat.double()) * 2.0**150
    exact = sum(int(s) for s in sums.tolist()) / (1 << 150) / x.numel()
    return m - m.detach() + exact


def std32(x):
    """Population std over all elements: float64 deviations from mean64, squared and
    summed in float64 (no cancellation: within rounding of the exact sum), float32."""
    d = x.double() - mean64(x)
    return torch.sqrt((d * d).sum() / max(x.numel(), 1)).float()


def mean(x):
    """Mean over all elements (exact sum, one rounding to float32), broadcast to x's shape."""
    return mean64(x).float().expand_as(x)


def std(x):
    """Population std over all elements (std32), broadcast to x's shape."""
    return std32(x).expand_as(x)


def normalize(x):
    """(x - mean(x)) / (std(x) + 1e-8), with the float32 mean and std over all elements."""
    return (x - mean64(x).float()) / (std32(x) + NORM_EPS)
