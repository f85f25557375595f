"""``evozero show`` and ``evozero export``: a program (or a run's best rules) as text,
LaTeX or a Python module."""

from __future__ import annotations

from pathlib import Path

import typer

from evozero.cli.app import console, fail, load_program, open_run, store_errors
from evozero.cli.output import JSON_NOTE, print_json, print_program
from evozero.cli.params import PathArg, Seconds, program_or_run, top_option
from evozero.cli.search import show_run
from evozero.program.model import Program


def show(
    program: Path = program_or_run(),
    latex: bool = typer.Option(False, "--latex", help="Print LaTeX instead of pseudocode."),
    simplify: bool = typer.Option(
        False, "--simplify", help="Print each component's outputs as simplified expressions."
    ),
    timeout: float = typer.Option(
        5.0,
        "--timeout",
        parser=Seconds(),
        metavar="SECONDS",
        help="Seconds allowed to simplify each output (--simplify; 0: none).",
    ),
    top: int = top_option(3, "Run directory: how many of the best rules."),
    as_json: bool = typer.Option(False, "--json", help=f"Print JSON ({JSON_NOTE})."),
) -> None:
    """Print PROGRAM's live part (dead code dropped) as pseudocode or LaTeX; or, for a run
    directory, its hall of fame, its best rules and its final report."""
    from evozero import export

    if program.is_dir():
        show_run(program, top, as_json)
        return
    prog = load_program(program)
    if simplify:
        form, text = "simplified", export.simplified_text(prog, latex=latex, timeout=timeout)
    elif latex:
        form, text = "latex", export.latex(prog)
    else:
        form, text = "evz", export.pseudocode(prog)
    if as_json:
        print_json({"program": str(program), "format": form, "text": text})
    elif form == "evz":
        print_program(console, text)
    else:
        print(text, end="")


def export_command(
    program: Path = program_or_run(),
    output: Path = typer.Option(
        ...,
        "-o",
        "--output",
        parser=PathArg("new file", "a file name such as rule.py"),
        metavar="FILE",
        help="The Python file to write.",
    ),
    backend: str = typer.Option(
        "numpy", "--backend", metavar="NAME", help="numpy (numba-compilable) or torch."
    ),
    top: int = top_option(
        1, "Run directory: export the K best rules (K > 1 writes FILE_1.py ... FILE_K.py)."
    ),
) -> None:
    """Write PROGRAM (or a run's best rules) as a standalone Python module with scan, post
    and objective functions."""
    from evozero import export

    if backend not in export.BACKENDS:
        fail(f"unknown backend {backend!r}; choose one of: {', '.join(export.BACKENDS)}")
    if program.is_dir():
        targets = run_exports(program, top, output)
    else:
        targets = [(load_program(program), output, str(program))]
    for prog, path, source in targets:
        try:
            export.write_export(prog, path, backend, source=source)
        except OSError as e:
            fail(f"cannot write {path}: {e}")
        console.print(
            f"wrote {path} ({backend}): scan, post, objective of {source}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@store_errors
def run_exports(run_dir: Path, top: int, output: Path) -> list[tuple[Program, Path, str]]:
    """The ``top`` best rules of a run, each with the file it is exported to (none if one
    of them is damaged)."""
    from evozero.search.store import DamagedCandidate

    with open_run(run_dir) as store:
        store.count_by_status(
            children=None
        )  # notes the rows whose status is damaged: they may be best
        best = store.best(top)  # a damaged row among the best is left out, and noted
        problems = [
            f"{run_dir}: {where} is damaged ({why})" for where, why in store.damaged.items()
        ]
        programs = []
        for c in best:
            try:
                programs.append(store.program(c))
            except DamagedCandidate as e:
                problems.append(str(e))
    if problems:
        fail(
            f"{problems[0]}; nothing was exported (`evozero show {run_dir}` lists the other rules)"
        )
    if not best:
        fail(f"{run_dir} has no rule that passed the full suite yet; nothing to export")
    if len(best) == 1 and top == 1:
        paths = [output]
    else:
        paths = [
            output.with_name(f"{output.stem}_{i}{output.suffix or '.py'}")
            for i in range(1, len(best) + 1)
        ]
    return [
        (prog, p, f"{run_dir} candidate {c.id} (fitness {c.fitness:.3f})")
        for prog, c, p in zip(programs, best, paths, strict=True)
    ]
