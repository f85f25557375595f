"""``evozero games`` and ``evozero eval``: the native games, and training with a rule."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evozero.cli.analysis import tensorboard_available, write_training_logs
from evozero.cli.app import console, fail, interrupted, load_program, with_network
from evozero.cli.output import JSON_NOTE, print_json
from evozero.cli.params import Integer, PathArg, network_option, tensorboard_option
from evozero.native.envs import GAMES, MinAtarVecEnv
from evozero.native.population import train_many
from evozero.native.train import NETWORKS, TrainConfig, TrainResult, learning_curve, train
from evozero.program.model import Program
from evozero.search.backends import MAX_WORKERS
from evozero.status import Status

#: The most envs ``games`` steps together (far past the speed plateau; memory grows with it).
MAX_NUM_ENVS = 65_536
#: The most runs ``eval`` makes (its bookkeeping grows with them).
MAX_SEEDS = 10_000


def games(
    steps: int = typer.Option(
        200_000,
        "--steps",
        parser=Integer(1),
        metavar="STEPS",
        help="Env steps per game (random policy).",
    ),
    num_envs: int = typer.Option(
        256,
        "--num-envs",
        parser=Integer(1, MAX_NUM_ENVS),
        metavar="N",
        help="Envs stepped together.",
    ),
    seed: int = typer.Option(
        0, "--seed", parser=Integer(0), metavar="SEED", help="Seed of env 0 (env i gets seed + i)."
    ),
    as_json: bool = typer.Option(False, "--json", help=f"Print JSON ({JSON_NOTE})."),
) -> None:
    """Play every native game with a uniformly random policy: returns and speed."""
    rows = []
    for game in GAMES:
        env = MinAtarVecEnv(game, num_envs, seed=seed)
        env.reset()
        rng = np.random.default_rng(seed)
        updates = max(1, steps // num_envs)
        ret = np.zeros(num_envs)
        finished: list[float] = []
        start = time.perf_counter()
        for _ in range(updates):  # actions drawn as we go: memory does not grow with --steps
            _, r, term, trunc, _ = env.step(rng.integers(0, 6, size=num_envs))
            ret += r
            done = term | trunc
            finished.extend(ret[done])
            ret[done] = 0
        seconds = time.perf_counter() - start
        total = updates * num_envs
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
        print_json(rows)
        return
    table = Table(title="Native MinAtar, random policy (sticky actions 0.1)")
    for col in ("game", "steps", "episodes", "mean return", "steps/s (Python loop)"):
        table.add_column(col, justify="left" if col == "game" else "right")
    for r in rows:
        table.add_row(
            r["game"],
            f"{r['steps']:,}",
            f"{r['episodes']:,}",
            f"{r['mean_return']:.2f}",
            f"{r['steps_per_s']:,.0f}",
        )
    console.print(table)


def eval_command(
    program: Path = typer.Argument(
        ...,
        parser=PathArg("file", "an update program (.evz)"),
        metavar="PROGRAM",
        help="The update program (.evz).",
    ),
    env: str = typer.Option(
        "breakout", "--env", metavar="ENV", help="A MinAtar game or a gymnasium id."
    ),
    steps: int = typer.Option(
        1_000_000, "--steps", parser=Integer(1), metavar="STEPS", help="Env steps per run."
    ),
    seeds: int = typer.Option(
        3,
        "--seeds",
        parser=Integer(1, MAX_SEEDS),
        metavar="K",
        help="Number of runs (seeds 0..K-1).",
    ),
    workers: int = typer.Option(
        0,
        "--workers",
        parser=Integer(0, MAX_WORKERS),
        metavar="N",
        help="Runs in parallel (0: one per core).",
    ),
    network: str = network_option(
        TrainConfig.network,
        f"The actor and critic networks: {' or '.join(NETWORKS)} (conv: native games only).",
    ),
    device: str = typer.Option(
        "cpu",
        "--device",
        metavar="DEV",
        help="cpu, or cuda: every seed at once on the GPU, one thread block per run "
        "(evozero.train_many; native games, mlp networks; needs the CUDA build).",
    ),
    as_json: bool = typer.Option(False, "--json", help=f"Print JSON ({JSON_NOTE})."),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        parser=PathArg("new file", "a file name such as curves.png"),
        metavar="FILE",
        help="Save learning curves to this PNG.",
    ),
    tensorboard: Path | None = tensorboard_option(
        "Write TensorBoard logs (one folder per seed) under DIR; needs tensorboardX."
    ),
) -> None:
    """Train an agent with PROGRAM on ENV for each seed and summarize the returns.

    Ctrl-C stops every run promptly and reports the seeds that finished.
    """
    if tensorboard is not None:
        tensorboard_available()
    prog = load_program(program)
    try:
        config = TrainConfig(total_steps=steps)
    except ValueError as e:
        fail(f"--steps: {e}")
    config = with_network(config, network, env)
    network = config.network

    device = device.lower()
    if device not in ("cpu", "cuda"):
        fail(f"--device must be cpu or cuda, got {device}")
    if device == "cuda":
        if env not in GAMES or network != "mlp":
            what = f"--network {network}" if env in GAMES else env
            fail(
                f"--device cuda trains the native games with mlp networks only; "
                f"drop --device cuda to train {what} on the CPU"
            )
        if workers:
            console.print("note: --workers is ignored with --device cuda (one launch)")
        _eval_on_gpu(prog, program, env, config, seeds, as_json, plot, tensorboard)
        return
    workers = min(workers or os.cpu_count() or 1, seeds)
    done = [0] * seeds
    stop = threading.Event()  # set on Ctrl-C or an error: the other runs are cancelled
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task(
            f"{program.name} on {env}",
            total=seeds * config.run_steps,
        )

        def run(seed: int) -> TrainResult:
            def tick(n: int) -> None:
                done[seed] = n
                bar.update(task, completed=sum(done))

            return train(prog, env, config, seed, on_progress=tick, stop=stop)

        pool = ThreadPoolExecutor(max_workers=workers)
        futures: list[Future[TrainResult]] = []
        stopped = False
        try:
            for seed in range(seeds):
                futures.append(pool.submit(run, seed))
            for future in futures:
                future.result()  # Ctrl-C lands here, in the main thread
        except KeyboardInterrupt:
            stopped = True
        except ValueError as e:
            fail(str(e))
        finally:
            stop.set()  # after a normal end this cancels nothing
            pool.shutdown(wait=True, cancel_futures=True)
    results = [
        f.result() for f in futures if f.done() and not f.cancelled() and f.exception() is None
    ]
    if results or not stopped:
        _report(results, program, env, config, as_json, plot, stopped)
    if tensorboard is not None and results:
        write_training_logs(tensorboard, program.stem, results, config)
    if stopped:
        interrupted(
            f"{len(results)} of {seeds} seed(s) finished"
            + ("; the summary covers those" if results else "")
        )


def _eval_on_gpu(
    prog: Program,
    program: Path,
    env: str,
    config: TrainConfig,
    seeds: int,
    as_json: bool,
    plot: Path | None,
    tensorboard: Path | None,
) -> None:
    """eval --device cuda: every seed in one train_many launch (no progress, no Ctrl-C
    mid-run: the launch runs to its end)."""
    try:
        results = train_many(prog, env, config, list(range(seeds)), device="cuda")
    except (ValueError, RuntimeError) as e:
        fail(f"--device cuda: {e}")
    _report(results, program, env, config, as_json, plot, False)
    if tensorboard is not None and results:
        write_training_logs(tensorboard, program.stem, results, config)


def _report(
    results: list[TrainResult],
    program: Path,
    env: str,
    config: TrainConfig,
    as_json: bool,
    plot: Path | None,
    stopped: bool,
) -> None:
    """The summary of finished runs: a table (or JSON), and the learning curves."""
    finals = np.array([r.final_return for r in results])
    summary = {
        "program": str(program),
        "env": env,
        "steps": config.run_steps,  # what each run trained: whole updates
        "steps_asked": config.total_steps,
        "network": config.network,
        "runs": [r.summary() for r in results],
        "final_return_mean": float(np.nanmean(finals)) if np.isfinite(finals).any() else None,
        "final_return_std": float(np.nanstd(finals)) if np.isfinite(finals).any() else None,
        **({"interrupted": True} if stopped else {}),
    }
    if plot is not None:
        _plot(results, plot, title=f"{program.name} on {env}")
    if as_json:
        print_json(summary)
        return
    table = Table(
        title=f"{program.name} on {env}, {config.network} networks, {_steps_title(config)}"
    )
    for col in ("seed", "status", "final return", "AUC", "episodes", "steps/s (per run)"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            str(r.seed),
            r.status,
            f"{r.final_return:.2f}",
            f"{r.auc:.2f}",
            f"{r.episode_returns.size:,}",
            f"{r.steps_per_second:,.0f}",
        )
    if summary["final_return_mean"] is not None:
        table.add_row(
            "mean ± std",
            "",
            f"{summary['final_return_mean']:.2f} ± {summary['final_return_std']:.2f}",
            "",
            "",
            "",
            style="bold",
        )
    console.print(table)
    for r in results:
        if r.status != Status.OK:
            console.print(f"seed {r.seed}: {r.status}: {r.message}")
    if plot is not None:
        console.print(f"learning curves written to {plot}")


def _steps_title(config: TrainConfig) -> str:
    """The env steps each run trained, and the asked --steps where whole updates differ."""
    trained = f"{config.run_steps:,} steps per run"
    if config.run_steps == config.total_steps:
        return trained
    batch = config.num_envs * config.num_steps
    updates = f"{config.num_updates:,} updates of {batch:,}"
    return f"{trained} ({updates}; --steps {config.total_steps:,})"


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
