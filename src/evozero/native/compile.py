"""Lowering a :class:`~evozero.program.Program` to the flat arrays the native interpreter runs.

A compiled component is four arrays (the C++ side is ``csrc/interpreter/program.hpp``):

``code`` ``(n, 5) int32``
    one row per instruction: ``opcode, dst, src0, src1, src2`` (``-1`` past the op's
    arity). The opcode is the op's index in :data:`evozero.ops.OPS` (:data:`OPCODES`);
    the C++ op table is generated from it (:mod:`evozero.native.codegen`).
``consts`` ``(k,) float32``
    the values of the constant registers: named constants and literals, deduplicated.
``outputs`` ``(m,) int32``
    the register holding each output's final binding: ``OUTPUTS[kind]``, then (scan) each
    carry's value at ``t``.
``carry_init`` ``(c,) int32``
    scan only: each carry's initial value, ``0`` for zero, ``1`` for ``v_next``
    (:data:`CARRY_INIT_CODES`).

Registers are numbered per component: the inputs first, in the order of
``program.INPUTS[kind]`` (``progress`` included; :data:`INPUT_SLOTS`), then the carries
(their value from step ``t+1``), then the constant registers, then one register per
instruction, so instruction ``i`` writes ``first_temp + i`` and reads only lower registers
(straight-line SSA: the renaming resolves "a use refers to the latest binding").

The native interpreter (:mod:`evozero.interpreter`) builds an ``_core.Interpreter`` from
:meth:`CompiledProgram.arrays`; the trainer does the same in C++.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from evozero.program.liveness import liveness
from evozero.program.model import Component, Program
from evozero.program.ops import OPS
from evozero.program.vocabulary import CARRY_INITS, COMPONENTS, INPUTS, OUTPUTS

__all__ = [
    "CARRY_INIT_CODES",
    "CODE_WIDTH",
    "INPUT_SLOTS",
    "OPCODES",
    "CompiledComponent",
    "CompiledProgram",
    "check_native_tables",
    "compile_program",
]

#: Opcode of each op: its index in the op table (the one numbering both sides use).
OPCODES: Mapping[str, int] = {name: i for i, name in enumerate(OPS)}

#: Columns of a code row: opcode, destination, up to three sources.
CODE_WIDTH = 5

#: Carry initial values as the C++ side encodes them.
CARRY_INIT_CODES: Mapping[str, int] = {init: i for i, init in enumerate(CARRY_INITS)}

#: The register (slot) of each input of each component: its index in ``INPUTS[kind]``.
#: The C++ slot numbers are generated from it (csrc/generated/slots.hpp).
INPUT_SLOTS: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        kind: MappingProxyType({name: i for i, name in enumerate(INPUTS[kind])})
        for kind in COMPONENTS
    }
)


@dataclass(frozen=True, eq=False)
class CompiledComponent:
    """One component as flat arrays (see the module docstring), plus register names."""

    kind: str
    code: np.ndarray
    consts: np.ndarray
    outputs: np.ndarray
    carry_init: np.ndarray
    carry_names: tuple[str, ...]
    registers: tuple[str, ...]  # a readable name per register (for disassembly)

    @property
    def first_temp(self) -> int:
        """Register written by the first instruction."""
        return len(self.registers) - len(self.code)

    def disassemble(self) -> str:
        """The code as readable lines, ``r12 = mul(r3, r9)  # name``."""
        names = list(OPS)
        lines = [f"{self.kind}:"]
        for row in self.code:
            op, dst, *src = (int(x) for x in row)
            args = ", ".join(f"r{s}:{self.registers[s]}" for s in src if s >= 0)
            lines.append(f"  r{dst} = {names[op]}({args})  # {self.registers[dst]}")
        outs = OUTPUTS[self.kind] + self.carry_names
        lines.append(
            "  outputs: " + ", ".join(f"{n}=r{r}" for n, r in zip(outs, self.outputs, strict=True))
        )
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class CompiledProgram:
    """The three compiled components of a program."""

    scan: CompiledComponent
    post: CompiledComponent
    objective: CompiledComponent

    def arrays(self) -> dict[str, np.ndarray]:
        """Keyword arguments of ``_core.Interpreter``."""
        return {
            "scan_code": self.scan.code,
            "scan_consts": self.scan.consts,
            "scan_outputs": self.scan.outputs,
            "scan_carry_init": self.scan.carry_init,
            "post_code": self.post.code,
            "post_consts": self.post.consts,
            "post_outputs": self.post.outputs,
            "objective_code": self.objective.code,
            "objective_consts": self.objective.consts,
            "objective_outputs": self.objective.outputs,
        }

    def disassemble(self) -> str:
        return "\n".join(c.disassemble() for c in (self.scan, self.post, self.objective))


