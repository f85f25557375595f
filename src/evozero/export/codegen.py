"""Code generation shared by the backends: a live program's components as Python functions.

:class:`Codegen` is the program layer's :class:`~evozero.program.printer.Printer` with
Python spellings: infix ops are Python operators where they are exactly the op (float32
``+ - *`` and unary ``-`` are exact in numpy, numba and torch alike; ``/`` is protected,
so ``div`` is a call), every other op is written from the backend's :class:`Form` table,
which reproduces the op table's definition, NaN and infinities included (torch: its
partials too), and names the runtime helpers it calls (``tests/test_export.py`` checks
every op on edge values, values and derivatives). A backend
(:mod:`~evozero.export.numpy_codegen`, :mod:`~evozero.export.torch_codegen`) subclasses it
with its spellings of literals, broadcasts and the scan loop; this module writes the
statements and the ``scan_step``, ``scan``, ``post`` and ``objective`` functions from
them.

A name statically known to be a scalar (a constant, ``progress``, literal arithmetic)
stays a scalar; where a batch op reads one, or a function returns one, it is broadcast to
the batch ``shape``.
"""

from __future__ import annotations

import builtins
import functools
import textwrap
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evozero.export.embed import runtime
from evozero.program.model import Program
from evozero.program.normal_form import Call, Node, expression_forest
from evozero.program.ops import DIV_EPS, EXP_MAX, LOG_EPS, NORM_EPS, OPS, PREC_ATOM, PREC_UNARY
from evozero.program.printer import Printer, format_literal
from evozero.program.vocabulary import INPUTS

__all__ = ["PYTHON_OPERATORS", "Codegen", "Form", "literal_text"]

#: Ops written as Python operators (float32 + - * and unary - are exact everywhere).
PYTHON_OPERATORS: frozenset[str] = frozenset({"add", "sub", "mul", "neg"})

SCAN_ARGS = ", ".join(INPUTS["scan"])
POST_ARGS = ", ".join(INPUTS["post"])
#: The objective's arguments (``ratio`` is computed from ``logp - logp_old``).
OBJECTIVE_ARGS = ", ".join(n for n in INPUTS["objective"] if n != "ratio")


@dataclass(frozen=True)
class Form:
    """How a non-infix op is written: a call template over rendered args (``{0}``...) and
    the runtime helpers it calls."""

    template: str
    helpers: tuple[str, ...] = ()


def literal_text(x: float) -> str:
    """Shortest decimal text of a float32 value whose double rounds back to it."""
    s = format_literal(x)
    return s if float(np.float32(float(s))) == float(np.float32(x)) else repr(float(x))


@functools.cache
def _reserved() -> frozenset[str]:
    """Identifiers the generated modules use for themselves; a program name equal to one
    of them (or to a Python builtin) is written with a trailing underscore."""
    return frozenset(
        set(dir(builtins))
        | {
            "np",
            "torch",
            "numba",
            "_jitable",
            "as_f32",
            "as_batch",
            "scan",
            "scan_step",
            "post",
            "objective",
            "constants",
            "Rule",
            "DIV_EPS",
            "LOG_EPS",
            "EXP_MAX",
            "NORM_EPS",
            "T",
            "B",
            "t",
            "shape",
            "adv_t",
            "vtarget_t",
        }
        | set(runtime("runtime_numpy").functions)
        | set(runtime("runtime_torch").functions)
    )


def python_names(program: Program) -> dict[str, str]:
    """Program name -> identifier in generated code (the same unless reserved)."""
    reserved = _reserved()
    names: set[str] = {c.name for c in program.constants}
    for comp in program.components:
        names.update(INPUTS[comp.kind])
        names.update(comp.carry_names)
        names.update(ins.target for ins in comp.instrs)
    taken = set(names) | reserved
    out: dict[str, str] = {}
    for n in sorted(names):
        new = n
        if n in reserved:
            while new in taken:
                new += "_"
            taken.add(new)
        out[n] = new
    return out


def wrap_call(prefix: str, args: Sequence[str], indent: str, width: int = 96) -> list[str]:
    """``prefix(args)`` on one line, or wrapped with the arguments on continuation lines."""
    one = f"{indent}{prefix}({', '.join(args)})"
    if len(one) <= width:
        return [one]
    inner = indent + "    "
    wrapped = textwrap.wrap(", ".join(args) + ")", width=width - len(inner), break_on_hyphens=False)
    return [f"{indent}{prefix}(", *(inner + w for w in wrapped)]


