"""``evozero evolve``, ``evozero runs`` and ``evozero suites``: search runs, the view of
one, and the suites a search can use."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from evozero.cli.analysis import tensorboard_available, write_search_logs
from evozero.cli.app import (
    console,
    fail,
    interrupted,
    load_program,
    open_run,
    store_errors,
    warn,
    warn_damaged,
)
from evozero.cli.output import JSON_NOTE, print_json, print_program
from evozero.cli.params import Integer, KeywordOrFile, PathArg, Seconds, tensorboard_option
from evozero.program.errors import ProgramError
from evozero.search.config import (
    DEFAULT_RUNS_ROOT,
    INITS,
    LIMITS,
    REFINE_METHODS,
    SearchConfig,
    default_run_dir,
)
from evozero.search.tasks import SUITES, get_suite

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SearchConfig)}


@store_errors
def show_run(run_dir: Path, top: int, as_json: bool) -> None:
    """Print a run's headline, hall of fame, ``top`` best rules and final report (a damaged
    part is left out, with a warning)."""
    from evozero import export
    from evozero.cli import display
    from evozero.refine.stage import META_KEY as REFINED_KEY
    from evozero.search.report import hall_of_fame
    from evozero.search.store import DamagedCandidate

    with open_run(run_dir) as store:
        if as_json:
            print_json(display.run_json(store, top))
            warn_damaged(store)
            return
        info = display.run_overview(store)
        console.print(
            f"[bold]{run_dir}[/]: suite {info['suite']}, {info['trained']}/"
            f"{info['budget']} trained"
            + (f" (+{info['refined']} refined)" if info["refined"] else "")
            + f", {info['duplicates']} duplicates skipped, "
            f"state {info['state']}",
            highlight=False,
        )
        if len(info["rungs"]) > 1:
            console.print(display.rungs_table(info["rungs"]))
        best = store.best(top)
        if not best:
            console.print("no candidate has passed the full suite yet")
        console.print(
            display.candidates_table(hall_of_fame(store), "hall of fame (best per complexity)")
        )
        for rank, c in enumerate(best, 1):
            console.print(
                f"\n[bold]#{rank}: candidate {c.id}[/], fitness "
                f"{display.fmt(c.fitness)}, {c.complexity} ops",
                highlight=False,
            )
            try:
                program = store.program(c)
            except DamagedCandidate as e:
                warn(f"{e}; its program is not shown")
                continue
            print_program(console, export.pseudocode(program))
        for line in display.refined_lines(store.meta().get(REFINED_KEY)):
            console.print(line, highlight=False, soft_wrap=True)
        report = store.meta().get("report")
        if report:
            console.print()
            console.print(display.report_view(report))
        warn_damaged(store)


def _init_texts(init: list[str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``--init`` values: one keyword, or .evz files (parsed now, so errors come first)."""
    if len(init) == 1 and init[0] in INITS:
        return init[0], ()
    texts = []
    for name in init:
        if name in INITS:
            fail(
                f"--init {name} cannot be combined with other --init values; give either "
                f"one of {', '.join(INITS)} or .evz files"
            )
        path = Path(name)  # checked by its parser: a readable file
        load_program(path)
        texts.append((str(path), path.read_text()))
    return "seeds", tuple(texts)


