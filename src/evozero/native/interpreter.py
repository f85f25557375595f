"""The native interpreter behind the reference evaluator's API.

:func:`run_scan`, :func:`run_post` and :func:`run_objective` have the signatures and the
results of :mod:`evozero.evaluate`'s functions (tests swap one for the other), but run
the program compiled (:mod:`evozero.compile`) by the C++ interpreter
(``csrc/interpreter``). The values are the same as the reference's: bit for bit except
where numpy's and the C library's float32 ``exp``/``log``/``tanh``/``sigmoid`` differ by
an ulp or two, a difference later operations can amplify without bound (README,
"Correctness").

:class:`NativeProgram` keeps one compiled interpreter for repeated calls; the functions
cache one per program.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from evozero import _core
from evozero.native.compile import CompiledProgram, check_native_tables, compile_program
from evozero.program.evaluate import (
    OBJECTIVE_INPUTS,
    POST_INPUTS,
    SCAN_INPUTS,
    ObjectiveResult,
)
from evozero.program.model import Program
from evozero.program.vocabulary import OUTPUTS

__all__ = ["NativeProgram", "native", "run_objective", "run_post", "run_scan"]


def _arrays(
    inputs: Mapping[str, np.ndarray], names: tuple[str, ...], what: str
) -> list[np.ndarray]:
    missing = [n for n in names if n not in inputs]
    if missing:
        raise ValueError(f"{what}: missing inputs {missing}")
    return [np.ascontiguousarray(inputs[n], dtype=np.float32) for n in names]


class NativeProgram:
    """A program compiled for the native interpreter.

    ``live=False`` (the default here) keeps every output of every component, as the
    reference evaluator returns them; ``live=True`` is the trainer's form (see
    :func:`~evozero.compile.compile_program`).
    """

    def __init__(self, program: Program, *, live: bool = False) -> None:
        check_native_tables()
        self.program = program
        self.compiled: CompiledProgram = compile_program(program, live=live)
        self.interpreter = _core.Interpreter(**self.compiled.arrays())

    def run_scan(self, inputs: Mapping[str, np.ndarray], progress: float) -> dict[str, np.ndarray]:
        args = _arrays(inputs, SCAN_INPUTS, "run_scan")
        if args[0].ndim != 2:
            raise ValueError(f"run_scan: inputs must have 2 dimensions; got shape {args[0].shape}")
        adv, vtarget, carries = self.interpreter.run_scan(*args, float(progress))
        out = {"adv": adv, "vtarget": vtarget}
        out.update(zip(self.compiled.scan.carry_names, carries, strict=True))
        return out

    def run_post(self, inputs: Mapping[str, np.ndarray], progress: float) -> dict[str, np.ndarray]:
        adv, vtarget = self.interpreter.run_post(
            *_arrays(inputs, POST_INPUTS, "run_post"), float(progress)
        )
        return dict(zip(OUTPUTS["post"], (adv, vtarget), strict=True))

    def run_objective(self, inputs: Mapping[str, np.ndarray], progress: float) -> ObjectiveResult:
        res = self.interpreter.run_objective(
            *_arrays(inputs, OBJECTIVE_INPUTS, "run_objective"), float(progress)
        )
        return ObjectiveResult(*res)


@functools.lru_cache(maxsize=128)
def native(program: Program, *, live: bool = False) -> NativeProgram:
    """The (cached) :class:`NativeProgram` of ``program``."""
    return NativeProgram(program, live=live)


def run_scan(
    program: Program, inputs: Mapping[str, np.ndarray], progress: float
) -> dict[str, np.ndarray]:
    """As :func:`evozero.evaluate.run_scan`, natively."""
    return native(program).run_scan(inputs, progress)


def run_post(
    program: Program, inputs: Mapping[str, np.ndarray], progress: float
) -> dict[str, np.ndarray]:
    """As :func:`evozero.evaluate.run_post`, natively."""
    return native(program).run_post(inputs, progress)


def run_objective(
    program: Program, inputs: Mapping[str, np.ndarray], progress: float
) -> ObjectiveResult:
    """As :func:`evozero.evaluate.run_objective`, natively."""
    return native(program).run_objective(inputs, progress)
