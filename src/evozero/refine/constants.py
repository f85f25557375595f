"""A program's constants as unconstrained parameters that keep their domains.

Refinement (meta-gradients or evolution strategies) moves a vector ``theta`` in R^d
freely; each constant's value is a fixed transform of its coordinate, chosen once from
the constant's name and starting value:

* ``unit`` (value in (0, 1) and the name says discount or trace: ``gamma``, ``lam``,
  ``lambda``, ``discount``, ``tau``): ``value = sigmoid(theta)``, so a
  discount stays a discount;
* ``positive`` (any other value > 0: clip ranges, loss coefficients, temperatures):
  ``value = exp(theta)``, so a scale keeps its sign and moves multiplicatively;
* ``free`` (value <= 0): ``value = theta``, no domain to keep.

Values are float32 (as the program stores them); ``theta`` is float64 in numpy and
whatever dtype a torch caller uses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evozero.program.model import Program

__all__ = ["DOMAINS", "ConstantSpace", "domain_of"]

#: The transforms, by name (see the module docstring).
DOMAINS: tuple[str, ...] = ("unit", "positive", "free")

#: Constant names that are discounts or trace parameters: kept in (0, 1).
_UNIT_NAME = re.compile(r"^(gamma|lam|lmbda|lambda|gae_lambda|discount|tau)\d*(_|$)")

#: A unit value this close to 0 or 1 is clamped away from the boundary first (the
#: sigmoid never reaches it).
_UNIT_MARGIN = 1e-6


def domain_of(name: str, value: float) -> str:
    """The domain of constant ``name`` whose value is ``value`` (one of :data:`DOMAINS`)."""
    if 0.0 < value < 1.0 and _UNIT_NAME.match(name.lower()):
        return "unit"
    if value > 0.0:
        return "positive"
    return "free"


@dataclass(frozen=True)
class ConstantSpace:
    """The constants of one program and their transforms, in declaration order."""

    names: tuple[str, ...]
    domains: tuple[str, ...]
    initial: tuple[float, ...]

    @classmethod
    def of(cls, program: Program, only: Sequence[str] | None = None) -> ConstantSpace:
        """The space of ``program``'s constants (or of those named in ``only``)."""
        values = program.constant_values
        names = tuple(values) if only is None else tuple(only)
        unknown = sorted(set(names) - set(values))
        if unknown:
            raise ValueError(
                f"unknown constant(s) {unknown}; the program has: {', '.join(values) or 'none'}"
            )
        return cls(
            names,
            tuple(domain_of(n, values[n]) for n in names),
            tuple(values[n] for n in names),
        )

    @property
    def size(self) -> int:
        return len(self.names)

    def to_theta(self, values: Mapping[str, float]) -> np.ndarray:
        """The coordinates of ``values`` (every name of the space)."""
        theta = np.empty(self.size)
        for i, (name, dom) in enumerate(zip(self.names, self.domains, strict=True)):
            x = float(values[name])
            if dom == "unit":
                x = min(max(x, _UNIT_MARGIN), 1.0 - _UNIT_MARGIN)
                theta[i] = math.log(x / (1.0 - x))
            elif dom == "positive":
                theta[i] = math.log(max(x, 1e-30))
            else:
                theta[i] = x
        return theta

    def initial_theta(self) -> np.ndarray:
        """The coordinates of the program's own values."""
        return self.to_theta(dict(zip(self.names, self.initial, strict=True)))

    def values(self, theta: np.ndarray) -> dict[str, float]:
        """The constant values at ``theta``, rounded to float32 as programs store them."""
        out = {}
        for name, dom, t in zip(self.names, self.domains, np.asarray(theta, float), strict=True):
            if dom == "unit":
                x = 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))
            elif dom == "positive":
                x = math.exp(min(t, 80.0))
            else:
                x = t
            out[name] = float(np.float32(x))
        return out

    def torch_values(self, theta: Any) -> dict[str, Any]:
        """The constant values at a torch tensor ``theta``, differentiably, in its dtype."""
        import torch

        out = {}
        for i, (name, dom) in enumerate(zip(self.names, self.domains, strict=True)):
            t = theta[i]
            x = torch.sigmoid(t) if dom == "unit" else torch.exp(t) if dom == "positive" else t
            out[name] = x
        return out

    def apply(self, program: Program, theta: np.ndarray) -> Program:
        """``program`` with the constants at ``theta``."""
        return program.with_constants(self.values(theta))
