"""The refinement stage of ``evozero evolve --refine-top K``: after the search phase and
before the final report, refine the constants of the search's K best rules.

The driver cannot import this layer (refine sits above search), so whoever runs a search
passes :func:`refine_top` as its ``after_search`` stage (``evozero evolve`` and
:func:`evozero.evolve` do). A kept refinement is stored as a child of its rule (origin
``refine:METHOD``), so the report that follows can pick it; every rule refined is
recorded in the run's meta ``refined`` (candidate id → method, child, verdict), so a
resume, after Ctrl-C or a crash mid-stage, refines only the rules not done yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evozero.refine.run import (
    RefineSettings,
    check_budget,
    event_line,
    finish_children,
    refine,
    store_child,
    stored_twin,
)
from evozero.search.store import REFINE_ORIGIN, Candidate, RunStore
from evozero.search.tasks import Suite

if TYPE_CHECKING:
    from evozero.search.config import SearchConfig
    from evozero.search.driver import Search

#: Where a run's refinement lifetime comes from, for errors.
_LIFETIME = "the suite's first task at rung 0"
#: The run store's meta key of the rules refined so far.
META_KEY = "refined"


def run_settings(suite: Suite, **settings: Any) -> RefineSettings:
    """Refinement settings for a run's rules: refined on its suite's first task with its
    trainer settings (where its rules learned, at rung 0's budget, which keeps each
    iteration cheap), validated on the suite's target task of that env (the first target
    task if none has it), at the budget users train for."""
    task = suite.tasks[0]
    target = next((t for t in suite.target if t.env == task.env), suite.target[0])
    return RefineSettings(
        env=task.env,
        config=task.train_config(),
        validation_env=target.env,
        validation_config=target.train_config(),
        **settings,
    )


def stage_settings(config: SearchConfig, suite: Suite) -> RefineSettings:
    """The settings the stage refines each rule of a search with ``config`` with."""
    return run_settings(
        suite,
        method=config.refine_method,
        budget_steps=config.refine_steps,
        seed=config.seed,
        # Refinement trains single rules, not batches of search jobs: a batch search
        # refines on worker processes.
        backend="process" if config.backend == "batch" else config.backend,
        workers=config.workers,
    )


def check_stage(config: SearchConfig, suite: Suite, flag: str = "refine_steps") -> None:
    """ValueError naming ``flag`` if ``config`` refines (``refine_top``) with a budget
    below one iteration (:func:`~evozero.refine.run.check_budget`): callers check before
    the search, not after it."""
    if config.refine_top:
        check_budget(stage_settings(config, suite), flag, _LIFETIME)


def targets(store: RunStore, k: int) -> list[Candidate]:
    """The search's ``k`` best rules (refined children are not rules of the search)."""
    children = store.count_by_status(children=True).total()
    return [c for c in store.best(k + children) if not c.origin.startswith(REFINE_ORIGIN)][:k]


def refine_top(search: Search) -> None:
    """Refine the ``refine_top`` best rules of ``search`` not refined yet (see the module
    doc); the live status shows phase ``refine``."""
    config, store = search.config, search.store
    if not config.refine_top:
        return
    finish_children(store, lambda line: search.emit("refine", line))
    children = [c for c in store.candidates() if c.origin.startswith(REFINE_ORIGIN)]
    done: dict[str, Any] = dict(store.meta().get(META_KEY) or {})
    done_ids = {int(k) for k in done} | {c.parent for c in children}
    todo = [c for c in targets(store, config.refine_top) if c.id not in done_ids]
    settings = stage_settings(config, search.suite)
    check_budget(settings, "refine_steps", _LIFETIME)  # callers checked; catches a change()
    for i, c in enumerate(todo, 1):
        label = f"candidate {c.id} ({i}/{len(todo)}, {config.refine_method})"
        search.emit("refine", f"refining {label}")
        try:
            outcome = refine(
                store.program(c),
                settings,
                lambda e, label=label: search.emit("refine", event_line(label, e)),
            )
        except ValueError as e:  # e.g. a rule without constants
            done[str(c.id)] = {"method": config.refine_method, "child": None, "verdict": str(e)}
            store.set_meta({META_KEY: done})
            continue
        assert outcome.validation is not None
        child = None
        if outcome.validation.kept:  # one candidate per rule: an earlier refine's stays
            twin = stored_twin(store, outcome.refined)
            child = twin.id if twin else store_child(store, c.id, outcome, config.refine_method)
        done[str(c.id)] = {
            "method": config.refine_method,
            "child": child,
            "verdict": outcome.validation.verdict,
            "steps": outcome.steps,
            "seconds": outcome.seconds,
        }
        store.set_meta({META_KEY: done})
        search.emit("refine", f"{label}: {outcome.validation.verdict}")
