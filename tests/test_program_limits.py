"""Program size and depth: documented limits, one-line errors at file:line:col, linear work.

The limits are :data:`~evozero.program.vocabulary.MAX_DEPTH` (per expression),
:data:`~evozero.program.vocabulary.MAX_INSTRUCTIONS` (per component) and
:data:`~evozero.program.dsl.MAX_TEXT_BYTES` (per text). Everything that walks expression
trees recurses; these tests check that no input reaches a RecursionError, that a program at
the limits works end to end, and that the parser and printer do work linear in the size.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sized_programs import statements_program  # tests/ is on sys.path
from typer.testing import CliRunner

from evozero import export
from evozero.cli import app
from evozero.native.interpreter import NativeProgram
from evozero.program import (
    MAX_DEPTH,
    MAX_INSTRUCTIONS,
    Instr,
    Program,
    ProgramError,
    dsl,
    evaluate,
)
from evozero.program.canon import canonical_key
from evozero.program.dsl import MAX_TEXT_BYTES

HEAD = "scan:\n  adv = r\n  vtarget = v\nobjective:\n"
LOSS_LINE = 5  # the line of "  loss = ..." after HEAD
runner = CliRunner()


def objective(expr: str) -> str:
    return f"{HEAD}  loss = {expr}\n"


def sum_of(n: int) -> str:
    return " + ".join(["v"] * n)  # n - 1 additions, left-associative: n - 1 deep


def calls(depth: int, ops: tuple[str, ...] = ("exp", "tanh", "neg", "sigmoid")) -> str:
    text = "v"
    for i in range(depth):
        text = f"{ops[i % len(ops)]}({text})"
    return text


def after_parens(expr: str, k: int) -> int:
    """The 1-based column, on the loss line, just after the k-th '(' of ``expr``."""
    i = -1
    for _ in range(k):
        i = expr.index("(", i + 1)
    return len("  loss = ") + i + 2


def parse_error(text: str, filename: str = "deep.evz") -> ProgramError:
    with pytest.raises(ProgramError) as info:
        dsl.parse(text, filename)
    assert "\n" not in str(info.value)
    return info.value


def with_stack(frames: int, fn: Callable[[], object]) -> object:
    """Call ``fn`` ``frames`` Python frames deeper than here (a caller's own stack)."""
    return with_stack(frames - 1, fn) if frames else fn()


# ----------------------------------------------------------------------------- depth


@pytest.mark.parametrize(
    "expr, col",
    [
        (sum_of(10_001), 10),  # the example: too deep for CPython's own AST builder
        (sum_of(1_001), 10),  # parsed by CPython, refused before flattening
        (sum_of(MAX_DEPTH + 2), 10),
        ("-" * 20_000 + "v", 10),  # unary chains recurse in CPython's parser
        ("- " * (MAX_DEPTH + 1) + "v", 10 + 2 * MAX_DEPTH),
        (calls(MAX_DEPTH + 1), after_parens(calls(MAX_DEPTH + 1), MAX_DEPTH)),  # nested calls
        ("max(v, " * 150 + "v" + ")" * 150, 10 + 7 * MAX_DEPTH),
    ],
    ids=["sum10001", "sum1001", "sum-limit", "unary20000", "unary-limit", "calls", "max"],
)
def test_too_deep_is_one_line_at_file_line_col(expr: str, col: int) -> None:
    err = parse_error(objective(expr))
    assert (err.file, err.line, err.col) == ("deep.evz", LOSS_LINE, col)
    assert err.message == (
        f"expression in objective nests deeper than {MAX_DEPTH} operators "
        "and calls (the limit); split it into named steps (t = ..., then "
        "use t)"
    )


def test_depth_counts_what_the_printer_nests() -> None:
    # Unary plus, grouping parentheses and negative literals add no level.
    dsl.parse(objective("+" * 500 + "(" * 150 + sum_of(MAX_DEPTH + 1) + ")" * 150))
    dsl.parse(objective(" * ".join(["-2.5"] * (MAX_DEPTH + 1))))
    parse_error(objective(" * ".join(["-v"] * (MAX_DEPTH + 1))))
    # Named steps are not inlined: splitting an expression fixes it.
    steps = "".join(f"  t = t + {sum_of(60)}\n" for _ in range(5))
    dsl.parse(f"{HEAD}  t = v\n{steps}  loss = t\n")


def test_written_temporaries_count_once_inlined() -> None:
    # '_k' names are inlined into one tree: the limit holds across the statements.
    lines = ["  _1 = v"] + [f"  _{i + 1} = _{i} + v" for i in range(1, MAX_DEPTH + 5)]
    err = parse_error(HEAD + "\n".join(lines) + f"\n  loss = _{MAX_DEPTH + 5}\n", "t.evz")
    assert "nests deeper than" in err.message
    # At the step MAX_DEPTH + 1 levels below 'loss = ...' (its expression's column).
    assert (err.file, err.line, err.col) == ("t.evz", 10, 8)


def test_python_built_program_hits_the_same_limits() -> None:
    def build(objective: list[Instr]) -> Program:
        return Program.build(
            scan=[("adv", "copy", "r"), ("vtarget", "copy", "v")], objective=objective
        )

    chain = [Instr("_1", "exp", ("v",))] + [
        Instr(f"_{i + 1}", "tanh", (f"_{i}",)) for i in range(1, MAX_DEPTH)
    ]
    deepest = build([*chain[:-1], Instr("loss", "tanh", (f"_{MAX_DEPTH - 1}",))])
    assert dsl.parse(dsl.to_text(deepest)) == deepest
    with pytest.raises(ProgramError, match=f"objective nests deeper than {MAX_DEPTH}"):
        build([*chain, Instr("loss", "neg", (f"_{MAX_DEPTH}",))])
    with pytest.raises(
        ProgramError, match=f"objective has more than {MAX_INSTRUCTIONS} instructions"
    ):
        build([Instr("loss", "add", ("v", "v"))] * (MAX_INSTRUCTIONS + 1))


@pytest.mark.parametrize(
    "expr",
    [
        sum_of(MAX_DEPTH + 1),
        calls(MAX_DEPTH),
        "-(" * (MAX_DEPTH - 1) + "v * logp" + ")" * (MAX_DEPTH - 1),
    ],
    ids=["sum", "calls", "neg"],
)
def test_program_at_the_depth_limit_works_everywhere(expr: str) -> None:
    """Parser, printers, exports, sympy and both evaluators, with 200 frames of margin."""
    text = objective(expr)

    def everything() -> None:
        program = dsl.parse(text)
        assert dsl.parse(dsl.to_text(program)) == program
        assert dsl.parse(export.pseudocode(program)) == program
        for backend in export.BACKENDS:
            compile(export.export_source(program, backend), "rule.py", "exec")
        assert "\\leftarrow" in export.latex(program)
        export.simplified_text(program, timeout=0.5)
        assert canonical_key(program, timeout=5.0)[:2] in ("s:", "f:")
        inputs = {n: np.full(3, 0.5, np.float32) for n in evaluate.OBJECTIVE_INPUTS}
        want = evaluate.run_objective(program, inputs, 0.5)
        got = NativeProgram(program).run_objective(inputs, 0.5)
        np.testing.assert_allclose(got.loss, want.loss, rtol=1e-5)

    with_stack(200, everything)


def test_long_chains_of_named_steps_stay_out_of_sympy() -> None:
    # Each statement is shallow, but sympy would build one tree 300 deep: the symbolic
    # paths report it as too large instead of overflowing the stack.
    program = dsl.parse(f"{HEAD}  y = v\n" + "  y = exp(y)\n" * 300 + "  loss = y\n")
    assert "loss = <too large to expand>" in export.simplified_text(program, timeout=0.5)
    assert canonical_key(program).startswith("f:")
    assert export.latex(program).count("\\leftarrow") == 2 + 302


# ----------------------------------------------------------------------------- size


def test_too_many_instructions_is_an_error_where_the_limit_is_crossed() -> None:
    # Two instructions a line: the limit is crossed by the mul on the line holding the
    # (MAX_INSTRUCTIONS // 2 + 1)-th statement.
    n = MAX_INSTRUCTIONS // 2
    err = parse_error(HEAD + "  loss = v * 2 + 1\n" * (n + 1), "big.evz")
    assert (err.file, err.line, err.col) == ("big.evz", 4 + n + 1, 10)
    assert err.message == (
        f"objective has more than {MAX_INSTRUCTIONS} instructions (the "
        "limit per component; every operator and op call counts); make "
        "it shorter"
    )
    program = dsl.parse(HEAD + "  loss = v * 2 + 1\n" * n)
    assert len(program.objective) == MAX_INSTRUCTIONS


def test_too_long_text_is_an_error_at_the_first_byte_past_the_limit(tmp_path: Path) -> None:
    comment = "# " + "x" * 97 + "\n"  # 100 bytes a line
    lines = MAX_TEXT_BYTES // 100 + 1
    text = objective("v") + comment * lines
    path = tmp_path / "huge.evz"
    path.write_text(text)
    err = parse_error(text, str(path))
    past = MAX_TEXT_BYTES - len(objective("v"))  # bytes of comments within the limit
    assert (err.line, err.col) == (LOSS_LINE + 1 + past // 100, past % 100 + 1)
    assert err.message.startswith(f"program text is longer than {MAX_TEXT_BYTES} bytes")
    with pytest.raises(ProgramError) as info:
        dsl.load(path)
    assert str(info.value) == str(err)
    # Just within the limit it parses.
    dsl.parse(text[:MAX_TEXT_BYTES])


def test_pathological_lines_parse_in_linear_time(tmp_path: Path) -> None:
    """Lines about MAX_TEXT_BYTES long: long runs of blanks once made the line regexes
    quadratic (hours at this size), and a 5,000-digit temporary name crashed int()."""
    blanks = " " * (MAX_TEXT_BYTES - 200)
    cases = [
        f"const a = 1{blanks}2\n{objective('v')}",
        f"scan:\n  carry c = 0{blanks}x\n  adv = r\n  vtarget = v\nobjective:\n  loss = v\n",
        f"const a = {blanks}1\n{objective('v * a')}",
        f"{HEAD}  _{'1' * 5000} = v\n  loss = _{'1' * 5000} + v\n",
    ]
    paths = []
    for i, text in enumerate(cases):
        paths.append(tmp_path / f"case{i}.evz")
        paths[-1].write_text(text)
    script = (
        "import sys\nfrom evozero.program import ProgramError, dsl\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n        dsl.load(path)\n        print('ok')\n"
        "    except ProgramError as e:\n        print(e.message)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # seconds; the quadratic regexes took hours
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "expected a number, got '1                                    ...'",
        "carry 'c' has initial value '0                                    ...'; it must be "
        "0 or v_next",
        "ok",
        "ok",
    ]


def test_readme_states_the_limits() -> None:
    from evozero.program.mutate import MAX_INSTRS

    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    for fact in (
        f"a text of at most {MAX_TEXT_BYTES // 1024} KiB",
        f"at most {MAX_INSTRUCTIONS:,} instructions per component",
        f"nested at most {MAX_DEPTH} operators and calls deep",
        f"search grows a component to {MAX_INSTRS} instructions",
    ):
        assert fact in readme, fact


# ----------------------------------------------------------------------------- linear


def _line_events(fn: Callable[[], object]) -> int:
    """Python lines executed by ``fn`` (a deterministic measure of interpreted work)."""
    count = 0

    def trace(frame, event, arg):  # noqa: ANN001, ANN202
        nonlocal count
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def test_parse_and_print_do_linear_work() -> None:
    """Each further statement costs the same work (counted, not timed): from 20 to 60
    statements a component as much as from 60 to 100 (quadratic work: 2 times as much)."""

    def work(n: int) -> int:
        text = statements_program(n)
        return _line_events(lambda: export.pseudocode(dsl.parse(text)))

    w20, w60, w100 = work(20), work(60), work(100)
    assert 0.95 < (w100 - w60) / (w60 - w20) < 1.05, (w20, w60, w100)


# ----------------------------------------------------------------------------- CLI


def _deep_files(tmp_path: Path) -> list[Path]:
    files = []
    for name, expr in (("sum10001", sum_of(10_001)), ("calls", calls(150))):
        path = tmp_path / f"{name}.evz"
        path.write_text(objective(expr))
        files.append(path)
    many = tmp_path / "many.evz"
    many.write_text(HEAD + "  loss = v * 2 + 1\n" * (3 * MAX_INSTRUCTIONS))
    huge = tmp_path / "huge.evz"
    huge.write_text(objective("v") + "# comment\n" * MAX_TEXT_BYTES)  # 10 times the limit
    return [*files, many, huge]


@pytest.mark.parametrize(
    "command", ["show", "show --latex", "show --simplify", "export", "eval", "evolve --init"]
)
def test_cli_gives_one_line_on_too_deep_or_too_large_programs(tmp_path: Path, command: str) -> None:
    for path in _deep_files(tmp_path):
        args = command.split() + [str(path)]
        if command == "export":
            args += ["-o", str(tmp_path / "rule.py")]
        if command.startswith("evolve"):
            args += ["--budget", "2", "--out", str(tmp_path / "run")]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}:"), result.stderr
        assert "the limit" in lines[0]
        assert not (tmp_path / "run").exists() and not (tmp_path / "rule.py").exists()
