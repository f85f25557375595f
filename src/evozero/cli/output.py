"""What the commands print as data: program text that parses back as printed, at any
terminal width, and strict JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from rich.console import Console
from rich.syntax import Syntax

#: How ``--json`` writes numbers JSON has no form for (its help texts and the README say so).
JSON_NOTE = "NaN and infinities are written as null"


def print_program(console: Console, text: str) -> None:
    """Print ``.evz`` text so that it parses back to the same program, whatever the width.

    Highlighted on a terminal, plain when piped (``show a.evz > b.evz`` copies the
    program); never wrapped or cropped: a line longer than the terminal runs past its
    edge, where the terminal folds it for display only.
    """
    code = Syntax(text, "python", theme="ansi_dark", background_color="default").highlight(text)
    code.rstrip()  # print ends the last line
    console.print(code, soft_wrap=True, crop=False)


def jsonable(value: Any) -> Any:
    """``value`` as strict JSON data: non-finite floats become None, numpy scalars and
    arrays become numbers and lists, dataclasses dicts, tuples lists; anything else JSON
    cannot hold (a path) becomes its ``str``."""
    if value is None or isinstance(value, str):  # str enums (Status) included
        return value
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {
            k if isinstance(k, str) else str(jsonable(k)): jsonable(v) for k, v in value.items()
        }
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return str(value)


def print_json(value: Any) -> None:
    """Print ``value`` as strict JSON (:func:`jsonable`): what every ``--json`` writes."""
    print(json.dumps(jsonable(value), indent=2, allow_nan=False))
