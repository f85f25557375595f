"""``evozero explain`` and ``evozero report``: what a rule or a run found, read against
the reference rules; and the ``--tensorboard`` logs of ``eval`` and ``evolve``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from evozero.cli.app import (
    console,
    fail,
    load_program,
    open_run,
    store_errors,
    warn,
    writable_dir,
)
from evozero.cli.output import JSON_NOTE, print_json
from evozero.cli.params import PathArg, program_or_run, top_option

if TYPE_CHECKING:
    from evozero.native.train import TrainConfig, TrainResult
    from evozero.program.model import Program


@store_errors
def _run_rules(run_dir: Path, top: int) -> list[tuple[str, Program]]:
    """``(name, program)`` of a run's ``top`` best readable rules (a damaged one is
    passed over, with a warning)."""
    with open_run(run_dir) as store:
        readable, skipped = store.best_readable(top)
    for e in skipped:
        warn(f"{e}; it is not explained")
    rules = [(f"candidate {c.id} (fitness {c.fitness:.3f})", p) for c, p in readable]
    if not rules and skipped:
        fail(
            f"{run_dir}: no rule that passed the full suite is readable ({len(skipped)} "
            "damaged), so there is nothing to explain; `evozero show` lists the run"
        )
    if not rules:
        fail(
            f"{run_dir}: no candidate has passed the full suite yet, so there is nothing "
            "to explain; let the search run longer"
        )
    return rules


def explain_command(
    program: Path = program_or_run(),
    top: int = top_option(1, "Run directory: how many of the best rules."),
    as_json: bool = typer.Option(False, "--json", help=f"Print JSON ({JSON_NOTE})."),
) -> None:
    """Say how PROGRAM (or a run's best rules) differs from the nearest reference program
    (programs/*.evz): constants changed, terms added or removed, ops replaced, components
    removed, per output."""
    from evozero.analysis.explain import explain

    if program.is_dir():
        rules = _run_rules(program, top)
    else:
        rules = [(program.name, load_program(program))]
    try:
        found = [explain(p, name) for name, p in rules]
    except ValueError as e:
        fail(str(e))
    if as_json:
        print_json([x.to_dict() for x in found])
        return
    for x in found:
        console.print(x.text(), highlight=False, markup=False, soft_wrap=True)


_REPORT_ELSEWHERE = "pass --output FILE to write the report elsewhere"


def report_command(
    run_dir: Path = typer.Argument(
        ...,
        parser=PathArg("directory", "a run directory (evozero runs lists them)"),
        metavar="RUN_DIR",
        help="A run directory.",
    ),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        parser=PathArg("new file", "a file name such as report.html"),
        metavar="FILE",
        help="The HTML file to write (default: RUN_DIR/report.html).",
    ),
    top: int = top_option(5, "How many of the best rules to show besides the hall of fame."),
) -> None:
    """Write one self-contained HTML report of a run (figures embedded, readable offline):
    metadata, search curve, Pareto front, lineage, learning curves, per-task results with
    CIs, the hall of fame as pseudocode, formulas and explanations, and the verdict."""
    output = output or run_dir / "report.html"
    writable_dir(output.parent, _REPORT_ELSEWHERE, output)
    path = _write_report(run_dir, output, top)
    console.print(f"wrote {path}", highlight=False, markup=False, soft_wrap=True)


@store_errors
def _write_report(run_dir: Path, output: Path, top: int) -> Path:
    from evozero.analysis.html_report import write_report

    with open_run(run_dir) as store:
        try:
            return write_report(store, output, top)
        except OSError as e:
            fail(f"cannot write {output}: {e.strerror or e}; {_REPORT_ELSEWHERE}")
    raise AssertionError("unreachable")


def tensorboard_available() -> None:
    """Fail with the install line, before any work, when --tensorboard cannot write."""
    from evozero.analysis.tensorboard import TensorBoardMissing, check_available

    try:
        check_available()
    except TensorBoardMissing as e:
        fail(f"--tensorboard: {e}")


def _note(message: str) -> None:
    # stderr: --json keeps stdout to the JSON document
    Console(stderr=True).print(message, highlight=False, markup=False, soft_wrap=True)


def write_training_logs(
    root: Path, name: str, results: Sequence[TrainResult], config: TrainConfig
) -> None:
    """``eval --tensorboard``: one log folder per seed, ``NAME_ENV_seedS``."""
    from evozero.analysis.tensorboard import log_training, summary_writer

    for r in results:
        writer = summary_writer(root / f"{name}_{r.env}_seed{r.seed}")
        try:
            log_training(writer, r, config)
        finally:
            writer.close()
    _note(f"TensorBoard logs written under {root} (view: tensorboard --logdir {root})")


@store_errors
def write_search_logs(root: Path, run_dir: Path) -> None:
    """``evolve --tensorboard``: the search curve and counts of the run in ``run_dir``."""
    from evozero.analysis.tensorboard import log_search, summary_writer

    with open_run(run_dir) as store:
        writer = summary_writer(root / run_dir.name)
        try:
            log_search(writer, store)
        finally:
            writer.close()
    _note(f"TensorBoard logs written under {root} (view: tensorboard --logdir {root})")
