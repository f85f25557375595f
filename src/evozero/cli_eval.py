"""``evozero eval``: train with a program on one task over several seeds."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evozero import dsl
from evozero.program import ProgramError
from evozero.train import TrainConfig, TrainResult, learning_curve, train


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
    from evozero.cli import console, fail

    if seeds < 1:
        fail("--seeds must be at least 1")
    if not program.is_file():
        fail(f"no such program file: {program}")
    try:
        prog = dsl.load(program)
    except ProgramError as e:
        fail(str(e))
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
    ax.plot(x, np.nanmean(np.vstack(curves), axis=0), color="black", lw=2, label="mean")
    ax.set(xlabel="env steps", ylabel="episodic return", title=title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
