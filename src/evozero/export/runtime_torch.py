"""The op helpers of torch exports: evozero's float32 definitions, differentiable.

A real module (linted, and tested against :mod:`evozero.program.ops`) that
:func:`evozero.export.export_source` copies from, as text: its imports (evozero's
excepted) head every torch export, ``as_f32`` is always copied and each other function a
program uses is copied verbatim, in this order. So the functions may use only torch and
the protection constants, which the export writes from :mod:`evozero.program.ops`
(Python floats; torch rounds them to the tensors' float32).
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


def mean(x):
    """Mean over all elements (float64 accumulation), broadcast to x's shape."""
    return x.double().mean().float().expand_as(x)


def std(x):
    """Population std over all elements (float64 accumulation), broadcast to x's shape."""
    x64 = x.double()
    d = x64 - x64.mean()
    return torch.sqrt((d * d).mean()).float().expand_as(x)


def normalize(x):
    """(x - mean(x)) / (std(x) + 1e-8), with float32 mean and std over all elements."""
    x64 = x.double()
    m = x64.mean()
    d = x64 - m
    return (x - m.float()) / (torch.sqrt((d * d).mean()).float() + NORM_EPS)
