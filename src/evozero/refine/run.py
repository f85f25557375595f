"""The refinement loop behind ``evozero refine``: a budget of env steps, progress events.

``metagrad``: each meta-step trains the current rule natively, recording ``pairs``
windows of K + 1 updates spread over the lifetime (the run stops after the last), takes
the meta-gradient of :class:`~evozero.refine.metagrad.MetaProblem` and one Adam ascent
step in the constants' coordinates. ``es``: each iteration evaluates 2 x ``pairs``
perturbed rules on the backend (:mod:`evozero.refine.es`, fitness = mean final return
over ``es_seeds`` full lifetimes). Both stop before an iteration that would take the
env steps spent past the budget; a budget below one iteration
(:func:`iteration_steps`) is refused up front (:func:`check_budget`), so a budget is
never overspent. Then :func:`~evozero.refine.validate.validate` decides whether the
result is kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from evozero.native.train import TrainConfig, final_return, train
from evozero.program import dsl
from evozero.program.canon import canonical_key, fingerprint
from evozero.program.model import Program
from evozero.refine.constants import ConstantSpace
from evozero.refine.es import ESConfig, ESState, es_step, fitness_of, train_job
from evozero.refine.schedule import checkpoint_updates
from evozero.refine.validate import Validation, validate
from evozero.search.backends import make_backend
from evozero.search.config import REFINE_METHODS, REFINE_STEPS
from evozero.search.fitness import candidate_result, evaluate_job
from evozero.search.protocol import Job, JobResult
from evozero.search.store import REFINE_ORIGIN, Candidate, RunStore
from evozero.search.tasks import Suite
from evozero.status import UNFINISHED, Status

__all__ = [
    "METHODS",
    "RefineOutcome",
    "RefineSettings",
    "check_budget",
    "describe_change",
    "event_line",
    "iteration_steps",
    "refine",
    "child_rungs",
    "finish_children",
    "store_child",
    "stored_twin",
    "train_child",
]

#: The refinement methods (one list, in the search's settings: ``evolve --refine-method``).
METHODS = REFINE_METHODS

#: Successive meta-steps shift their checkpoints by this fraction of the spacing.
_GOLDEN = (math.sqrt(5) - 1) / 2


@dataclass(frozen=True)
class RefineSettings:
    """What to refine on and how much to spend."""

    method: str = "metagrad"
    env: str = "breakout"
    config: TrainConfig = field(default_factory=TrainConfig)
    budget_steps: int = REFINE_STEPS
    seed: int = 0
    k: int = 1  # inner updates unrolled (metagrad)
    # Measured on the detuned benchmark (benchmarks/refine_detuned.py, README).
    pairs: int = 2  # windows per meta-step (metagrad) / antithetic pairs (es)
    meta_lr: float = 0.3  # Adam step in the coordinates (logit / log scale)
    sigma: float = 0.1  # es
    es_seeds: int = 1
    backend: str = "process"
    workers: int | None = None
    validation_seeds: int = 5
    # Where the final validation trains (default: env and config above). A run's rules
    # validate at its suite's target budget, which is what users train for.
    validation_env: str | None = None
    validation_config: TrainConfig | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}")


@dataclass
class RefineOutcome:
    """What a refinement did: the rules, the spend and the validation."""

    original: Program
    refined: Program
    steps: int
    seconds: float
    history: list[dict[str, Any]]
    validation: Validation | None = None

    @property
    def kept(self) -> Program:
        """The refined rule if validation kept it, else the original."""
        return self.refined if self.validation and self.validation.kept else self.original


Events = Callable[[dict[str, Any]], None]


def event_line(label: str, event: dict[str, Any]) -> str:
    """One progress event as a line: ``label step N | env steps | return | constants``,
    the return being what the step's training runs reached (see :func:`refine`)."""
    if "error" in event:
        return f"{label} step {event['step']}: run failed ({event['error']})"
    values = ", ".join(f"{k}={v:.4g}" for k, v in event["values"].items())
    return (
        f"{label} step {event['step']:>3} | {event['steps']:>10,} env steps"
        f" | return {event['return']:.4g} | {values}"
    )


def _meta_updates(s: RefineSettings, i: int) -> list[int]:
    """The updates meta-step ``i`` records (its run stops after the last)."""
    return checkpoint_updates(s.config.num_updates, s.pairs, s.k, (i * _GOLDEN) % 1.0)


def _meta_steps(s: RefineSettings, i: int) -> int:
    """Env steps of meta-step ``i``: its run up to the end of its last recorded update."""
    return (_meta_updates(s, i)[-1] + 1) * s.config.num_envs * s.config.num_steps


def _es_steps(s: RefineSettings) -> int:
    """Env steps of one ES iteration: 2 x pairs x es_seeds whole lifetimes."""
    return 2 * s.pairs * s.es_seeds * s.config.run_steps


