"""``evozero show`` and ``evozero export``: a program (or a run's best rules) as text,
LaTeX or a Python module."""

from __future__ import annotations

from pathlib import Path

import typer

from evozero.cli.app import console, fail, load_program, open_run, store_errors
from evozero.cli.search import show_run
from evozero.program.model import Program


def show(
    program: Path = typer.Argument(..., help="An update program (.evz) or a run directory."),
    latex: bool = typer.Option(False, "--latex", help="Print LaTeX instead of pseudocode."),
    simplify: bool = typer.Option(
        False, "--simplify", help="Print each component's outputs as simplified expressions."),
    timeout: float = typer.Option(
        5.0, "--timeout", help="Seconds allowed to simplify each output (--simplify)."),
    top: int = typer.Option(3, "--top", help="Run directory: how many of the best rules."),
    as_json: bool = typer.Option(False, "--json", help="Run directory: print JSON."),
) -> None:
    """Print PROGRAM's live part (dead code dropped) as pseudocode or LaTeX; or, for a run
    directory, its hall of fame, its best rules and its final report."""
    from rich.syntax import Syntax

    from evozero import export

    if program.is_dir():
        show_run(program, top, as_json)
        return
    prog = load_program(program)
    if not simplify:
        if latex:
            print(export.latex(prog), end="")
        else:
            console.print(Syntax(export.pseudocode(prog), "python", theme="ansi_dark",
                                 background_color="default"))
        return
    print(export.simplified_text(prog, latex=latex, timeout=timeout), end="")


def export_command(
    program: Path = typer.Argument(..., help="An update program (.evz) or a run directory."),
    output: Path = typer.Option(..., "-o", "--output", help="The Python file to write."),
    backend: str = typer.Option("numpy", "--backend", help="numpy (numba-compilable) or torch."),
    top: int = typer.Option(
        1, "--top", help="Run directory: export the K best rules (K > 1 writes "
        "OUTPUT_1.py ... OUTPUT_K.py)."),
) -> None:
    """Write PROGRAM (or a run's best rules) as a standalone Python module with scan, post
    and objective functions."""
    from evozero import export

    if backend not in export.BACKENDS:
        fail(f"unknown backend {backend!r}; choose one of: {', '.join(export.BACKENDS)}")
    if output.is_dir():
        fail(f"output {output} is a directory; give a file name such as {output / 'rule.py'}")
    if not output.parent.is_dir():
        fail(f"output directory {output.parent} does not exist")
    if program.is_dir():
        targets = run_exports(program, top, output)
    else:
        targets = [(load_program(program), output, str(program))]
    for prog, path, source in targets:
        try:
            export.write_export(prog, path, backend, source=source)
        except OSError as e:
            fail(f"cannot write {path}: {e}")
        console.print(f"wrote {path} ({backend}): scan, post, objective of {source}",
                      highlight=False, markup=False, soft_wrap=True)


@store_errors
def run_exports(run_dir: Path, top: int, output: Path) -> list[tuple[Program, Path, str]]:
    """The ``top`` best rules of a run, each with the file it is exported to (none if one
    of them is damaged)."""
    from evozero.search.store import DamagedCandidate

    if top < 1:
        fail("--top must be at least 1")
    with open_run(run_dir) as store:
        store.count_by_status()  # notes the rows whose status is damaged: they may be best
        best = store.best(top)  # a damaged row among the best is left out, and noted
        problems = [f"{run_dir}: {where} is damaged ({why})"
                    for where, why in store.damaged.items()]
        programs = []
        for c in best:
            try:
                programs.append(store.program(c))
            except DamagedCandidate as e:
                problems.append(str(e))
    if problems:
        fail(f"{problems[0]}; nothing was exported (`evozero show {run_dir}` lists the "
             "other rules)")
    if not best:
        fail(f"{run_dir} has no rule that passed the full suite yet; nothing to export")
    if len(best) == 1 and top == 1:
        paths = [output]
    else:
        paths = [output.with_name(f"{output.stem}_{i}{output.suffix or '.py'}")
                 for i in range(1, len(best) + 1)]
    return [(prog, p, f"{run_dir} candidate {c.id} (fitness {c.fitness:.3f})")
            for prog, c, p in zip(programs, best, paths, strict=True)]
