"""The ``evozero`` command line."""

from __future__ import annotations

import dataclasses
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
from evozero.native.envs import GAMES, MinAtarVecEnv
from evozero.native.train import TrainConfig, TrainResult, learning_curve, train
from evozero.program import dsl
from evozero.program.errors import ProgramError
from evozero.program.model import Program
from evozero.search.driver import SearchConfig
from evozero.search.fitness import SUITES

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
        _show_run(program, top, as_json)
        return
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
        targets = _run_exports(program, top, output)
    else:
        targets = [(_load_program(program), output, str(program))]
    for prog, path, source in targets:
        try:
            export.write_export(prog, path, backend, source=source)
        except OSError as e:
            fail(f"cannot write {path}: {e}")
        console.print(f"wrote {path} ({backend}): scan, post, objective of {source}",
                      highlight=False, markup=False, soft_wrap=True)


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


# ----------------------------------------------------------------------------- search

DEFAULT_RUNS_ROOT = Path("runs")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SearchConfig)}


def _open_run(run_dir: Path, *, for_resume: bool = False):  # noqa: ANN202  (RunStore)
    from evozero.search.store import RunStore, RunStoreError

    try:
        return RunStore.open(run_dir, for_resume=for_resume)
    except RunStoreError as e:
        fail(str(e))


def _show_run(run_dir: Path, top: int, as_json: bool) -> None:
    from rich.syntax import Syntax

    from evozero import export
    from evozero.cli import display
    from evozero.search.driver import hall_of_fame, top_candidates

    if top < 1:
        fail("--top must be at least 1")
    with _open_run(run_dir) as store:
        if as_json:
            print(json.dumps(display.run_json(store, top), indent=2, default=str))
            return
        info = display.run_overview(store)
        console.print(f"[bold]{run_dir}[/]: suite {info['suite']}, {info['trained']}/"
                      f"{info['budget']} trained, {info['duplicates']} duplicates skipped, "
                      f"state {info['state']}", highlight=False)
        best = top_candidates(store, top)
        if not best:
            console.print("no candidate has passed the full suite yet")
        console.print(display.candidates_table(hall_of_fame(store),
                                               "hall of fame (best per complexity)"))
        for rank, c in enumerate(best, 1):
            console.print(f"\n[bold]#{rank}: candidate {c.id}[/], fitness "
                          f"{display.fmt(c.fitness)}, {c.complexity} ops", highlight=False)
            console.print(Syntax(export.pseudocode(evozero.parse(c.text)), "python",
                                 theme="ansi_dark", background_color="default", word_wrap=True))
        report = store.meta().get("report")
        if report:
            console.print(display.report_view(report))


def _run_exports(run_dir: Path, top: int, output: Path) -> list[tuple[Program, Path, str]]:
    from evozero.search.driver import top_candidates

    if top < 1:
        fail("--top must be at least 1")
    with _open_run(run_dir) as store:
        best = top_candidates(store, top)
    if not best:
        fail(f"{run_dir} has no rule that passed the full suite yet; nothing to export")
    if len(best) == 1 and top == 1:
        paths = [output]
    else:
        paths = [output.with_name(f"{output.stem}_{i}{output.suffix or '.py'}")
                 for i in range(1, len(best) + 1)]
    return [(evozero.parse(c.text), p, f"{run_dir} candidate {c.id} (fitness "
             f"{c.fitness:.3f})") for c, p in zip(best, paths, strict=True)]


