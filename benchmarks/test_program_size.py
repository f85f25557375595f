"""Parse and print time against program size: linear up to the limits, cut off past them.

Rows ``N statements`` hold a program with N statements of 3 instructions in each of its
three components, up to :data:`~evozero.program.vocabulary.MAX_INSTRUCTIONS`; figures are
the median milliseconds to parse it (``dsl.parse``: validation and normal form included)
and to print its live pseudocode (what ``evozero show`` prints), microseconds per
instruction, and that per-instruction cost relative to the smallest size measured in the
same run (1.0 for linear work). Rows ``over ...`` are texts past a limit: the median
milliseconds until the one-line error (``dsl.load`` of a 10 MB file, whose first
``MAX_TEXT_BYTES`` are all it reads; and a text with 3 times the instruction limit).

Run with: ``pytest benchmarks/test_program_size.py --benchmark-enable``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from evozero import export
from evozero.program import ProgramError, dsl
from evozero.program.dsl import MAX_TEXT_BYTES
from evozero.program.vocabulary import MAX_INSTRUCTIONS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from sized_programs import statements_program  # noqa: E402  (a helper of the tests)

TABLE = "program size: parse + print (median)"
SIZES = (20, 40, 80, 160, 320)  # statements per component; 3 * 320 < MAX_INSTRUCTIONS
_PER_INSTR: dict[int, float] = {}


@pytest.mark.parametrize("n", SIZES)
def test_parse_and_print(benchmark, figures, n: int) -> None:
    benchmark.group = "program size"
    text = statements_program(n)
    instrs = sum(len(c) for c in dsl.parse(text).components)
    benchmark.pedantic(
        lambda: export.pseudocode(dsl.parse(text)), rounds=5, iterations=1, warmup_rounds=1
    )
    median = benchmark.stats.stats.median
    row = f"{n} statements ({instrs} instructions, {len(text) // 1000} kB)"
    figures(TABLE, row, "ms", median * 1e3)
    figures(TABLE, row, "us/instruction", median * 1e6 / instrs)
    _PER_INSTR[n] = median / instrs
    if SIZES[0] in _PER_INSTR:
        figures(TABLE, row, "ratio to smallest", _PER_INSTR[n] / _PER_INSTR[SIZES[0]])


def _fails(fn) -> None:  # noqa: ANN001
    with pytest.raises(ProgramError, match="the limit"):
        fn()


def test_over_the_text_limit(benchmark, figures, tmp_path: Path) -> None:
    benchmark.group = "program size"
    path = tmp_path / "huge.evz"
    text = statements_program(320)
    path.write_text(text * (10_000_000 // len(text) + 1))
    assert path.stat().st_size > 10_000_000
    benchmark.pedantic(lambda: _fails(lambda: dsl.load(path)), rounds=5, iterations=1)
    figures(
        TABLE,
        f"over the text limit (10 MB file, {MAX_TEXT_BYTES} B read)",
        "ms",
        benchmark.stats.stats.median * 1e3,
    )


def test_over_the_instruction_limit(benchmark, figures) -> None:
    benchmark.group = "program size"
    text = "scan:\n  adv = r\n  vtarget = v\nobjective:\n" + "  loss = v * 2 + 1\n" * (
        3 * MAX_INSTRUCTIONS
    )
    benchmark.pedantic(lambda: _fails(lambda: dsl.parse(text)), rounds=5, iterations=1)
    figures(
        TABLE,
        f"over the instruction limit ({6 * MAX_INSTRUCTIONS} in a component)",
        "ms",
        benchmark.stats.stats.median * 1e3,
    )
