"""The program model and everything that reads or writes programs, with no native code.

Data flow: ``.evz`` text --:mod:`~evozero.program.dsl`--> :class:`Program` (validated,
normal form) --> :mod:`~evozero.program.evaluate` (reference semantics),
:mod:`~evozero.program.canon` (duplicate keys), :mod:`~evozero.program.mutate` (search
moves). The op vocabulary is :mod:`~evozero.program.ops`. Importing this package needs
neither gymnasium nor the compiled extension.
"""

from evozero.program.model import (
    CARRY_INITS,
    COMPONENTS,
    DIFF_INPUTS,
    INPUTS,
    MAX_CARRIES,
    OUTPUTS,
    Arg,
    Call,
    Carry,
    Component,
    Const,
    Instr,
    Loc,
    Node,
    Program,
    ProgramError,
    expression_forest,
    inline_plan,
    is_temp,
    normalize_instrs,
    random_instr,
    random_literal,
    random_parts,
    random_program,
)

__all__ = [
    "CARRY_INITS",
    "COMPONENTS",
    "DIFF_INPUTS",
    "INPUTS",
    "MAX_CARRIES",
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
