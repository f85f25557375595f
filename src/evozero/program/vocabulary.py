"""The vocabulary of update programs: components, their inputs and outputs, carries.

The single source of truth for these names (ARCHITECTURE.md, "The program model"). The
native interpreter's input slots are generated from it (see :mod:`evozero.native.codegen`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "CARRY_INITS",
    "COMPONENTS",
    "DIFF_INPUTS",
    "INPUTS",
    "MAX_CARRIES",
    "MAX_DEPTH",
    "MAX_INSTRUCTIONS",
    "OUTPUTS",
]

#: The three components, in execution order.
COMPONENTS: tuple[str, ...] = ("scan", "post", "objective")

#: Inputs of each component (carries come on top of scan's).
INPUTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "scan": ("r", "term", "reset", "v", "v_next", "logp", "entropy", "progress"),
        "post": ("adv", "vtarget", "v", "r", "progress"),
        "objective": (
            "logp",
            "logp_old",
            "ratio",
            "adv",
            "v",
            "v_old",
            "vtarget",
            "entropy",
            "progress",
        ),
    }
)

#: Outputs of each component (scan also outputs each carry's value at t).
OUTPUTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "scan": ("adv", "vtarget"),
        "post": ("adv", "vtarget"),
        "objective": ("loss",),
    }
)

#: Objective inputs that the interpreter carries tangents for (d ratio / d logp = ratio).
DIFF_INPUTS: tuple[str, ...] = ("logp", "v", "entropy")

#: At most this many carries in scan.
MAX_CARRIES = 4

#: At most this many instructions in one component, after the parser has flattened
#: expressions (every operator and op call is one). Search stays far below it (mutations
#: grow a component to at most ``mutate.MAX_INSTRS``); it bounds the work any program can
#: ask of the parser, validation, normal form, printers and compilers, which is linear.
MAX_INSTRUCTIONS = 1024

#: An expression tree (one statement as the ``.evz`` printer writes it, anonymous
#: temporaries inlined) nests at most this many operators and op calls deep. The parser,
#: the normal form, the printers, the exporters and sympy recurse over expression trees;
#: this bound keeps them far from Python's recursion limit. Named steps are not inlined,
#: so splitting an expression into named steps always brings it within the bound.
MAX_DEPTH = 100

#: Allowed initial values of a carry at the last step of the rollout.
CARRY_INITS: tuple[str, ...] = ("0", "v_next")