def evolve(
    budget: int = typer.Option(
        None,
        "--budget",
        parser=Integer(*LIMITS["budget"]),
        metavar="N",
        help="Candidates to train at the first rung (duplicates and promotions are not "
        "counted). Required for a new run; extends a resumed one.",
    ),
    max_time: float = typer.Option(
        None,
        "--max-time",
        parser=Seconds(hi=366 * 86_400.0),
        metavar="SECONDS",
        help="Stop starting candidates and promotions after this much search time (over "
        "all sessions of the run), e.g. 7200 for two hours; then report.",
    ),
    suite: str = typer.Option(
        None,
        "--suite",
        metavar="NAME|FILE",
        help=f"Task suite: {', '.join(SUITES)} (default {_DEFAULTS['suite']}), or a suite "
        "file (.toml; see examples/suite.toml). `evozero suites` lists them.",
    ),
    init: list[str] = typer.Option(
        None,
        "--init",
        parser=KeywordOrFile(INITS),
        metavar="INIT",
        help="Initial population: seeds (default), noop, random, or .evz files (repeat).",
    ),
    population: int = typer.Option(
        None,
        "--population",
        parser=Integer(*LIMITS["population"]),
        metavar="N",
        help=f"Population size (default {_DEFAULTS['population']}).",
    ),
    tournament: int = typer.Option(
        None,
        "--tournament",
        parser=Integer(*LIMITS["tournament"]),
        metavar="N",
        help=f"Tournament size (default {_DEFAULTS['tournament']}).",
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        parser=Integer(*LIMITS["workers"]),
        metavar="N",
        help="Parallel evaluations (default: one per core); with --backend batch, "
        "candidates trained together in one batch.",
    ),
    backend: str = typer.Option(
        None,
        "--backend",
        metavar="NAME",
        help="process (default), serial (deterministic), ray, or batch (--workers "
        "candidates at a time in one evozero.train_many call on --device; deterministic).",
    ),
    device: str = typer.Option(
        None,
        "--device",
        metavar="DEVICE",
        help="cpu (default) or cuda: train candidates in batches on the GPU (implies "
        "--backend batch; needs the CUDA build and a GPU).",
    ),
    address: str = typer.Option(
        None,
        "--address",
        metavar="ADDRESS",
        help="Ray cluster: auto or HOST:PORT (default: a local Ray instance).",
    ),
    seed: int = typer.Option(
        None,
        "--seed",
        parser=Integer(*LIMITS["seed"]),
        metavar="SEED",
        help=f"Seed of the search (default {_DEFAULTS['seed']}).",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        parser=PathArg("new directory", "a directory for the new run"),
        metavar="DIR",
        help="Run directory (default runs/<time>-<suite>).",
    ),
    refine_top: int = typer.Option(
        None,
        "--refine-top",
        parser=Integer(*LIMITS["refine_top"]),
        metavar="K",
        help="After the search, refine the constants of the K best rules (kept ones are "
        "stored as children and can be the report's best rule); default 0: none.",
    ),
    refine_method: str = typer.Option(
        None,
        "--refine-method",
        metavar="METHOD",
        help=f"With --refine-top: {' or '.join(REFINE_METHODS)} "
        f"(default {_DEFAULTS['refine_method']}).",
    ),
    refine_steps: int = typer.Option(
        None,
        "--refine-steps",
        parser=Integer(*LIMITS["refine_steps"]),
        metavar="N",
        help=f"With --refine-top: env-step budget per rule (default "
        f"{_DEFAULTS['refine_steps']:,}).",
    ),
    resume: Path = typer.Option(
        None,
        "--resume",
        parser=PathArg("directory", "the directory of a run (`evozero runs` lists them)"),
        metavar="DIR",
        help="Continue the run in this directory.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help=f"No live display; print the result as JSON ({JSON_NOTE})."
    ),
    tensorboard: Path | None = tensorboard_option(
        "At the end, write the search curve and counts as TensorBoard logs under DIR."
    ),
) -> None:
    """Evolve update rules by regularized evolution, then re-evaluate the best one."""
    from rich.live import Live

    if tensorboard is not None:
        tensorboard_available()

    from evozero.cli import display
    from evozero.refine import TORCH_INSTALL_HINT, torch_available
    from evozero.refine.stage import check_stage
    from evozero.refine.stage import refine_top as refine_top_stage
    from evozero.search.driver import Search
    from evozero.search.store import RunStoreError

    if device is not None:
        device = device.lower()
        if device not in ("cpu", "cuda"):
            fail(f"--device must be cpu or cuda, got {device}")
        if device == "cuda":
            if backend not in (None, "batch"):
                fail(f"--device cuda trains with --backend batch, not --backend {backend}")
            backend = "batch"
            if workers is None and resume is None:
                # A GPU trains hundreds of agents at once: a batch of one population.
                workers = min(population or _DEFAULTS["population"], LIMITS["workers"][1])
            from evozero.search.batched import check_device

            try:  # before a run directory is made
                check_device("cuda")
            except RuntimeError as e:
                fail(f"--device cuda: {e}")
    execution = {
        k: v
        for k, v in (
            ("workers", workers),
            ("backend", backend),
            ("device", device),
            ("address", address),
            ("max_time", max_time),
            ("refine_top", refine_top),
            ("refine_method", refine_method),
            ("refine_steps", refine_steps),
        )
        if v is not None
    }
    try:
        if resume is not None:
            fixed = {
                "--suite": suite,
                "--init": init,
                "--population": population,
                "--tournament": tournament,
                "--seed": seed,
                "--out": out,
            }
            given = [k for k, v in fixed.items() if v not in (None, [])]
            if given:
                fail(
                    f"{', '.join(given)} cannot change when resuming; drop them (only "
                    "--budget, --max-time, --workers, --backend, --device, --address and "
                    "--refine-* may)"
                )
            search = Search.resume(resume, after_search=refine_top_stage)
            changes = dict(execution)
            if budget is not None:
                changes["budget"] = budget
            if changes:
                note = search.change(**changes)
                if note:
                    Console(stderr=True).print(note, highlight=False, soft_wrap=True)
            try:
                check_stage(search.config, search.suite, "--refine-steps")
            except ValueError:
                search.store.close()
                raise
        else:
            if budget is None:
                fail("--budget is required: how many candidates to train, e.g. --budget 20")
            init_kind, texts = _init_texts(init or [_DEFAULTS["init"]])
            search_settings = {
                k: v
                for k, v in (
                    ("suite", suite),
                    ("population", population),
                    ("tournament", tournament),
                    ("seed", seed),
                )
                if v is not None
            }
            config = SearchConfig(
                budget=budget, init=init_kind, init_texts=texts, **search_settings, **execution
            )
            check_stage(config, get_suite(config.suite), "--refine-steps")  # before the run
            run_dir = out or default_run_dir(config)
            search = Search.create(run_dir, config, after_search=refine_top_stage)
    except (ValueError, RunStoreError, ProgramError) as e:
        fail(str(e))
    metagrad = search.config.refine_top and search.config.refine_method == "metagrad"
    if metagrad and not torch_available():
        search.store.close()
        fail(
            f"--refine-method metagrad needs PyTorch: {TORCH_INSTALL_HINT}; "
            "or use --refine-method es"
        )

    run_dir = search.store.directory
    try:
        if as_json:
            search.run()
        else:
            # transient: the summary below shows the hall of fame once, in full.
            with Live(
                display.status_view(search.status),
                console=console,
                refresh_per_second=4,
                transient=True,
            ) as live:
                search.on_status = lambda s: live.update(display.status_view(s))
                search.run()
    except KeyboardInterrupt:
        interrupted(f"everything finished is saved; resume with: evozero evolve --resume {run_dir}")
    except (RuntimeError, RunStoreError) as e:
        fail(str(e))
    finally:
        search.store.close()  # the run is free for the next writer
    if tensorboard is not None:
        write_search_logs(tensorboard, run_dir)
    if as_json:
        show_run(run_dir, 3, as_json=True)
        return
    show_run(run_dir, 3, as_json=False)
    console.print(
        f"\nrun stored in [bold]{run_dir}[/]; `evozero show {run_dir}`, "
        f"`evozero export {run_dir} --top 1 -o rule.py`",
        highlight=False,
    )


