"""The one expression printer: precedence, hooks, and the three spellings that use it."""

from __future__ import annotations

import numpy as np
import pytest

from evozero.export.numpy_codegen import NumpyCodegen
from evozero.export.torch_codegen import TorchCodegen
from evozero.program import Call, Instr, Node, dsl, expression_forest, random_program
from evozero.program.mutate import mutate
from evozero.program.printer import Printer, format_literal, instruction_text, render_expr


def C(op: str, *args: Node) -> Call:  # noqa: N802  (reads like the node it builds)
    return Call(op, tuple(args))


@pytest.mark.parametrize(
    ("node", "text"),
    [
        (C("sub", "r", C("sub", "v", "d")), "r - (v - d)"),  # left-associative
        (C("sub", C("sub", "r", "v"), "d"), "r - v - d"),
        (C("mul", C("add", "r", "v"), "d"), "(r + v) * d"),
        (C("add", "r", C("mul", "v", "d")), "r + v * d"),
        (C("div", "r", C("mul", "v", "d")), "r / (v * d)"),
        (C("neg", C("add", "r", "v")), "-(r + v)"),
        (C("neg", C("neg", "r")), "--r"),
        (C("neg", 0.5), "-(0.5)"),  # stays neg(0.5), not the literal -0.5
        (C("mul", -2.0, "r"), "-2 * r"),
        (C("max", C("add", "r", 1.0), C("neg", "v")), "max(r + 1, -v)"),
        (C("copy", C("add", "r", "v")), "copy(r + v)"),
    ],
)
def test_evz_text(node: Node, text: str) -> None:
    assert render_expr(node) == text
    # The text parses back to the same tree.
    p = dsl.parse(
        f"scan:\n  d = v_next\n  adv = {text}\n  vtarget = v\nobjective:\n  loss = logp\n"
    )
    assert render_expr(dict(expression_forest(p.scan))["adv"]) == text


def test_hooks_change_spelling_not_parentheses() -> None:
    class Upper(Printer):
        operators = frozenset({"add", "mul"})

        def name(self, name: str) -> str:
            return name.upper()

        def call(self, node: Call) -> tuple[str, int]:
            return f"{node.op.upper()}[{'; '.join(self.text(a) for a in node.args)}]", 4

    node = C("mul", C("add", "a", 1.0), C("sub", "b", "c"))
    assert Upper().text(node) == "(A + 1) * SUB[B; C]"


def test_instruction_text_is_a_flat_call() -> None:
    assert instruction_text(Instr("x", "add", ("a", -0.5))) == "x = add(a, -0.5)"
    assert instruction_text(Instr("y", "neg", (1e-8,))) == "y = neg(1e-08)"
    assert instruction_text(Instr("z", "copy", ("x",))) == "z = copy(x)"
    assert format_literal(-0.0) == "0" and format_literal(0.1) == "0.1"


def test_python_spellings() -> None:
    p = dsl.parse("scan:\n  adv = -(-r) + -(0.5) * v\n  vtarget = v\nobjective:\n  loss = logp\n")
    node = C("add", C("neg", C("neg", "r")), C("mul", C("neg", 0.5), "v"))
    assert NumpyCodegen(p).text(node) == "-(-r) + -np.float32(0.5) * v"
    assert TorchCodegen(p).text(node) == "-(-r) + -0.5 * v"
    assert TorchCodegen(p).text(C("add", 1.0, 2.0)) == "as_f32(1) + 2"
    assert NumpyCodegen(p).text(C("div", "r", C("copy", C("add", "v", "r")))) == (
        "safe_div(r, v + r)"
    )


def test_mutation_descriptions_use_the_printer() -> None:
    rng = np.random.default_rng(0)
    p = random_program(rng)
    texts = {instruction_text(ins) for c in p.components for ins in c.instrs}
    seen = 0
    for _ in range(60):
        child, m = mutate(p, rng, kinds=("remove",))
        seen += any(t in m.detail for t in texts)
        p = child
        texts = {instruction_text(ins) for c in p.components for ins in c.instrs}
    assert seen > 0