def iteration_steps(settings: RefineSettings) -> int:
    """Env steps of the first refinement iteration with ``settings``: the least budget
    that refines at all (ValueError if the lifetime is too short for the method)."""
    return _meta_steps(settings, 0) if settings.method == "metagrad" else _es_steps(settings)


def check_budget(
    settings: RefineSettings, flag: str = "budget_steps", lifetime_flag: str = "config.total_steps"
) -> None:
    """ValueError, one line naming ``flag`` (how the caller spells the budget), the
    least budget for ``settings`` and the fix, if the budget is below one iteration; or
    naming the least lifetime, if the lifetime is too short for the method."""
    c = settings.config
    batch = c.num_envs * c.num_steps
    if settings.method == "metagrad" and c.num_updates < settings.k + 1:
        raise ValueError(
            f"a lifetime of {c.num_updates} x {batch:,} env steps is too short for metagrad, "
            f"which replays {settings.k} update(s) and evaluates the next: give it at least "
            f"{(settings.k + 1) * batch:,} env steps per lifetime ({lifetime_flag})"
        )
    if settings.method == "es" and c.num_updates < 2:
        # The one update comes after the lifetime's only rollout: no rule changes a return.
        raise ValueError(
            f"a lifetime of {c.num_updates} x {batch:,} env steps is too short for es: its "
            "one update comes after the last rollout, so all constants score the same; "
            f"give it at least {2 * batch:,} env steps per lifetime ({lifetime_flag})"
        )
    least = iteration_steps(settings)
    if settings.budget_steps >= least:
        return
    if settings.method == "metagrad":
        what = (
            f"one training run to update {_meta_updates(settings, 0)[-1] + 1} of "
            f"{c.num_updates} x {c.num_envs * c.num_steps:,} steps"
        )
    else:
        what = (
            f"2 x {settings.pairs} pairs x {settings.es_seeds} seed(s) x "
            f"{c.run_steps:,}-step lifetimes"
        )
    raise ValueError(
        f"{flag} {settings.budget_steps:,} is less than one {settings.method} iteration with "
        f"these settings ({least:,} env steps: {what}); pass {flag} {least} or more"
    )


def _metagrad(
    program: Program, space: ConstantSpace, s: RefineSettings, on_event: Events
) -> tuple[np.ndarray, int, list[dict]]:
    from evozero.refine.metagrad import MetaProblem, windows_of
    from evozero.refine.twin import Checkpoint, TorchRule

    state = ESState(space.initial_theta())
    steps, history, i = 0, [], 0
    while steps + _meta_steps(s, i) <= s.budget_steps:
        updates = _meta_updates(s, i)
        current = space.apply(program, state.theta)
        run = train(
            current,
            s.env,
            s.config,
            seed=s.seed + i,
            hooks={"checkpoints": updates, "stop_after_checkpoints": True},
        )
        steps += run.steps
        if run.status is not Status.OK:
            history.append({"step": i, "steps": steps, "error": run.message})
            on_event(history[-1])
            break
        cps = [Checkpoint.from_native(c) for c in run.checkpoints]
        problem = MetaProblem(
            TorchRule(current),
            space,
            windows_of(cps, s.k),
            s.config.num_minibatches,
            s.config.max_grad_norm,
            s.config.adam_eps,
        )
        value, grad = problem.value_and_grad(state.theta)
        if np.all(np.isfinite(grad)):
            state.ascend(grad, s.meta_lr)
        history.append(
            {
                "step": i,
                "steps": steps,
                "objective": value,  # J at the current constants: ~0 by construction
                # what the run reached by the step it stopped at (the last window)
                "return": final_return(run.episode_returns, run.episode_end_steps, run.steps),
                "values": space.values(state.theta),
            }
        )
        on_event(history[-1])
        i += 1
    return state.theta, steps, history


def _es(
    program: Program, space: ConstantSpace, s: RefineSettings, on_event: Events
) -> tuple[np.ndarray, int, list[dict]]:
    state = ESState(space.initial_theta())
    config = ESConfig(pairs=s.pairs, sigma=s.sigma, lr=s.meta_lr)
    rng = np.random.default_rng(s.seed)
    steps, history, i = 0, [], 0
    cfg = asdict(s.config)

    def payload(theta: np.ndarray) -> dict:
        seeds = [s.seed + i * s.es_seeds + j for j in range(s.es_seeds)]  # common random numbers
        return {
            "program": dsl.to_text(space.apply(program, theta)),
            "env": s.env,
            "config": cfg,
            "seeds": seeds,
        }

    with make_backend(s.backend, train_job, workers=s.workers) as backend:
        while steps + _es_steps(s) <= s.budget_steps:
            results = es_step(state, config, rng, backend, payload)
            steps += sum(int(r["steps"]) for r in results if r)
            fits = [fitness_of(r) for r in results]
            mean_fit = float(np.nanmean(fits)) if np.isfinite(fits).any() else math.nan
            history.append(
                {
                    "step": i,
                    "steps": steps,
                    "objective": mean_fit,
                    "return": mean_fit,
                    "values": space.values(state.theta),
                }
            )
            on_event(history[-1])
            i += 1
    return state.theta, steps, history


