"""The vocabulary of update programs: components, their inputs and outputs, carries.

The single source of truth for these names (ARCHITECTURE.md, "The program model"). The
native interpreter's input slots are generated from it (see :mod:`evozero.native.codegen`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["CARRY_INITS", "COMPONENTS", "DIFF_INPUTS", "INPUTS", "MAX_CARRIES", "OUTPUTS"]

#: The three components, in execution order.
COMPONENTS: tuple[str, ...] = ("scan", "post", "objective")

#: Inputs of each component (carries come on top of scan's).
INPUTS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "scan": ("r", "term", "reset", "v", "v_next", "logp", "entropy", "progress"),
    "post": ("adv", "vtarget", "v", "r", "progress"),
    "objective": (
        "logp", "logp_old", "ratio", "adv", "v", "v_old", "vtarget", "entropy", "progress",
    ),
})

#: Outputs of each component (scan also outputs each carry's value at t).
OUTPUTS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "scan": ("adv", "vtarget"),
    "post": ("adv", "vtarget"),
    "objective": ("loss",),
})

#: Objective inputs that the interpreter carries tangents for (d ratio / d logp = ratio).
DIFF_INPUTS: tuple[str, ...] = ("logp", "v", "entropy")

#: At most this many carries in scan.
MAX_CARRIES = 4

#: Allowed initial values of a carry at the last step of the rollout.
CARRY_INITS: tuple[str, ...] = ("0", "v_next")
