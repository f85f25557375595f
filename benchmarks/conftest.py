"""Benchmark plumbing: each benchmark records a figure and, where it has one,
the baseline measured in the same run; the summary prints the ratios.

Run with: ``pytest benchmarks --benchmark-enable`` (add ``-k game`` to select).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_FIGURES: dict[str, dict[str, dict[str, float]]] = {}


def record(table: str, row: str, column: str, value: float) -> None:
    """Put one measured figure into a summary table printed at the end of the run."""
    _FIGURES.setdefault(table, {}).setdefault(row, {})[column] = value


@pytest.fixture
def figures():
    return record


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FIGURES:
        return
    out = Path(os.environ.get("EVOZERO_BENCH_OUT", ".benchmarks/evozero-figures.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_FIGURES, indent=2))
    for table, rows in _FIGURES.items():
        columns = sorted({c for r in rows.values() for c in r})
        terminalreporter.write_sep("=", table)
        terminalreporter.write_line(" | ".join(["", *columns]))
        for name, r in rows.items():
            cells = [f"{r[c]:,.3g}" if c in r else "" for c in columns]
            terminalreporter.write_line(" | ".join([name, *cells]))
    terminalreporter.write_line(f"figures written to {out}")