def _init_texts(init: list[str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``--init`` values: one keyword, or .evz files (parsed now, so errors come first)."""
    from evozero.search.driver import INITS

    if len(init) == 1 and init[0] in INITS:
        return init[0], ()
    texts = []
    for name in init:
        if name in INITS:
            fail(f"--init {name} cannot be combined with other --init values; give either "
                 f"one of {', '.join(INITS)} or .evz files")
        path = Path(name)
        if not path.exists():
            fail(f"--init {name}: no such file; give one of {', '.join(INITS)} or .evz files")
        _load_program(path)
        texts.append((str(path), path.read_text()))
    return "seeds", tuple(texts)


@app.command()
def evolve(
    budget: int = typer.Option(None, "--budget", help="Candidates to train (duplicates are "
                               "not counted). Required for a new run; extends a resumed one."),
    suite: str = typer.Option(None, "--suite", help=f"Task suite: {', '.join(SUITES)} "
                              f"(default {_DEFAULTS['suite']})."),
    init: list[str] = typer.Option(None, "--init", help="Initial population: seeds "
                                   "(default), noop, random, or .evz files (repeat)."),
    population: int = typer.Option(None, "--population", help="Population size (default "
                                   f"{_DEFAULTS['population']})."),
    tournament: int = typer.Option(None, "--tournament", help="Tournament size (default "
                                   f"{_DEFAULTS['tournament']})."),
    workers: int = typer.Option(None, "--workers", help="Parallel evaluations (default: one "
                                "per core)."),
    backend: str = typer.Option(None, "--backend", help="process (default), serial "
                                "(deterministic) or ray."),
    address: str = typer.Option(None, "--address", help="Ray cluster: auto or HOST:PORT "
                                "(default: a local Ray instance)."),
    seed: int = typer.Option(None, "--seed", help=f"Seed of the search (default "
                             f"{_DEFAULTS['seed']})."),
    out: Path = typer.Option(None, "--out", help="Run directory (default runs/<time>-<suite>)."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this directory."),
    as_json: bool = typer.Option(False, "--json", help="No live display; print the result "
                                 "as JSON."),
) -> None:
    """Evolve update rules by regularized evolution, then re-evaluate the best one."""
    from rich.live import Live

    from evozero.cli import display
    from evozero.search.driver import Search
    from evozero.search.store import RunStoreError

    execution = {k: v for k, v in (("workers", workers), ("backend", backend),
                                   ("address", address)) if v is not None}
    try:
        if resume is not None:
            fixed = {"--suite": suite, "--init": init, "--population": population,
                     "--tournament": tournament, "--seed": seed, "--out": out}
            given = [k for k, v in fixed.items() if v]
            if given:
                fail(f"{', '.join(given)} cannot change when resuming; drop them (only "
                     "--budget, --workers, --backend and --address may)")
            search = Search.resume(resume)
            changes = dict(execution)
            if budget is not None:
                changes["budget"] = budget
            if changes:
                search.config = dataclasses.replace(search.config, **changes)
                search.status.budget = search.config.budget
                search.store.set_meta({"config": search.config.to_json()})
        else:
            if budget is None:
                fail("--budget is required: how many candidates to train, e.g. --budget 20")
            init_kind, texts = _init_texts(init or [_DEFAULTS["init"]])
            search_settings = {k: v for k, v in (("suite", suite), ("population", population),
                                                 ("tournament", tournament), ("seed", seed))
                               if v is not None}
            config = SearchConfig(budget=budget, init=init_kind, init_texts=texts,
                                  **search_settings, **execution)
            run_dir = out or DEFAULT_RUNS_ROOT / (
                f"{time.strftime('%Y%m%d-%H%M%S')}-{config.suite}-s{config.seed}")
            search = Search.create(run_dir, config)
    except (ValueError, RunStoreError, ProgramError) as e:
        fail(str(e))

    run_dir = search.store.directory
    try:
        if as_json:
            search.run()
        else:
            with Live(display.status_view(search.status), console=console,
                      refresh_per_second=4, transient=False) as live:
                search.on_status = lambda s: live.update(display.status_view(s))
                search.run()
            console.print()
    except KeyboardInterrupt:
        Console(stderr=True).print(f"stopped; everything finished is saved. Resume with: "
                                   f"evozero evolve --resume {run_dir}", highlight=False)
        raise typer.Exit(130) from None
    except RuntimeError as e:
        fail(str(e))
    store = search.store
    if as_json:
        print(json.dumps(display.run_json(store, 3), indent=2, default=str))
        return
    _show_run(run_dir, 3, as_json=False)
    console.print(f"\nrun stored in [bold]{run_dir}[/]; `evozero show {run_dir}`, "
                  f"`evozero export {run_dir} --top 1 -o rule.py`", highlight=False)


@app.command()
def runs(
    root: Path = typer.Argument(DEFAULT_RUNS_ROOT, help="Where to look for runs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the search runs under ROOT (default ./runs)."""
    from evozero.cli import display
    from evozero.search.store import RunStore, RunStoreError, find_runs

    if not root.is_dir():
        fail(f"{root} is not a directory; give the folder that holds your runs "
             "(evolve --out decides where they go; the default is ./runs)")
    rows = []
    for run_dir in find_runs(root):
        try:
            with RunStore.open(run_dir) as store:
                rows.append(display.run_overview(store))
        except RunStoreError as e:
            rows.append({"run": str(run_dir), "state": f"unreadable: {e}"})
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        console.print(f"no runs under {root}")
        return
    table = Table(title=f"runs under {root}", title_justify="left")
    for col in ("run", "created", "suite", "state", "trained", "dups", "best", "verdict"):
        table.add_column(col, justify="left" if col in ("run", "state", "verdict") else "right",
                         overflow="fold")
    for r in rows:
        table.add_row(str(Path(r["run"]).relative_to(root)), r.get("created", "-"),
                      str(r.get("suite", "-")), str(r.get("state")),
                      f"{r.get('trained', '-')}/{r.get('budget', '-')}",
                      str(r.get("duplicates", "-")), display.fmt(r.get("best_fitness")),
                      str(r.get("verdict") or "-"))
    console.print(table)