def refine(
    program: Program,
    settings: RefineSettings,
    on_event: Events = lambda e: None,
    *,
    validate_result: bool = True,
) -> RefineOutcome:
    """Refine ``program``'s constants (see the module doc); a ValueError, before any
    training, for a program without constants or a budget below one iteration."""
    space = ConstantSpace.of(program)
    if space.size == 0:
        raise ValueError("the program has no constants to refine")
    check_budget(settings)
    start = time.perf_counter()
    method = _metagrad if settings.method == "metagrad" else _es
    theta, steps, history = method(program, space, settings, on_event)
    outcome = RefineOutcome(
        program, space.apply(program, theta), steps, time.perf_counter() - start, history
    )
    if validate_result:
        outcome.validation = validate(
            program,
            outcome.refined,
            settings.validation_env or settings.env,
            settings.validation_config or settings.config,
            settings.validation_seeds,
            workers=settings.workers or 2,
        )
    return outcome


# ----------------------------------------------------------------------------- run store


def describe_change(outcome: RefineOutcome) -> str:
    """The constants that moved, ``name old -> new``, for a child's mutation text."""
    old, new = outcome.original.constant_values, outcome.refined.constant_values
    moved = [f"{k} {old[k]:.4g} -> {new[k]:.4g}" for k in old if old[k] != new[k]]
    return ", ".join(moved) or "no constant moved"


def store_child(store: RunStore, parent: int, outcome: RefineOutcome, method: str) -> int:
    """Record the refined rule as a child of candidate ``parent`` (origin
    ``refine:METHOD``, outside the search's budget), trained on the run's suite and
    scored like any candidate (:func:`train_child`), so it appears in ``show``, the hall
    of fame and ``export``. Returns its id."""
    program = outcome.refined
    child = store.add_child(
        origin=f"{REFINE_ORIGIN}{method}",
        parent=parent,
        mutation=f"{REFINE_ORIGIN}{method} {describe_change(outcome)}",
        text=dsl.to_text(program),
        key=canonical_key(program),
        fingerprint=fingerprint(program),
        complexity=program.complexity(),
    )
    train_child(store, child)
    return child


def child_rungs(store: RunStore, child: int) -> list[int]:
    """The rungs stored child ``child`` has still to train at: up to its parent's rung,
    so that it is ranked against its parent on the same footing; none after a rung it
    failed."""
    suite = Suite.from_json(store.meta()["suite"])
    c = store.candidate(child)
    top = min(store.candidate(c.parent).rung, len(suite.rungs) - 1) if c.parent is not None else 0
    if c.status in UNFINISHED:
        return list(range(c.rung, max(top, c.rung) + 1))
    return list(range(c.rung + 1, top + 1)) if c.status is Status.OK else []


def train_child(store: RunStore, child: int) -> None:
    """Train stored child ``child`` on the run's suite, rung 0 then each rung up to its
    parent's (promoted as the search promotes), and record its results; also what
    finishes one a stopped session left part-way."""
    suite = Suite.from_json(store.meta()["suite"])
    text = store.candidate(child).text
    for rung in child_rungs(store, child):
        pending = {r for id, r in store.unfinished_promotions() if id == child}
        if rung in pending:  # promoted by a session that stopped before the result
            store.dispatch(child, rung)
        elif rung > 0:
            store.promote(child, rung)
        tasks = suite.rungs[rung]
        start = time.perf_counter()
        reply = JobResult.from_json(evaluate_job(Job(text, tuple(tasks)).to_json()))
        result = candidate_result(
            reply, suite, store.normalizers(), time.perf_counter() - start, tasks
        )
        if rung == 0:
            store.finish_candidate(child, result)
        else:
            store.finish_rung(child, rung, result)
        if result.status is not Status.OK:
            return


def finish_children(store: RunStore, say: Callable[[str], None]) -> None:
    """Train the refined children a stopped session left short of their parent's rung
    (:func:`train_child`), saying which first."""
    for c in store.candidates():
        if c.origin.startswith(REFINE_ORIGIN) and child_rungs(store, c.id):
            say(f"training refined candidate {c.id} (left by a stopped run)")
            train_child(store, c.id)


def stored_twin(store: RunStore, program: Program) -> Candidate | None:
    """The refined child of the run with ``program``'s canonical form (stored by an
    earlier refinement), or None."""
    key = canonical_key(program)
    return next(
        (c for c in store.candidates() if c.key == key and c.origin.startswith(REFINE_ORIGIN)),
        None,
    )
