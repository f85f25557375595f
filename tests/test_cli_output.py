"""The CLI's printing helpers: program text that parses back at any width, strict JSON."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from cli_checks import LONG_PROGRAMS, TERMINALS, plain, strict_json
from rich.console import Console

from evozero.cli.output import jsonable, print_json, print_program
from evozero.export import pseudocode
from evozero.program import dsl


@pytest.mark.parametrize(("width", "tty"), TERMINALS)
@pytest.mark.parametrize("name", sorted(LONG_PROGRAMS))
def test_a_printed_program_parses_back_at_any_width(name: str, width: int, tty: bool) -> None:
    program = dsl.parse(LONG_PROGRAMS[name])
    text = pseudocode(program)
    assert max(map(len, text.splitlines())) > width  # lines the terminal cannot hold
    out = io.StringIO()
    print_program(
        Console(
            file=out,
            width=width,
            height=25,
            force_terminal=tty,
            color_system="standard" if tty else "auto",
        ),
        text,
    )
    printed = out.getvalue()
    assert ("\x1b[" in printed) == tty  # highlighted on a terminal only
    assert plain(printed) == text
    assert dsl.parse(plain(printed)) == program.live()


def test_jsonable_makes_strict_json_data() -> None:
    data = {
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
        "x": 1.5,
        "np": [np.float32("nan"), np.float64(2.5), np.int64(3), np.bool_(True)],
        "array": np.array([[1.0, np.inf], [np.nan, -0.5]], np.float32),
        "scalar": np.array(np.nan),
        "tuple": (1, None, "s"),
        "path": Path("runs/a"),
        2: {"nested": [math.nan]},
    }
    assert jsonable(data) == {
        "nan": None,
        "inf": None,
        "-inf": None,
        "x": 1.5,
        "np": [None, 2.5, 3, True],
        "array": [[1.0, None], [None, -0.5]],
        "scalar": None,
        "tuple": [1, None, "s"],
        "path": "runs/a",
        "2": {"nested": [None]},
    }


def test_print_json_is_strict(capsys: pytest.CaptureFixture[str]) -> None:
    print_json({"final_return": float("nan"), "steps_per_s": np.float32("inf")})
    assert strict_json(capsys.readouterr().out) == {"final_return": None, "steps_per_s": None}
