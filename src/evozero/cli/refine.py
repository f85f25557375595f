"""``evozero refine``: tune a rule's constants by meta-gradients or evolution strategies."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from evozero.cli.app import (
    console,
    fail,
    interrupted,
    load_program,
    open_run,
    store_errors,
    warn,
    with_network,
    writable_dir,
)
from evozero.cli.output import print_json
from evozero.cli.params import Integer, PathArg, Positive, network_option
from evozero.native.train import NETWORKS
from evozero.program import dsl
from evozero.refine import TORCH_INSTALL_HINT, torch_available
from evozero.refine.run import (
    METHODS,
    RefineOutcome,
    RefineSettings,
    check_budget,
    event_line,
    finish_children,
    refine,
    store_child,
    stored_twin,
)
from evozero.refine.stage import run_settings
from evozero.search.backends import MAX_WORKERS
from evozero.search.tasks import Suite

if TYPE_CHECKING:
    from evozero.search.store import RunStore

_DEFAULT = RefineSettings()  # the flags' defaults are the settings' own


@store_errors
def refine_command(
    target: Path = typer.Argument(
        ...,
        parser=PathArg("file or directory", "a .evz program or a run directory"),
        metavar="PROGRAM.evz|RUN_DIR",
        help="A program, or a run directory whose best rules to refine (on the run's "
        "suite's first task, validated at its target budget; kept refinements are stored "
        "in the run as children).",
    ),
    method: str = typer.Option(
        "metagrad", "--method", metavar="METHOD", help=f"One of: {', '.join(METHODS)}."
    ),
    steps: int = typer.Option(
        _DEFAULT.budget_steps,
        "--steps",
        parser=Integer(1),
        metavar="N",
        help="Env-step budget per rule.",
    ),
    top: int = typer.Option(
        1, "--top", parser=Integer(1, 100), metavar="K", help="Rules of a run to refine."
    ),
    env: str | None = typer.Option(
        None,
        "--env",
        metavar="ENV",
        help=f"A native game or gymnasium id, for a program file (default: {_DEFAULT.env}; "
        "a run uses its suite's first task).",
    ),
    network: str | None = network_option(
        None,
        f"The networks of the lifetimes, for a program file: {' or '.join(NETWORKS)} "
        f"(default: {_DEFAULT.config.network}; a run uses its suite's first task's).",
    ),
    train_steps: int | None = typer.Option(
        None,
        "--train-steps",
        parser=Integer(1),
        metavar="N",
        help="Env steps of one lifetime refinement trains (default: "
        f"{_DEFAULT.config.total_steps:,} for a program file; for a run, the budget of its "
        "suite's first task at rung 0).",
    ),
    pairs: int = typer.Option(
        _DEFAULT.pairs,
        "--pairs",
        parser=Integer(1, 1000),
        metavar="N",
        help="Windows per meta-step (metagrad) or antithetic pairs per iteration (es).",
    ),
    meta_lr: float = typer.Option(
        _DEFAULT.meta_lr,
        "--meta-lr",
        parser=Positive(10.0),
        metavar="X",
        help="Adam step in the constants' coordinates (log-scale or logit).",
    ),
    seeds: int = typer.Option(
        _DEFAULT.validation_seeds,
        "--seeds",
        parser=Integer(2, 1000),
        metavar="K",
        help="Fresh validation seeds (2 or more; fewer than 5 warns).",
    ),
    workers: int = typer.Option(
        0,
        "--workers",
        parser=Integer(0, MAX_WORKERS),
        metavar="N",
        help="ES workers (0: one per core).",
    ),
    backend: str = typer.Option("process", "--backend", metavar="NAME", help="ES backend."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        parser=PathArg("new directory", "a directory for the refined .evz files"),
        metavar="DIR",
        help="Where to write kept refined rules (default: the current directory).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Refine the constants of PROGRAM (or of a run's best rules), then validate.

    The refined constants are kept only if, on fresh seeds with the native trainer,
    the 95% CI of the paired difference of final return lies above zero; only a kept
    rule is written (NAME.refined-METHOD.evz in --output).
    """
    if method not in METHODS:
        fail(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if method == "metagrad" and not torch_available():
        fail(f"--method metagrad needs PyTorch: {TORCH_INSTALL_HINT}; or use --method es")
    if seeds < 5:  # a percentile bootstrap over a few pairs is about [min, max]
        warn(
            f"--seeds {seeds}: with fewer than 5 seeds the 95% interval is about the range "
            "of the paired differences, too narrow to trust a 'kept'; use --seeds 5 or more"
        )
    for flag, given in (("--env", env), ("--network", network)):
        if given is not None and target.is_dir():
            fail(
                f"{flag} is for a program file; a run's rules are refined on its suite's "
                f"first task: drop {flag}, or save the rule as a .evz file and refine that "
                f"with {flag}"
            )
    store = open_run(target, writer="refine") if target.is_dir() else None
    try:
        if store is None:
            targets = [(target.name, None, load_program(target))]
        else:
            best, skipped = store.best_readable(top)
            for e in skipped:
                warn(f"{e}; it is not refined")
            if not best:
                fail(f"{target}: no readable candidate has passed the suite yet; nothing to refine")
            targets = [(f"candidate {c.id}", c.id, p) for c, p in best]
        try:
            given = {
                "method": method,
                "budget_steps": steps,
                "backend": backend,
                "workers": workers or None,
                "validation_seeds": seeds,
                "pairs": pairs,
                "meta_lr": meta_lr,
            }
            if store is None:
                env = _DEFAULT.env if env is None else env
                config = with_network(_DEFAULT.config, network or _DEFAULT.config.network, env)
                settings = RefineSettings(env=env, config=config, **given)
            else:
                settings = run_settings(Suite.from_json(store.meta()["suite"]), **given)
        except ValueError as e:
            fail(str(e))
        if train_steps is not None:
            try:
                lifetime = replace(settings.config, total_steps=train_steps)
            except ValueError as e:
                fail(f"--train-steps {train_steps}: {e}")
            settings = replace(settings, config=lifetime)
        try:
            check_budget(settings, "--steps", "--train-steps")
        except ValueError as e:
            fail(str(e))
        out_dir = output or Path.cwd()
        writable_dir(out_dir, _REFINED_ELSEWHERE)  # before the work, not after it
        results = []
        if not as_json:
            v_env = settings.validation_env or settings.env
            v_steps = (settings.validation_config or settings.config).run_steps
            console.print(
                f"refining by {method} on {settings.env} ({settings.config.network} "
                f"networks), {settings.config.run_steps:,}-step lifetimes, "
                f"{settings.budget_steps:,} env steps per rule; validating on {v_env}, "
                f"{seeds} seeds x {v_steps:,} steps",
                highlight=False,
                soft_wrap=True,
            )
        if store is not None:
            finish_children(store, lambda line: console.print(line, highlight=False))
        for label, parent, program in targets:
            try:
                outcome = refine(
                    program,
                    settings,
                    lambda e, label=label: (
                        None
                        if as_json
                        else console.print(event_line(label, e), soft_wrap=True, highlight=False)
                    ),
                )
            except KeyboardInterrupt:
                interrupted(f"refinement of {label} stopped; nothing written")
            except ValueError as e:
                fail(f"{label}: {e}")
            result = _report(label, outcome, out_dir, method, as_json)
            result["env"], result["train_steps"] = settings.env, settings.config.run_steps
            result["network"] = settings.config.network
            if store is not None and parent is not None:
                result["child"] = _store(store, parent, outcome, method, label, as_json)
            results.append(result)
    finally:
        if store is not None:
            store.close()
    if as_json:
        print_json(results)


def _store(
    store: RunStore, parent: int, outcome: RefineOutcome, method: str, label: str, as_json: bool
) -> int | None:
    """Store a kept refinement as a child candidate (trained on the suite); its id."""
    if outcome.validation is None or not outcome.validation.kept:
        if not as_json:
            console.print(f"{label}: nothing stored in the run (dropped)", highlight=False)
        return None
    twin = stored_twin(store, outcome.refined)
    if twin is not None:  # refined before to the same rule: one candidate per rule
        if not as_json:
            console.print(
                f"{label}: already in the run as candidate {twin.id}; not stored again",
                highlight=False,
            )
        return twin.id
    if not as_json:
        console.print(
            f"{label}: kept; training it on the run's suite up to its parent's rung",
            highlight=False,
        )
    child = store_child(store, parent, outcome, method)
    if not as_json:
        c = store.candidate(child)
        console.print(
            f"{label}: stored as candidate {child} (origin refine:{method}, "
            f"status {c.status.value}, fitness {c.fitness})",
            highlight=False,
            soft_wrap=True,
        )
    return child


_REFINED_ELSEWHERE = "pass --output DIR to write the refined rules elsewhere"


def _report(
    label: str, outcome: RefineOutcome, out_dir: Path, method: str, as_json: bool
) -> dict[str, Any]:
    """Write a kept refinement (only: a ``.refined-*.evz`` file is always a rule that beat
    its original on fresh seeds; the original file stays the rule when dropped, and the
    dropped constants are in the JSON's ``refined``); say which way it went."""
    v = outcome.validation
    assert v is not None
    path = None
    if v.kept:
        stem = label.replace(" ", "-").removesuffix(".evz")
        path = out_dir / f"{stem}.refined-{method}.evz"
        try:
            dsl.dump(
                outcome.refined,
                path,
                header=f"refined by evozero refine --method {method}: {v.verdict}",
            )
        except OSError as e:
            fail(f"cannot write {path}: {e.strerror or e}; {_REFINED_ELSEWHERE}")
    if not as_json:
        written = f"wrote {path}" if path else "nothing written (dropped: the original stays)"
        console.print(
            f"{label}: {v.verdict}; validated on {v.env}, {len(v.seeds)} seeds x {v.steps:,} steps",
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            f"{label}: {outcome.steps:,} env steps, {outcome.seconds:.1f} s; {written}",
            highlight=False,
            soft_wrap=True,
        )
    return {
        "target": label,
        "method": method,
        "kept": v.kept,
        "verdict": v.verdict,
        "original": outcome.original.constant_values,
        "refined": outcome.refined.constant_values,
        "validation": {
            "env": v.env,
            "steps": v.steps,
            "seeds": list(v.seeds),
            "original": list(v.original),
            "refined": list(v.refined),
            "lo": v.lo,
            "hi": v.hi,
        },
        "steps": outcome.steps,
        "seconds": outcome.seconds,
        "output": str(path) if path else None,  # None: dropped, nothing written
        "history": outcome.history,
    }
