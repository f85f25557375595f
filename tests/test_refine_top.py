"""``evolve --refine-top K``: the refinement stage between the search and its report,
resumable, with refined children outside the search's budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_runs import TINY, copy_run, searched_run
from typer.testing import CliRunner

import evozero
from evozero.cli import app
from evozero.refine import stage
from evozero.refine.run import RefineOutcome, iteration_steps
from evozero.refine.stage import run_settings
from evozero.refine.validate import Validation
from evozero.search.config import SEED_PROGRAMS, SearchConfig
from evozero.search.driver import Search, SearchStatus
from evozero.search.store import RunStore
from evozero.search.tasks import get_suite
from evozero.status import TRAINED


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("refine_top")


@pytest.fixture(autouse=True)
def _cache(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One normalizer cache for the module's runs (measured once).
    monkeypatch.setenv("EVOZERO_CACHE_DIR", str(base / "cache"))


@pytest.fixture(scope="module")
def searched(base: Path) -> Path:
    """A tiny run searched (budget 3), not refined or reported."""
    return searched_run(base)


def _fake_refine(calls: list[int]):
    """A stand-in for :func:`evozero.refine.run.refine` that halves the first constant
    and keeps it (the stage's bookkeeping is under test, not the method)."""

    def refine(program, settings, on_event=lambda e: None, **_):
        calls.append(len(calls))
        name, value = next(iter(program.constant_values.items()))
        refined = program.with_constants({name: value * 0.5})
        on_event(
            {"step": 0, "steps": 10, "objective": 1.0, "return": 1.0, "values": {name: value * 0.5}}
        )
        kept = Validation((1, 2), (0.0, 0.0), (1.0, 1.0), 0.5, 1.5)
        return RefineOutcome(program, refined, 10, 0.0, [], kept)

    return refine


def test_evolve_refine_top_stores_the_outcome_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["evolve", "--budget", "3", "--suite", "tiny", "--backend", "serial"]
    args += ["--workers", "1", "--population", "3", "--tournament", "2", "--out", str(out)]
    one = iteration_steps(run_settings(get_suite("tiny"), method="es"))  # the least budget
    args += ["--refine-top", "1", "--refine-method", "es", "--refine-steps", str(one), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with RunStore.open(out) as store:
        meta = store.meta()
        (best,) = stage.targets(store, 1)
        children = [c for c in store.candidates() if c.origin == "refine:es"]
        assert meta["state"] == "finished" and meta["report"] is not None
        (record,) = meta["refined"].values()
        assert list(meta["refined"]) == [str(best.id)] and record["method"] == "es"
        assert record["verdict"].startswith("refined constants") and record["steps"] == one
        assert [c.id for c in children] == ([record["child"]] if record["child"] else [])
        assert all(c.parent == best.id for c in children)
        assert store.count(*TRAINED) == 3  # the budget; a child is counted apart
    shown = CliRunner().invoke(app, ["show", str(out)])  # what evolve prints at its end
    assert f"refined candidate {best.id} by es: refined constants" in shown.output


def test_a_run_stopped_in_the_refine_stage_resumes_without_refining_twice(
    searched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(stage, "refine", _fake_refine(calls))
    run = copy_run(searched, tmp_path / "run")
    search = Search.resume(run, after_search=stage.refine_top)
    search.change(refine_top=2, refine_method="es")
    phases: list[str] = []

    def stop_at_the_second(s: SearchStatus) -> None:
        phases.append(s.phase)
        if s.phase == "refine" and "(2/2" in s.message:
            raise KeyboardInterrupt

    search.on_status = stop_at_the_second
    with pytest.raises(KeyboardInterrupt):
        search.run()
    search.store.close()
    assert calls == [0] and "refine" in phases
    with RunStore.open(run) as store:
        assert store.meta()["state"] == "stopped" and len(store.meta()["refined"]) == 1
    search = Search.resume(run, after_search=stage.refine_top)
    search.run()
    search.store.close()
    assert calls == [0, 1]  # only the second rule on resume
    with RunStore.open(run) as store:
        meta = store.meta()
        targets = {c.id for c in stage.targets(store, 2)}
        children = [c for c in store.candidates() if c.origin == "refine:es"]
        assert meta["state"] == "finished" and meta["report"] is not None
        assert {int(k) for k in meta["refined"]} == targets == {c.parent for c in children}
        assert len(children) == 2
        # A third session refines nothing more.
        store.close()
    search = Search.resume(run, after_search=stage.refine_top)
    search.run()
    search.store.close()
    assert calls == [0, 1]


def test_refined_children_do_not_count_against_the_budget(
    searched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stage, "refine", _fake_refine([]))
    run = copy_run(searched, tmp_path / "run")
    search = Search.resume(run, after_search=stage.refine_top)
    search.change(refine_top=1, refine_method="es")
    search.run(report=False)
    search.store.close()
    result = CliRunner().invoke(app, ["show", str(run)])
    assert result.exit_code == 0, result.output
    assert "3/3 trained (+1 refined)" in result.output
    runs = CliRunner().invoke(app, ["runs", str(tmp_path), "--json"])
    (row,) = json.loads(runs.stdout)
    assert (row["trained"], row["refined"]) == (3, 1)
    # One more in the budget trains one more search candidate (the child is not one),
    # the next initial program (the child's id skips none).
    search = Search.resume(run, after_search=stage.refine_top)
    assert "has 3, so 1 more will be trained" in (search.change(budget=4) or "")
    search.run(report=False)
    search.store.close()
    with RunStore.open(run) as store:
        assert store.count(*TRAINED) == 4 and store.count(*TRAINED, children=True) == 1
        origins = [c.origin for c in store.candidates()]
        assert origins.count("refine:es") == 1
        assert [o for o in origins if o != "refine:es"] == [f"init:{n}" for n in SEED_PROGRAMS[:4]]


def test_a_run_with_refine_top_needs_the_stage(tmp_path: Path) -> None:
    search = Search.create(tmp_path / "run", SearchConfig(budget=1, refine_top=1, **TINY))
    with pytest.raises(RuntimeError, match="after_search"):
        search.run()
    search.store.close()


def test_a_refine_budget_below_one_iteration_is_refused_before_the_search(
    searched: Path, tmp_path: Path
) -> None:
    one = iteration_steps(run_settings(get_suite("tiny"), method="es"))
    out = tmp_path / "new"
    args = ["evolve", "--budget", "3", "--suite", "tiny", "--out", str(out), "--refine-top", "1"]
    args += ["--refine-method", "es", "--refine-steps", str(one - 1)]
    result = CliRunner().invoke(app, args)
    line = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"--refine-steps {one - 1:,} is less than one es iteration" in line
    assert f"({one:,} env steps" in line and f"pass --refine-steps {one} or more" in line
    assert not out.exists()  # refused before the run was made
    # Resuming with such a budget is refused too, and leaves the run free.
    run = copy_run(searched, tmp_path / "run")
    args = ["evolve", "--resume", str(run), "--refine-top", "1", "--refine-method", "es"]
    result = CliRunner().invoke(app, [*args, "--refine-steps", "1"])
    assert result.exit_code == 2 and "--refine-steps 1 is less than" in result.output
    with RunStore.open(run, writer="resume") as store:
        assert "refined" not in store.meta()
    # The Python API names its own argument.
    with pytest.raises(ValueError, match=f"refine_steps 1 is less than .* pass refine_steps {one}"):
        evozero.evolve(3, "tiny", out=out, refine_top=1, refine_method="es", refine_steps=1)
    assert not out.exists()


def test_a_child_stopped_mid_rung_neither_breaks_the_resume_nor_stays_short(
    searched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refined child promoted but not trained at rung 1 when its session stopped: the
    resumed search passes over its promotion (not the evolution's), and the refine stage
    trains it on, up to its parent's rung."""
    from evozero.refine import run as refine_run

    run = copy_run(searched, tmp_path / "run")
    real = refine_run.evaluate_job
    jobs: list[str] = []

    def stop_at_rung_1(job: str) -> str:
        jobs.append(job)
        if len(jobs) == 2:  # rung 0 done, promoted, stopped in rung 1's training
            raise KeyboardInterrupt
        return real(job)

    with RunStore.open(run, writer="resume") as store:
        parent = stage.targets(store, 1)[0]
        assert parent.rung >= 1  # else there is no rung to stop in
        original = store.program(parent)
        name, value = next(iter(original.constant_values.items()))
        outcome = RefineOutcome(original, original.with_constants({name: value * 0.9}), 1, 0.0, [])
        with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
            m.setattr(refine_run, "evaluate_job", stop_at_rung_1)
            refine_run.store_child(store, parent.id, outcome, "es")
        store.requeue()  # what a stopped session leaves
        (child,) = [c for c in store.candidates() if c.origin.startswith("refine:")]
        assert (child.id, 1) in store.unfinished_promotions()
        assert refine_run.child_rungs(store, child.id) == list(range(1, parent.rung + 1))
    monkeypatch.setattr(stage, "refine", _fake_refine([]))
    search = Search.resume(run, after_search=stage.refine_top)
    search.change(refine_top=1, refine_method="es")
    search.run()
    search.store.close()
    with RunStore.open(run) as store:
        c = store.candidate(child.id)
        assert store.meta()["state"] == "finished"
        assert c.rung == parent.rung and not refine_run.child_rungs(store, child.id)
        assert not [p for p in store.unfinished_promotions() if p[0] == child.id]