def _component_live(comp: Component) -> Component:
    """Drop instructions that none of the component's own outputs needs (carries kept)."""
    keep = liveness(comp.instrs, comp.outputs).instrs
    return Component(comp.kind, tuple(comp.instrs[i] for i in keep), comp.carries, comp.loc)


def _lower(comp: Component, constants: Mapping[str, float]) -> CompiledComponent:
    kind = comp.kind
    inputs = INPUTS[kind]
    carries = comp.carry_names
    # Constant registers: named constants and literals, deduplicated by float32 value.
    const_values: list[float] = []
    const_names: list[str] = []
    const_reg: dict[float, int] = {}
    first_const = len(inputs) + len(carries)

    def constant(value: float, name: str) -> int:
        if value not in const_reg:
            const_reg[value] = first_const + len(const_values)
            const_values.append(value)
            const_names.append(name)
        elif name not in const_names[const_reg[value] - first_const].split("="):
            const_names[const_reg[value] - first_const] += "=" + name
        return const_reg[value]

    bound = set(inputs) | set(carries)
    for ins in comp.instrs:
        for a in ins.args:
            if isinstance(a, float):
                constant(a, repr(a))
            elif a not in bound:
                constant(constants[a], a)
        bound.add(ins.target)
    first_temp = first_const + len(const_values)
    env: dict[str, int] = dict(INPUT_SLOTS[kind])
    env.update({c: len(inputs) + j for j, c in enumerate(carries)})
    registers = [*inputs, *(f"{c}@t+1" for c in carries), *const_names]
    code = np.full((len(comp.instrs), CODE_WIDTH), -1, dtype=np.int32)
    for i, ins in enumerate(comp.instrs):
        code[i, 0] = OPCODES[ins.op]
        code[i, 1] = first_temp + i
        for j, a in enumerate(ins.args):
            if isinstance(a, float):
                code[i, 2 + j] = const_reg[a]
            elif a in env:
                code[i, 2 + j] = env[a]
            else:
                code[i, 2 + j] = const_reg[constants[a]]
        env[ins.target] = first_temp + i
        registers.append(ins.target)
    outputs = np.array([env[n] for n in OUTPUTS[kind] + carries], dtype=np.int32)
    return CompiledComponent(
        kind=kind,
        code=code,
        consts=np.array(const_values, dtype=np.float32),
        outputs=outputs,
        carry_init=np.array([CARRY_INIT_CODES[c.init] for c in comp.carries], dtype=np.int32),
        carry_names=carries,
        registers=tuple(registers),
    )


def compile_program(program: Program, *, live: bool = True) -> CompiledProgram:
    """Lower ``program`` to flat arrays.

    With ``live=True`` (the trainer's form) the program is first reduced to
    :meth:`Program.live`: only what the loss needs is computed, dead carries are dropped
    and a post output the objective never reads passes its input through. With
    ``live=False`` every component keeps all of its own outputs (every declared carry
    too), so its outputs equal the reference evaluator's; only dead code is removed.
    """
    if live:
        program = program.live()
    constants = program.constant_values
    parts = {}
    for kind in COMPONENTS:
        comp = program.component(kind)
        parts[kind] = _lower(comp if live else _component_live(comp), constants)
    return CompiledProgram(**parts)


@functools.cache
def check_native_tables() -> None:
    """Raise RuntimeError unless the loaded core was built from the current tables.

    The C++ op table and input slots are generated from the Python ones
    (:mod:`evozero.native.codegen`); the core records a digest of what it was built from.
    A core built before an op or an input changed would run the wrong ops: this catches it
    (checked once per process).
    """
    from evozero import _core
    from evozero.native.codegen import tables_digest

    built, ours = getattr(_core, "TABLES_DIGEST", None), tables_digest()
    if built != ours:
        raise RuntimeError(
            f"the native core was built from other tables (digest {built}) than "
            f"evozero.program.ops and vocabulary (digest {ours}): run "
            "python -m evozero.native.codegen, then rebuild the core"
        )
