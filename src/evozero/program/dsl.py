"""The ``.evz`` text format: readable infix pseudocode for update programs.

Example::

    # PPO with GAE (comments start with '#')
    const gamma = 0.99, lam = 0.95, eps = 0.2

    scan:
      carry g = 0                      # a carry; initial value 0 or v_next
      delta = r + gamma * (1 - term) * v_next - v
      g = delta + gamma * lam * (1 - reset) * g
      adv = g
      vtarget = g + v

    post:
      adv = normalize(adv)

    objective:
      loss = -min(ratio * adv, clip(ratio, 1 - eps, 1 + eps) * adv)

Grammar: top-level lines are ``const name = number, ...`` or a section header
(``scan:``, ``post:``, ``objective:``, each at most once, any order, ``post`` may be left
out). Indented lines inside a section are ``carry name = 0|v_next`` (scan only, before the
first instruction) or ``name = expression``. Expressions are parsed with Python's
:mod:`ast` (never evaluated) and may use names, numbers, ``+ - * /`` with Python's
precedence, unary ``-`` and calls of ops with positional arguments. A minus sign written
directly before a number (``-0.5``) is part of the literal; ``-(0.5)`` is ``neg(0.5)``.
``y = x`` is a ``copy``. The parser flattens expressions into anonymous temporaries
(``_1``, ``_2`` ...) and the printer inlines them back, so ``parse(to_text(p)) == p`` for
every valid program; temporaries that cannot be inlined are printed as ``_k = ...``.

Limits
------
A program text is at most :data:`MAX_TEXT_BYTES` bytes; a component has at most
:data:`~evozero.program.vocabulary.MAX_INSTRUCTIONS` instructions after flattening (every
operator and op call is one); an expression nests at most
:data:`~evozero.program.vocabulary.MAX_DEPTH` operators and calls deep (``v + v + v`` is
two deep: ``+`` is left-associative; ``exp(-v)`` too), counted on the tree the printer
writes, temporaries inlined. Python's tokenizer adds its own limit of 200 nested
parentheses. Each limit is an error at ``file:line:col`` of where it is crossed, and the
same limits hold for a :class:`Program` built in Python (without a location). Parsing
and printing take time linear in the text's size.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field

from evozero.program.errors import (
    Loc,
    ProgramError,
    _suggest,
    check_name_syntax,
    excerpt,
    msg_arity,
    msg_too_deep,
    msg_too_many_instructions,
    msg_unknown_op,
)
from evozero.program.model import Carry, Component, Const, Instr, Program, _literal
from evozero.program.normal_form import Call, Node, expression_forest
from evozero.program.ops import OPS
from evozero.program.printer import format_literal, render_expr
from evozero.program.vocabulary import COMPONENTS, MAX_DEPTH, MAX_INSTRUCTIONS

__all__ = ["MAX_TEXT_BYTES", "dump", "format_literal", "load", "parse", "render_expr", "to_text"]

#: A program text (a ``.evz`` file, a stored candidate) is at most this many bytes: far
#: above any real rule (the reference programs are under 2 kB) and above a text with
#: :data:`~evozero.program.vocabulary.MAX_INSTRUCTIONS` instructions in every component.
MAX_TEXT_BYTES = 1 << 18

# ----------------------------------------------------------------------------- printing


def _statement(target: str, node: Node) -> str:
    if isinstance(node, Call) and node.op == "copy" and not isinstance(node.args[0], Call):
        return f"{target} = {render_expr(node.args[0])}"
    return f"{target} = {render_expr(node)}"


def to_text(program: Program, header: str | None = None, indent: str = "  ") -> str:
    """The program as ``.evz`` text; ``header`` becomes leading ``#`` comment lines."""
    lines: list[str] = []
    if header:
        lines += [f"# {h}".rstrip() for h in header.splitlines()]
        lines.append("")
    if program.constants:
        items = [f"{c.name} = {format_literal(c.value)}" for c in program.constants]
        line = "const"
        for it in items:
            if line != "const" and len(line) + len(it) + 2 > 88:
                lines.append(line)
                line = "const"
            line += (" " if line == "const" else ", ") + it
        lines.append(line)
        lines.append("")
    for kind in COMPONENTS:
        comp = program.component(kind)
        lines.append(f"{kind}:")
        lines += [f"{indent}carry {c.name} = {c.init}" for c in comp.carries]
        lines += [indent + _statement(t, n) for t, n in expression_forest(comp)]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def dump(program: Program, path: str | os.PathLike[str], header: str | None = None) -> None:
    """Write ``program`` to ``path`` as ``.evz`` text."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_text(program, header))


# ----------------------------------------------------------------------------- parsing

_HEADER_RE = re.compile(r"([A-Za-z_]\w*)\s*:\s*\Z")
_CONST_RE = re.compile(r"const(?=\s|\Z)")
# Matched against stripped text: a lazy group before '\s*\Z' would be quadratic in a run
# of blanks.
_CONST_ITEM_RE = re.compile(r"([^\s=]+)\s*=\s*(.*)\Z")
_CARRY_RE = re.compile(r"carry\s+([^\s=]+)\s*=\s*(.*)\Z")
_ASSIGN_RE = re.compile(r"([^\s=]+)\s*=(?!=)(.*)\Z")

_BINOPS: dict[type, str] = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div"}
_BINOP_TEXT: dict[type, str] = {
    ast.Pow: "**",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
}
_EXPECTED = "expected names, numbers, + - * /, unary -, and op calls"


@dataclass
class _Section:
    kind: str
    loc: Loc
    instrs: list[Instr] = field(default_factory=list)
    carries: list[Carry] = field(default_factory=list)
    targets: list[tuple[str, Loc]] = field(default_factory=list)


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.file = filename
        self.constants: list[Const] = []
        self.sections: dict[str, _Section] = {}
        # Fresh temporaries skip every '_k' written in the text, so they never capture a
        # user-written one (all are renumbered by normalization anyway).
        self.written_temps = set(re.findall(r"\b_[0-9]+\b", text))
        self.temp = 0
        self.line = 0

    def loc(self, col0: int, line: int | None = None) -> Loc:
        """A location from a 0-based column on the current line."""
        return Loc(self.file, self.line if line is None else line, col0 + 1)

    def error(self, msg: str, col0: int) -> ProgramError:
        return ProgramError(msg, self.loc(col0))

    # -- lines

    def parse(self) -> Program:
        section: _Section | None = None
        for lineno, raw in enumerate(self.text.splitlines(), start=1):
            self.line = lineno
            code = raw.split("#", 1)[0].rstrip()
            if not code.strip():
                continue
            if not code.isascii():
                i, ch = next((i, ch) for i, ch in enumerate(code) if ord(ch) > 127)
                raise self.error(f"non-ASCII character {ch!r} (programs are ASCII)", i)
            stripped = code.lstrip()
            col = len(code) - len(stripped)
            if col == 0:
                section = self._top_level(code, section)
            elif section is None:
                raise self.error(
                    "indented line outside a section; expected 'scan:', "
                    "'post:' or 'objective:' first",
                    col,
                )
            else:
                self._body_line(section, stripped, col)
        for kind in ("scan", "objective"):
            if kind not in self.sections:
                raise ProgramError(f"missing section '{kind}:'", file=self.file)
        const_names = {c.name for c in self.constants}
        for sec in self.sections.values():
            for name, loc in sec.targets:
                msg = check_name_syntax(name, "name")
                if msg is None and name in const_names:
                    msg = f"cannot assign to constant {name!r}"
                if msg is not None:
                    raise ProgramError(msg, loc)
        comps = {
            kind: Component(kind, tuple(sec.instrs), tuple(sec.carries), sec.loc)
            for kind, sec in self.sections.items()
        }
        for kind in COMPONENTS:
            comps.setdefault(kind, Component(kind, loc=Loc(self.file, 1, 1)))
        return Program(tuple(self.constants), comps["scan"], comps["post"], comps["objective"])

    def _top_level(self, code: str, section: _Section | None) -> _Section | None:
        if _CONST_RE.match(code):
            self._const_line(code)
            return section
        m = _HEADER_RE.match(code)
        if m is None:
            raise self.error(
                "expected 'const ...', 'scan:', 'post:' or 'objective:' "
                "(section bodies are indented)",
                0,
            )
        kind = m.group(1)
        if kind not in COMPONENTS:
            raise self.error(f"unknown section {kind!r}{_suggest(kind, COMPONENTS)}", 0)
        if kind in self.sections:
            prev = self.sections[kind].loc.line
            raise self.error(f"duplicate section '{kind}:' (first at line {prev})", 0)
        sec = _Section(kind, self.loc(0))
        self.sections[kind] = sec
        return sec

    def _const_line(self, code: str) -> None:
        pos = len("const")
        body = code[pos:]
        if not body.strip():
            raise self.error("expected 'name = number' after 'const'", pos)
        for item in body.split(","):
            start = pos + len(item) - len(item.lstrip())
            m = _CONST_ITEM_RE.match(item.strip())
            if m is None or not m.group(2):
                raise self.error("expected 'name = number' in const declaration", start)
            name = m.group(1)
            msg = check_name_syntax(name, "constant name")
            if msg is not None:
                raise self.error(msg, start)
            vcol = start + m.start(2)
            value = self._number(m.group(2), vcol)
            self.constants.append(Const(name, value, self.loc(start)))
            pos += len(item) + 1

    def _number(self, src: str, col0: int) -> float:
        try:
            tree = ast.parse(src, mode="eval").body
        except SyntaxError:
            raise self.error(f"expected a number, got {excerpt(src)!r}", col0) from None
        sign = 1.0
        while isinstance(tree, ast.UnaryOp) and isinstance(tree.op, (ast.USub, ast.UAdd)):
            sign = -sign if isinstance(tree.op, ast.USub) else sign
            tree = tree.operand
        if not isinstance(tree, ast.Constant) or not _is_number(tree.value):
            raise self.error(f"expected a number, got {excerpt(src)!r}", col0)
        return self._float32(sign * tree.value, src, col0)

    def _float32(self, value: int | float, src: str, col0: int) -> float:
        try:
            return _literal(value)
        except ProgramError:
            raise self.error(f"number {excerpt(src)} is out of float32 range", col0) from None
        except OverflowError:  # int too large for a float
            raise self.error(f"number {excerpt(src)} is out of float32 range", col0) from None

    def _body_line(self, sec: _Section, code: str, col: int) -> None:
        if code.startswith("carry") and _CARRY_RE.match(code):
            self._carry(sec, code, col)
            return
        m = _ASSIGN_RE.match(code)
        if m is None:
            raise self.error("expected 'name = expression'", col)
        target = m.group(1)
        expr = m.group(2)
        if not expr.strip():
            raise self.error("expected an expression after '='", col + len(code))
        ecol = col + m.start(2) + (len(expr) - len(expr.lstrip()))
        sec.targets.append((target, self.loc(col)))
        self._statement(sec, target, expr.strip(), ecol)

    def _carry(self, sec: _Section, code: str, col: int) -> None:
        m = _CARRY_RE.match(code)
        assert m is not None
        name, init = m.group(1), m.group(2)
        if sec.kind != "scan":
            raise self.error(f"carries are only allowed in scan, not in {sec.kind}", col)
        if sec.instrs:
            raise self.error(
                "carry declarations must come before the first instruction of scan", col
            )
        msg = check_name_syntax(name, "carry name")
        if msg is not None:
            raise self.error(msg, col + m.start(1))
        icol = col + m.start(2)
        if init in ("0", "0.0", "0.", "v_next"):
            init = "0" if init != "v_next" else init
        else:
            raise self.error(
                f"carry {name!r} has initial value {excerpt(init)!r}; it must be 0 or v_next", icol
            )
        sec.carries.append(Carry(name, init, self.loc(col)))

    # -- expressions

    def _statement(self, sec: _Section, target: str, src: str, col0: int) -> None:
        try:
            tree = ast.parse(src, mode="eval").body
        except SyntaxError as e:
            off = (e.offset or 1) - 1
            detail = "" if e.msg == "invalid syntax" else f": {e.msg}"
            raise self.error(f"invalid syntax{detail}", col0 + min(off, len(src))) from None
        except (RecursionError, MemoryError):
            # CPython's parser and AST builder give up on trees thousands deep.
            raise self.error(msg_too_deep(sec.kind), col0) from None
        self.src, self.col0 = src, col0
        deep = self._too_deep(tree)
        if deep is not None:  # before _flatten, which recurses
            raise self.error(msg_too_deep(sec.kind), col0 + deep.col_offset)
        self._flatten(sec, tree, target)

    def _too_deep(self, tree: ast.expr) -> ast.expr | None:
        """The leftmost node nested deeper than :data:`MAX_DEPTH` ops, counted as
        :meth:`_flatten` emits instructions (iterative: the tree may be thousands deep)."""
        stack: list[tuple[ast.expr, int]] = [(tree, 0)]
        while stack:
            node, depth = stack.pop()
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
                stack.append((node.operand, depth))
                continue
            if isinstance(node, ast.BinOp):
                children = [node.left, node.right]
            elif isinstance(node, ast.Call):
                children = list(node.args)
            elif (
                isinstance(node, ast.UnaryOp)
                and isinstance(node.op, ast.USub)
                and not self._is_literal(node)
            ):
                children = [node.operand]
            else:  # a name or number; anything else _flatten rejects where it stands
                continue
            if depth == MAX_DEPTH:
                return node
            stack.extend((c, depth + 1) for c in reversed(children))
        return None

    def _node_loc(self, node: ast.AST) -> Loc:
        return self.loc(self.col0 + node.col_offset)

    def _fresh(self) -> str:
        self.temp += 1
        while f"_{self.temp}" in self.written_temps:
            self.temp += 1
        return f"_{self.temp}"

    def _emit(
        self,
        sec: _Section,
        target: str | None,
        op: str,
        args: list[str | float],
        locs: list[Loc],
        node: ast.AST,
    ) -> str:
        if len(sec.instrs) == MAX_INSTRUCTIONS:
            raise ProgramError(msg_too_many_instructions(sec.kind), self._node_loc(node))
        t = target if target is not None else self._fresh()
        sec.instrs.append(Instr(t, op, tuple(args), self._node_loc(node), tuple(locs)))
        return t

    def _flatten(self, sec: _Section, node: ast.expr, target: str | None) -> str | float:
        """Emit instructions for ``node``; the outermost op is assigned to ``target``."""
        if isinstance(node, ast.Name) or self._is_literal(node):
            value = node.id if isinstance(node, ast.Name) else self._literal_value(node)
            if target is None:
                return value
            return self._emit(sec, target, "copy", [value], [self._node_loc(node)], node)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.UAdd):
                return self._flatten(sec, node.operand, target)
            if isinstance(node.op, ast.USub):
                return self._call(sec, "neg", [node.operand], node, target)
            sym = {ast.Not: "not", ast.Invert: "~"}[type(node.op)]
            raise self.error(
                f"operator {sym!r} is not supported; {_EXPECTED}", self.col0 + node.col_offset
            )
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                sym = _BINOP_TEXT.get(type(node.op), type(node.op).__name__)
                hint = "; use square(x), sqrt(x) or exp/log" if sym == "**" else ""
                raise self.error(
                    f"operator {sym!r} is not supported{hint}; {_EXPECTED}",
                    self.col0 + node.col_offset,
                )
            return self._call(sec, op, [node.left, node.right], node, target)
        if isinstance(node, ast.Call):
            return self._op_call(sec, node, target)
        raise self.error(self._unsupported(node), self.col0 + node.col_offset)

    def _op_call(self, sec: _Section, node: ast.Call, target: str | None) -> str | float:
        col = self.col0 + node.col_offset
        if not isinstance(node.func, ast.Name):
            raise self.error(f"only op calls like exp(x) are supported; {_EXPECTED}", col)
        name = node.func.id
        if name not in OPS:
            raise self.error(msg_unknown_op(name, sec.kind), col)
        if node.keywords:
            kw = node.keywords[0]
            raise self.error(f"{name}() takes positional arguments only", self.col0 + kw.col_offset)
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.error(
                    f"{name}() takes positional arguments only", self.col0 + a.col_offset
                )
        if len(node.args) != OPS[name].arity:
            raise self.error(msg_arity(name, len(node.args)), col)
        return self._call(sec, name, list(node.args), node, target)

    def _call(
        self, sec: _Section, op: str, operands: list[ast.expr], node: ast.AST, target: str | None
    ) -> str:
        args: list[str | float] = []
        locs: list[Loc] = []
        for a in operands:
            args.append(self._flatten(sec, a, None))
            locs.append(self._node_loc(a))
        return self._emit(sec, target, op, args, locs, node)

    def _is_literal(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Constant):
            return True  # validated in _literal_value
        # '-<number>' with nothing in between is a negative literal; '-(0.5)' is neg(0.5).
        return (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and _is_number(node.operand.value)
            and "(" not in self.src[node.col_offset : node.operand.col_offset]
        )

    def _literal_value(self, node: ast.expr) -> float:
        col = self.col0 + node.col_offset
        if isinstance(node, ast.UnaryOp):
            inner = node.operand
            assert isinstance(inner, ast.Constant)
            return self._float32(-inner.value, self._text(node), col)
        assert isinstance(node, ast.Constant)
        if not _is_number(node.value):
            raise self.error(f"only numbers are allowed as literals, got {node.value!r}", col)
        return self._float32(node.value, self._text(node), col)

    def _text(self, node: ast.expr) -> str:
        return self.src[node.col_offset : node.end_col_offset]

    @staticmethod
    def _unsupported(node: ast.expr) -> str:
        if isinstance(node, ast.Compare):
            return "comparisons are not supported; use where(c, a, b), which picks a where c > 0"
        if isinstance(node, ast.IfExp):
            return "conditional expressions are not supported; use where(c, a, b)"
        if isinstance(node, ast.BoolOp):
            return "'and'/'or' are not supported; use min, max or where"
        what = {
            ast.Attribute: "attribute access",
            ast.Subscript: "subscripts",
            ast.Lambda: "lambda",
            ast.Tuple: "tuples",
            ast.List: "lists",
            ast.NamedExpr: "assignment expressions",
        }
        return f"{what.get(type(node), type(node).__name__)} not supported; {_EXPECTED}"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _too_long(head: str, filename: str) -> ProgramError:
    """The error for a text longer than :data:`MAX_TEXT_BYTES` (``head`` is its start),
    at the first character past the limit."""
    lines = (head[:MAX_TEXT_BYTES] + "x").splitlines()
    return ProgramError(
        f"program text is longer than {MAX_TEXT_BYTES} bytes (the limit); "
        "a rule is a few kB: is this the right file?",
        Loc(filename, len(lines), len(lines[-1])),
    )


def parse(text: str, filename: str = "<string>") -> Program:
    """Parse ``.evz`` text into a validated, normalized :class:`Program`.

    Raises :class:`ProgramError` whose ``str`` is ``filename:line:col: message``, also
    for a text over the limits in the module docstring.
    """
    if len(text) > MAX_TEXT_BYTES:  # characters; more bytes than that means non-ASCII
        raise _too_long(text, filename)
    return _Parser(text, filename).parse()


def load(path: str | os.PathLike[str]) -> Program:
    """Read and parse a ``.evz`` file (errors name the path as given).

    Reads at most :data:`MAX_TEXT_BYTES` + 1 bytes, so a huge file fails fast.
    """
    with open(path, "rb") as f:
        data = f.read(MAX_TEXT_BYTES + 1)
    if len(data) > MAX_TEXT_BYTES:
        raise _too_long(data.decode("utf-8", "replace"), os.fspath(path))
    return parse(data.decode("utf-8"), os.fspath(path))
