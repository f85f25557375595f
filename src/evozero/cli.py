"""The ``evozero`` command line."""

from __future__ import annotations

import json
import time

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

import evozero
from evozero.envs import GAMES, MinAtarVecEnv

app = typer.Typer(
    help="Discover reinforcement-learning update rules by program search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def fail(message: str) -> None:
    """Exit with a one-line error (no traceback): what is wrong and how to fix it."""
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
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
