"""Random programs: seeds for the search, and inputs for fuzzing and property tests.

Everything is drawn from the ``rng`` passed in, so a seed fixes the program. The name
pools are shared with the mutation operators (:mod:`evozero.program.mutate`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from evozero.program.model import Arg, Carry, Component, Const, Instr, Program, _literal
from evozero.program.normal_form import is_temp
from evozero.program.ops import OPS, ops_for
from evozero.program.vocabulary import CARRY_INITS, COMPONENTS, INPUTS, OUTPUTS

__all__ = [
    "CARRY_POOL",
    "CONST_POOL",
    "NAME_POOL",
    "random_instr",
    "random_literal",
    "random_parts",
    "random_program",
]

#: Names of new values (besides temporaries and outputs).
NAME_POOL: tuple[str, ...] = ("a", "b", "c", "d", "x", "y", "z", "u", "w", "delta", "tmp", "k")
#: Names of constants.
CONST_POOL: tuple[str, ...] = ("gamma", "lam", "eps", "c_v", "c_h", "alpha", "beta", "k1", "k2")
#: Names of carries.
CARRY_POOL: tuple[str, ...] = ("g", "h", "acc", "m")


def random_literal(rng: np.random.Generator) -> float:
    """A random float32 literal, biased to the values rules use but covering all ranges."""
    kind = rng.integers(6)
    if kind == 0:
        x = float(rng.integers(-3, 4))
    elif kind == 1:
        x = float(rng.choice([0.5, 0.1, 0.01, 0.99, 0.95, 0.2, 1e-8, 2.0, -0.5]))
    elif kind == 2:
        x = float(rng.normal())
    elif kind == 3:
        x = float(10.0 ** rng.uniform(-38, 38)) * float(rng.choice([-1.0, 1.0]))
    elif kind == 4:  # any finite float32 bit pattern
        while True:
            bits = np.array([rng.integers(0, 2**32)], dtype=np.uint64).astype(np.uint32)
            x = float(bits.view(np.float32)[0])
            if math.isfinite(x):
                break
    else:
        x = float(np.round(rng.uniform(-10, 10), int(rng.integers(0, 4))))
    return _literal(x) if math.isfinite(float(np.float32(x))) else 1.0


def random_instr(
    rng: np.random.Generator,
    kind: str,
    target: str,
    scope: Sequence[str],
    *,
    p_literal: float = 0.15,
    ops: Sequence[str] | None = None,
) -> Instr:
    """A random instruction ``target = op(...)`` valid in ``kind`` reading from ``scope``."""
    names = list(ops) if ops is not None else [op.name for op in ops_for(kind)]
    op = OPS[names[int(rng.integers(len(names)))]]
    args: list[Arg] = []
    for _ in range(op.arity):
        if not scope or rng.random() < p_literal:
            args.append(random_literal(rng))
        else:
            args.append(scope[int(rng.integers(len(scope)))])
    return Instr(target, op.name, tuple(args))


def random_program(
    rng: np.random.Generator,
    *,
    max_constants: int = 4,
    max_instrs: int = 10,
    max_carries: int = 2,
    p_literal: float = 0.15,
    p_temp: float = 0.4,
    p_reassign: float = 0.15,
) -> Program:
    """A random valid program (for search seeds, fuzzing and property tests).

    Temporaries are placed at random (so normalization has work to do), names are
    reassigned with probability ``p_reassign``, literals cover the whole float32 range,
    and dead code is common.
    """
    constants, comps = random_parts(
        rng,
        max_constants=max_constants,
        max_instrs=max_instrs,
        max_carries=max_carries,
        p_literal=p_literal,
        p_temp=p_temp,
        p_reassign=p_reassign,
    )
    return Program(constants, comps["scan"], comps["post"], comps["objective"])


def random_parts(
    rng: np.random.Generator,
    *,
    max_constants: int = 4,
    max_instrs: int = 10,
    max_carries: int = 2,
    p_literal: float = 0.15,
    p_temp: float = 0.4,
    p_reassign: float = 0.15,
) -> tuple[tuple[Const, ...], dict[str, Component]]:
    """The constants and raw (not yet normalized) components of :func:`random_program`."""
    n_const = int(rng.integers(0, max_constants + 1))
    const_names = list(rng.choice(CONST_POOL, size=n_const, replace=False))
    constants = tuple(Const(str(n), random_literal(rng)) for n in const_names)
    comps: dict[str, Component] = {}
    for kind in COMPONENTS:
        carries: tuple[Carry, ...] = ()
        if kind == "scan" and max_carries:
            k = int(rng.integers(0, max_carries + 1))
            carries = tuple(
                Carry(str(n), CARRY_INITS[int(rng.integers(2))])
                for n in rng.choice(CARRY_POOL, size=min(k, len(CARRY_POOL)), replace=False)
            )
        scope = list(INPUTS[kind]) + [c.name for c in constants] + [c.name for c in carries]
        assignable = [n for n in scope if n not in const_names]
        instrs: list[Instr] = []
        n = int(rng.integers(0, max_instrs + 1))
        next_temp = 1
        for _ in range(n):
            u = rng.random()
            if u < p_temp:
                # Sometimes reuse a temp number: reassigned temporaries get renumbered.
                target = f"_{int(rng.integers(1, next_temp + 1))}"
                next_temp += 1
            elif u < p_temp + p_reassign and assignable:
                target = assignable[int(rng.integers(len(assignable)))]
            else:
                target = str(rng.choice(NAME_POOL + OUTPUTS[kind]))
            instrs.append(random_instr(rng, kind, target, scope, p_literal=p_literal))
            if target not in scope:
                scope.append(target)
            if target not in assignable and not is_temp(target):
                assignable.append(target)
        for out in OUTPUTS[kind]:
            if out not in scope:
                instrs.append(random_instr(rng, kind, out, scope, p_literal=p_literal))
                scope.append(out)
        comps[kind] = Component(kind, tuple(instrs), carries)
    return constants, comps