class Codegen(Printer, ABC):
    """Renders a live program's components as Python source for one backend.

    Subclasses set the class attributes and implement the methods marked *backend*.
    """

    operators = PYTHON_OPERATORS
    #: The backend's name (:data:`evozero.export.BACKENDS`).
    backend: str
    #: Forms of the non-infix ops (``copy`` writes its argument as is).
    forms: Mapping[str, Form]
    #: The runtime module the helpers are copied from, and the helpers always copied.
    runtime: str
    always_helpers: tuple[str, ...] = ()
    #: ``progress`` as the backend's float32 scalar.
    progress_cast: str
    #: Extra parameter of every function (the torch constants dict), with its comma.
    constants_param: str = ""
    #: Decorator of ``scan_step``.
    step_decorator: str = ""
    #: Module whose ``exp`` computes ``ratio``.
    exp_module: str

    def __init__(self, program: Program) -> None:
        self.program = program
        self.py = python_names(program)
        self.helpers: set[str] = set(self.always_helpers)
        self.consts = {c.name for c in program.constants}
        self.scalars: set[str] = set()  # names statically scalar at the current statement
        self.need_shape = False  # set when generated code needs the batch shape

    # -- backend spellings

    @abstractmethod
    def broadcast(self, text: str) -> str:
        """*backend*: a scalar's text as a full batch of ``shape``."""

    def argument(self, node: Node) -> str:
        """A node rendered as an argument of a helper or of a returned tuple."""
        return self.text(node)

    def constant_lines(self, kind: str) -> list[str]:
        """Lines binding the constants a function reads (none: they are module globals)."""
        return []

    @abstractmethod
    def scan_outputs(self) -> list[str]:
        """*backend*: lines allocating scan's outputs ``adv`` and ``vtarget`` (T, B)."""

    @abstractmethod
    def scan_loop(self, carries: str, args: list[str]) -> list[str]:
        """*backend*: the body of scan's loop over t, a call of ``scan_step(*args)`` that
        also returns ``carries`` (each with a leading comma), and scan's return."""

    @abstractmethod
    def zeros(self) -> str:
        """*backend*: a (B,) float32 zero vector like ``r[0]``."""

    @abstractmethod
    def last_v_next(self) -> str:
        """*backend*: ``v_next[T - 1]`` as a carry's own (B,) value."""

    @abstractmethod
    def constants_block(self) -> str | None:
        """*backend*: the module's constants, or None when it writes none."""

    def protection_block(self) -> str:
        """The protection constants of :mod:`evozero.program.ops`, as the helpers read
        them."""
        values = {"DIV_EPS": DIV_EPS, "LOG_EPS": LOG_EPS, "EXP_MAX": EXP_MAX, "NORM_EPS": NORM_EPS}
        return "# Op helpers (evozero's exact float32 definitions).\n" + "\n".join(
            f"{k} = {self.literal(float(v))[0]}" for k, v in values.items()
        )

    def tail(self) -> list[str]:
        """Blocks after the functions."""
        return []

    # -- expressions (Printer hooks)

    def name(self, name: str) -> str:
        return self.py[name]

    def parenthesize_unary(self, operand: Node, text: str, prec: int) -> bool:
        return prec < PREC_UNARY or text.startswith("-")  # never '--x'

    def is_scalar(self, node: Node) -> bool:
        """Whether ``node`` is statically a scalar (no batch input reaches it)."""
        if isinstance(node, float):
            return True
        if isinstance(node, str):
            return node in self.scalars
        if OPS[node.op].batch:
            return False
        return all(self.is_scalar(a) for a in node.args)

    def call(self, node: Call) -> tuple[str, int]:
        if node.op == "copy":
            return self.expr(node.args[0])
        form = self.forms[node.op]
        self.helpers.update(form.helpers)
        args = []
        for a in node.args:
            if OPS[node.op].batch and self.is_scalar(a):
                # A scalar stands for a full batch of equal values.
                self.need_shape = True
                args.append(self.broadcast(self.text(a)))
            else:
                args.append(self.argument(a))
        return form.template.format(*args), PREC_ATOM

    # -- statements and functions

    def body(self, kind: str, indent: str = "    ") -> list[str]:
        """The component's live statements; updates :attr:`scalars` as names are rebound."""
        lines = []
        for target, node in expression_forest(self.program.component(kind)):
            lines.append(f"{indent}{self.py[target]} = {self.argument(node)}")
            if self.is_scalar(node):
                self.scalars.add(target)
            else:
                self.scalars.discard(target)
        return lines

    def full(self, name: str) -> str:
        """An output, broadcast to the batch ``shape`` when it is statically a scalar."""
        text = self.py[name]
        if name not in self.scalars:
            return text
        self.need_shape = True
        return self.broadcast(text)

    def used(self, kind: str) -> set[str]:
        """Names read by the component's live code."""
        return {a for ins in self.program.component(kind).instrs for a in ins.names()}

    def function(
        self,
        kind: str,
        signature: str,
        doc: str,
        setup: list[str],
        returns: Sequence[str],
        shape_of: str,
        decorator: str = "",
    ) -> str:
        """One function: ``signature``, docstring, setup, the component's statements and
        ``return`` of ``returns`` (``shape_of``: an argument of the batch's shape)."""
        self.need_shape = False
        self.scalars = {"progress", *self.consts}
        body = self.body(kind)
        ret = ", ".join(self.full(n) for n in returns)
        head = [decorator] if decorator else []
        head += [f"def {signature}:", textwrap.indent(f'"""{doc}"""', "    ")]
        pre = list(self.constant_lines(kind)) + setup
        if self.need_shape:
            pre.insert(0, f"    shape = {shape_of}.shape")
        return "\n".join([*head, *pre, *body, f"    return {ret}"]) + "\n"

    def progress_setup(self, kind: str) -> list[str]:
        return [f"    progress = {self.progress_cast}"] if "progress" in self.used(kind) else []

    def scan_functions(self) -> list[str]:
        """``scan_step`` (one step t) and ``scan`` (the backward loop over t)."""
        comp = self.program.scan
        carries = [self.py[c] for c in comp.carry_names]
        extra = "".join(f", {c}" for c in carries)
        step = self.function(
            "scan",
            f"scan_step({SCAN_ARGS}{extra}{self.constants_param})",
            "One step t of scan: inputs at t (shape (B,)) and each carry's value at t+1;\n"
            "returns adv and vtarget at t, then each carry's value at t.",
            [],
            ["adv", "vtarget", *comp.carry_names],
            "r",
            decorator=self.step_decorator,
        )
        lines = [
            f"def scan({SCAN_ARGS}{self.constants_param}):",
            '    """Run scan backwards over t = T-1..0; inputs (T, B) -> adv, vtarget (T, B)."""',
        ]
        lines += self.progress_setup("scan")
        lines.append("    T, B = r.shape")
        lines += self.scan_outputs()
        for c in comp.carries:
            init = (
                self.zeros()
                if c.init == "0"
                else (f"{self.last_v_next()} if T > 0 else {self.zeros()}")
            )
            code = f"    {self.py[c.name]} = {init}"
            comment = f"# carry {c.name} = {c.init} at t = T-1"
            lines += (
                [f"{code}  {comment}"]
                if len(code) + len(comment) < 98
                else [f"    {comment}", code]
            )
        args = [f"{n}[t]" for n in INPUTS["scan"] if n != "progress"]
        args += ["progress", *carries]
        lines.append("    for t in range(T - 1, -1, -1):")
        return [step, "\n".join(lines + self.scan_loop(extra, args)) + "\n"]

    def post_function(self) -> str:
        return self.function(
            "post",
            f"post({POST_ARGS}{self.constants_param})",
            "Post-process the whole rollout: inputs of one shape -> adv, vtarget.",
            self.progress_setup("post"),
            ["adv", "vtarget"],
            "adv",
        )

    def objective_function(self) -> str:
        setup = self.progress_setup("objective")
        if "ratio" in self.used("objective"):
            setup.append(f"    ratio = {self.exp_module}.exp(logp - logp_old)")
        return self.function(
            "objective",
            f"objective({OBJECTIVE_ARGS}{self.constants_param})",
            "Per-sample loss (to be minimized, e.g. as its mean); inputs (N,) -> loss (N,).",
            setup,
            ["loss"],
            "logp",
        )

    def functions(self) -> list[str]:
        """The module's functions: ``scan_step``, ``scan``, ``post``, ``objective``."""
        return [*self.scan_functions(), self.post_function(), self.objective_function()]
