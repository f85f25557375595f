"""The program model and everything that reads or writes programs, with no native code.

Data flow: ``.evz`` text --:mod:`~evozero.program.dsl`--> :class:`Program` (validated,
normal form) --> :mod:`~evozero.program.evaluate` (reference semantics),
:mod:`~evozero.program.canon` (duplicate keys), :mod:`~evozero.program.mutate` (search
moves). The op vocabulary is :mod:`~evozero.program.ops`. Importing this package needs
neither gymnasium nor the compiled extension.

The program model, one concept per module: :mod:`~evozero.program.vocabulary` (components,
inputs, outputs, carries), :mod:`~evozero.program.model` (:class:`Instr`, :class:`Carry`,
:class:`Const`, :class:`Component`, :class:`Program`), :mod:`~evozero.program.errors`
(:class:`ProgramError` and the shared messages), :mod:`~evozero.program.validate`,
:mod:`~evozero.program.normal_form` (temporaries, expression trees),
:mod:`~evozero.program.liveness` (the one liveness analysis) and
:mod:`~evozero.program.random_programs`. The names below are re-exported from them.
"""

from evozero.program.errors import Loc, ProgramError
from evozero.program.model import Arg, Carry, Component, Const, Instr, Program
from evozero.program.normal_form import (
    Call,
    Node,
    expression_forest,
    inline_plan,
    is_temp,
    normalize_instrs,
)
from evozero.program.random_programs import (
    random_instr,
    random_literal,
    random_parts,
    random_program,
)
from evozero.program.vocabulary import (
    CARRY_INITS,
    COMPONENTS,
    DIFF_INPUTS,
    INPUTS,
    MAX_CARRIES,
    MAX_DEPTH,
    MAX_INSTRUCTIONS,
    OUTPUTS,
)

__all__ = [
    "CARRY_INITS",
    "COMPONENTS",
    "DIFF_INPUTS",
    "INPUTS",
    "MAX_CARRIES",
    "MAX_DEPTH",
    "MAX_INSTRUCTIONS",
    "OUTPUTS",
    "Arg",
    "Call",
    "Carry",
    "Component",
    "Const",
    "Instr",
    "Loc",
    "Node",
    "Program",
    "ProgramError",
    "expression_forest",
    "inline_plan",
    "is_temp",
    "normalize_instrs",
    "random_instr",
    "random_literal",
    "random_parts",
    "random_program",
]
