"""The ``evozero`` command line."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import evozero
from evozero import dsl
from evozero.envs import GAMES, MinAtarVecEnv
from evozero.program import Program, ProgramError
from evozero.train import TrainConfig, TrainResult, learning_curve, train

app = typer.Typer(
    help="Discover reinforcement-learning update rules by program search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def fail(message: str) -> None:
    """Exit with a one-line error (no traceback): what is wrong and how to fix it."""
    # soft_wrap: one line whatever the terminal width; escape: messages may hold '[...]'.
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False,
                               soft_wrap=True)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        console.print(f"evozero {evozero.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """evozero: evolve RL update rules on native MinAtar."""


@app.command()
def games(
    steps: int = typer.Option(200_000, help="Env steps per game (random policy)."),
    num_envs: int = typer.Option(256, help="Envs stepped together."),
    seed: int = typer.Option(0, help="Seed of env 0 (env i gets seed + i)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Play every native game with a uniformly random policy: returns and speed."""
    if steps < 1 or num_envs < 1:
        fail("--steps and --num-envs must be at least 1")
    rows = []
    for game in GAMES:
        env = MinAtarVecEnv(game, num_envs, seed=seed)
        env.reset()
        rng = np.random.default_rng(seed)
        actions = rng.integers(0, 6, size=(max(1, steps // num_envs), num_envs))
        ret = np.zeros(num_envs)
        finished: list[float] = []
        start = time.perf_counter()
        for a in actions:
            _, r, term, trunc, _ = env.step(a)
            ret += r
            done = term | trunc
            finished.extend(ret[done])
            ret[done] = 0
        seconds = time.perf_counter() - start
        total = actions.size
        rows.append(
            {
                "game": game,
                "steps": int(total),
                "episodes": len(finished),
                "mean_return": float(np.mean(finished)) if finished else float("nan"),
                "steps_per_s": total / seconds,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Native MinAtar, random policy (sticky actions 0.1)")
    for col in ("game", "steps", "episodes", "mean return", "steps/s (Python loop)"):
        table.add_column(col, justify="left" if col == "game" else "right")
    for r in rows:
        table.add_row(
            r["game"], f"{r['steps']:,}", f"{r['episodes']:,}", f"{r['mean_return']:.2f}",
            f"{r['steps_per_s']:,.0f}",
        )
    console.print(table)


# ----------------------------------------------------------------------------- programs


def _load_program(path: Path) -> Program:
    """Read and parse a .evz file, or fail with a one-line message."""
    if not path.exists():
        fail(f"no such program file: {path}")
    if not path.is_file():
        fail(f"not a file: {path}")
    try:
        return dsl.load(path)
    except ProgramError as e:
        fail(str(e))
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {path}: {e}")
    raise AssertionError("unreachable")


@app.command()
def show(
    program: Path = typer.Argument(..., help="The update program (.evz)."),
    latex: bool = typer.Option(False, "--latex", help="Print LaTeX instead of pseudocode."),
    simplify: bool = typer.Option(
        False, "--simplify", help="Print each component's outputs as simplified expressions."),
    timeout: float = typer.Option(
        5.0, "--timeout", help="Seconds allowed to simplify each output (--simplify)."),
) -> None:
    """Print the live part of PROGRAM (dead code dropped) as pseudocode or LaTeX."""
    from rich.syntax import Syntax

    from evozero import export

    prog = _load_program(program)
    if not simplify:
        if latex:
            print(export.latex(prog), end="")
        else:
            console.print(Syntax(export.pseudocode(prog), "python", theme="ansi_dark",
                                 background_color="default"))
        return
    print(export.simplified_text(prog, latex=latex, timeout=timeout), end="")


@app.command("export")
def export_command(
    program: Path = typer.Argument(..., help="The update program (.evz)."),
    output: Path = typer.Option(..., "-o", "--output", help="The Python file to write."),
    backend: str = typer.Option("numpy", "--backend", help="numpy (numba-compilable) or torch."),
) -> None:
    """Write PROGRAM as a standalone Python module with scan, post and objective functions."""
    from evozero import export

    if backend not in export.BACKENDS:
        fail(f"unknown backend {backend!r}; choose one of: {', '.join(export.BACKENDS)}")
    prog = _load_program(program)
    if output.is_dir():
        fail(f"output {output} is a directory; give a file name such as {output / 'rule.py'}")
    if not output.parent.is_dir():
        fail(f"output directory {output.parent} does not exist")
    try:
        export.write_export(prog, output, backend, source=str(program))
    except OSError as e:
        fail(f"cannot write {output}: {e}")
    console.print(f"wrote {output} ({backend}): scan, post, objective", highlight=False,
                  markup=False, soft_wrap=True)


# ----------------------------------------------------------------------------- training


@app.command("eval")
def eval_command(
    program: Path = typer.Argument(..., help="The update program (.evz)."),
    env: str = typer.Option("breakout", "--env", help="A MinAtar game or a gymnasium id."),
    steps: int = typer.Option(1_000_000, "--steps", help="Env steps per run."),
    seeds: int = typer.Option(3, "--seeds", help="Number of runs (seeds 0..K-1)."),
    workers: int = typer.Option(0, "--workers", help="Runs in parallel (0: one per core)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Save learning curves to this PNG."),
) -> None:
    """Train an agent with PROGRAM on ENV for each seed and summarize the returns."""
    if seeds < 1:
        fail("--seeds must be at least 1")
    prog = _load_program(program)
    try:
        config = TrainConfig(total_steps=steps)
    except ValueError as e:
        fail(f"--steps: {e}")
    if plot is not None and not plot.parent.exists():
        fail(f"cannot write the plot: directory {plot.parent} does not exist")

    workers = workers or min(seeds, os.cpu_count() or 1)
    done = [0] * seeds
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True, disable=as_json,
    ) as bar:
        task = bar.add_task(f"{program.name} on {env}", total=seeds * config.num_updates
                            * config.num_envs * config.num_steps)

        def run(seed: int) -> TrainResult:
            def tick(n: int) -> None:
                done[seed] = n
                bar.update(task, completed=sum(done))

            return train(prog, env, config, seed, on_progress=tick)

        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(run, range(seeds)))
        except ValueError as e:
            fail(str(e))

    finals = np.array([r.final_return for r in results])
    summary = {
        "program": str(program),
        "env": env,
        "steps": config.total_steps,
        "runs": [r.summary() for r in results],
        "final_return_mean": float(np.nanmean(finals)) if np.isfinite(finals).any() else None,
        "final_return_std": float(np.nanstd(finals)) if np.isfinite(finals).any() else None,
    }
    if plot is not None:
        _plot(results, plot, title=f"{program.name} on {env}")
    if as_json:
        print(json.dumps(summary, indent=2, default=float))
        return
    table = Table(title=f"{program.name} on {env}, {config.total_steps:,} steps per run")
    for col in ("seed", "status", "final return", "AUC", "episodes", "steps/s"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(str(r.seed), r.status, f"{r.final_return:.2f}", f"{r.auc:.2f}",
                      f"{r.episode_returns.size:,}", f"{r.steps_per_second:,.0f}")
    if summary["final_return_mean"] is not None:
        table.add_row("mean ± std", "", f"{summary['final_return_mean']:.2f} ± "
                      f"{summary['final_return_std']:.2f}", "", "", "", style="bold")
    console.print(table)
    for r in results:
        if r.status != "ok":
            console.print(f"seed {r.seed}: {r.status}: {r.message}")
    if plot is not None:
        console.print(f"learning curves written to {plot}")


def _plot(results: list[TrainResult], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    curves = []
    for r in results:
        x, y = learning_curve(r.episode_returns, r.episode_end_steps, r.total_steps, bins=50)
        curves.append(y)
        ax.plot(x, y, alpha=0.4, label=f"seed {r.seed}")
    stack = np.vstack(curves)
    seen = np.isfinite(stack).sum(axis=0)  # bins before any episode ended are NaN
    mean = np.where(seen > 0, np.nansum(stack, axis=0) / np.maximum(seen, 1), np.nan)
    ax.plot(x, mean, color="black", lw=2, label="mean")
    ax.set(xlabel="env steps", ylabel="episodic return", title=title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
