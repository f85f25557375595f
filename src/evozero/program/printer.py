"""The one precedence-aware printer of expression trees (:data:`~evozero.program.model.Node`).

Every text form of an expression comes from :class:`Printer`: the ``.evz`` text
(:mod:`evozero.program.dsl`, the defaults here), the Python source of exports
(:mod:`evozero.export.codegen`, which overrides how names, literals and op calls are
spelled and which ops are operators) and mutation descriptions
(:mod:`evozero.program.mutate`, every op as a call: :func:`instruction_text`).
Parentheses follow the ops' precedences (:attr:`~evozero.program.ops.Op.prec`, those of
Python's grammar); Python's binary operators are left-associative, so a right operand of
equal precedence is parenthesized and a left one is not.
"""

from __future__ import annotations

import numpy as np

from evozero.program.model import Instr
from evozero.program.normal_form import Call, Node
from evozero.program.ops import OPS, PREC_ATOM, PREC_UNARY

__all__ = ["Printer", "format_literal", "instruction_text", "render_expr"]


def format_literal(x: float) -> str:
    """The shortest text that parses back to the same float32 value.

    Integers below 1e6 print without a decimal point; other values use numpy's shortest
    unique float32 repr, positional for 1e-4 <= |x| < 1e6 and scientific otherwise.
    """
    f = np.float32(x)
    a = abs(float(f))
    if a == 0.0:
        return "0"
    if a < 1e6 and float(f).is_integer():
        return str(int(f))
    if 1e-4 <= a < 1e6:
        return np.format_float_positional(f, unique=True, trim="-")
    return np.format_float_scientific(f, unique=True, trim="-")


class Printer:
    """Prints expression trees with minimal parentheses; the defaults spell ``.evz`` text.

    Subclasses change the spelling through the hooks :meth:`name`, :meth:`literal`,
    :meth:`call`, :meth:`operands` and :meth:`parenthesize_unary`, and the set of ops
    written as operators (:attr:`operators`); :meth:`expr` places the parentheses.
    """

    #: Ops written with their infix operator (``+ - * /``, unary ``-``); the rest are calls.
    operators: frozenset[str] = frozenset(n for n, op in OPS.items() if op.infix is not None)

    def name(self, name: str) -> str:
        """A name's text."""
        return name

    def literal(self, x: float) -> tuple[str, int]:
        """A literal's text and precedence (a leading minus binds as unary minus)."""
        s = format_literal(x)
        return s, PREC_UNARY if s.startswith("-") else PREC_ATOM

    def call(self, node: Call) -> tuple[str, int]:
        """An op that is not an operator here, as ``op(args)``."""
        return f"{node.op}({', '.join(self.text(a) for a in node.args)})", PREC_ATOM

    def operands(self, node: Call) -> list[tuple[str, int]]:
        """An operator's operands, each as (text, precedence)."""
        return [self.expr(a) for a in node.args]

    def parenthesize_unary(self, operand: Node, text: str, prec: int) -> bool:
        """Whether a unary operator's operand needs parentheses. In ``.evz`` text a
        literal operand does too, so that ``-(0.5)`` stays ``neg(0.5)``."""
        return prec < PREC_UNARY or isinstance(operand, float)

    def expr(self, node: Node) -> tuple[str, int]:
        """The text of ``node`` and the precedence of its outermost operator."""
        if isinstance(node, str):
            return self.name(node), PREC_ATOM
        if isinstance(node, float):
            return self.literal(node)
        if node.op not in self.operators:
            return self.call(node)
        op = OPS[node.op]
        if op.arity == 2:
            (lt, lp), (rt, rp) = self.operands(node)
            if lp < op.prec:
                lt = f"({lt})"
            if rp <= op.prec:  # left-associative operators
                rt = f"({rt})"
            return f"{lt} {op.infix} {rt}", op.prec
        ((xt, xp),) = self.operands(node)
        if self.parenthesize_unary(node.args[0], xt, xp):
            xt = f"({xt})"
        return f"{op.infix}{xt}", PREC_UNARY

    def text(self, node: Node) -> str:
        """The text of ``node``."""
        return self.expr(node)[0]


class _CallPrinter(Printer):
    """Every op as a call, as the instruction list stores it."""

    operators = frozenset()


_EVZ = Printer()
_CALLS = _CallPrinter()


def render_expr(node: Node) -> str:
    """Infix ``.evz`` text of an expression tree with minimal parentheses."""
    return _EVZ.text(node)


def instruction_text(ins: Instr) -> str:
    """One instruction as ``target = op(args)``, literals printed as in ``.evz`` text."""
    return f"{ins.target} = {_CALLS.text(Call(ins.op, ins.args))}"