def runs(
    root: Path = typer.Argument(
        DEFAULT_RUNS_ROOT,
        parser=PathArg(
            "directory", "the folder that holds your runs (evolve --out decides where they go)"
        ),
        metavar="ROOT",
        help="Where to look for runs.",
    ),
    as_json: bool = typer.Option(False, "--json", help=f"Print JSON ({JSON_NOTE})."),
) -> None:
    """List the search runs under ROOT (default ./runs)."""
    from evozero.cli import display
    from evozero.search.store import RunStore, RunStoreError, find_runs

    if not root.is_dir():  # the default, ./runs, may not exist yet
        fail(
            f"{root} is not a directory; give the folder that holds your runs "
            "(evolve --out decides where they go; the default is ./runs)"
        )
    rows = []
    for run_dir in find_runs(root):
        try:
            with RunStore.open(run_dir) as store:
                row = display.run_overview(store)
                if store.damaged:  # rows left out; `evozero show` names them
                    row["state"] = f"{row['state']}, {len(store.damaged)} part(s) damaged"
                rows.append(row)
        except RunStoreError as e:
            rows.append({"run": str(run_dir), "state": f"unreadable: {e.summary}", "error": str(e)})
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(f"no runs under {root}")
        return
    table = Table(title=f"runs under {root}", title_justify="left")
    for col in ("run", "created", "suite", "state", "trained", "dups", "best", "verdict"):
        table.add_column(
            col, justify="left" if col in ("run", "state", "verdict") else "right", overflow="fold"
        )
    for r in rows:
        table.add_row(
            str(Path(r["run"]).relative_to(root)),
            r.get("created", "-"),
            str(r.get("suite", "-")),
            str(r.get("state")),
            f"{r.get('trained', '-')}/{r.get('budget', '-')}",
            str(r.get("duplicates", "-")),
            display.fmt(r.get("best_fitness")),
            str(r.get("verdict") or "-"),
        )
    console.print(table)


def suites(
    names: list[str] = typer.Argument(
        None,
        metavar="[NAME|FILE]...",
        help="Suites to describe: built-in names or suite files (default: the built-ins).",
    ),
    as_json: bool = typer.Option(False, "--json", help=f"Print JSON ({JSON_NOTE})."),
) -> None:
    """List the task suites: their rungs, tasks and estimated cost per candidate here.

    The cost is env steps divided by the trainer's speed on this machine (ppo.evz trained
    once per env and settings for a few seconds, then cached): seconds of one worker.
    """
    from evozero.cli import display
    from evozero.search.cost import suite_cost

    try:
        chosen = [get_suite(name) for name in names or SUITES]
    except ValueError as e:
        fail(str(e))
    rows = [display.suite_json(suite, suite_cost(suite)) for suite in chosen]
    if as_json:
        print_json(rows)
        return
    console.print(display.suites_view(rows))
