"""Refined rules live in the run store: children with origin refine:METHOD."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_runs import copy_run, searched_run
from typer.testing import CliRunner

from evozero.cli import app
from evozero.program import dsl
from evozero.refine.run import (
    RefineOutcome,
    child_rungs,
    describe_change,
    iteration_steps,
    store_child,
    stored_twin,
    train_child,
)
from evozero.refine.stage import run_settings
from evozero.search.store import RunStore
from evozero.search.tasks import Suite
from evozero.status import Status


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return searched_run(tmp_path_factory.mktemp("refine_run"))


def test_a_refined_rule_is_a_scored_child(run_dir: Path, tmp_path: Path) -> None:
    copy = copy_run(run_dir, tmp_path / "run")
    with RunStore.open(copy, writer="resume") as store:
        (parent,) = store.best(1)
        original = store.program(parent)
        name, value = next(iter(original.constant_values.items()))
        refined = original.with_constants({name: value * 0.5})
        outcome = RefineOutcome(original, refined, 100, 1.0, [])
        before = max(c.id for c in store.candidates())
        child = store_child(store, parent.id, outcome, "es")
        with pytest.raises(KeyError):
            store.add_child(
                origin="refine:es",
                parent=10_000,
                mutation="",
                text="",
                key="",
                fingerprint="",
                complexity=0,
            )
    with RunStore.open(copy) as reader:
        c = reader.candidate(child)
        assert child == before + 1
        assert (c.origin, c.parent) == ("refine:es", parent.id)
        assert c.mutation == f"refine:es {describe_change(outcome)}" and name in c.mutation
        assert c.status in (Status.OK, Status.CULLED, Status.DIVERGED, Status.ERROR)
        assert c.status != Status.OK or c.fitness is not None
        assert dsl.parse(c.text) == refined
        assert len(reader.runs(child)) >= 1  # it was trained on the suite
        # Ranked against its parent on the same footing: trained up to the parent's rung.
        assert parent.rung >= 1  # the tiny run promotes: this checks the climb
        assert c.status != Status.OK or c.rung == parent.rung
        assert stored_twin(reader, refined).id == child  # what a second refine finds


def test_a_child_left_part_way_climbs_on(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evozero.refine import run as refine_run

    copy = copy_run(run_dir, tmp_path / "run")
    with RunStore.open(copy, writer="resume") as store:
        (parent,) = store.best(1)
        assert parent.rung >= 1  # else there is no rung to climb to
        original = store.program(parent)
        outcome = RefineOutcome(original, original, 1, 0.0, [])
        with monkeypatch.context() as m:  # a session stopped after rung 0
            m.setattr(refine_run, "child_rungs", lambda store, child: [0])
            child = store_child(store, parent.id, outcome, "es")
        c = store.candidate(child)
        assert c.rung == 0 and c.status is Status.OK  # the parent's own rule: it learns
        assert child_rungs(store, child) == list(range(1, parent.rung + 1))
        train_child(store, child)
        assert store.candidate(child).rung == parent.rung and not child_rungs(store, child)


def test_refine_a_run_directory(run_dir: Path, tmp_path: Path) -> None:
    copy = copy_run(run_dir, tmp_path / "run")
    with RunStore.open(copy) as reader:
        suite = Suite.from_json(reader.meta()["suite"])
    one = iteration_steps(run_settings(suite, method="es"))  # the least budget: one iteration
    args = ["refine", str(copy), "--method", "es", "--steps", str(one), "--seeds", "2"]
    args += ["--backend", "serial", "-o", str(tmp_path / "out"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (out,) = json.loads(result.stdout)
    assert len(out["history"]) == 1 and out["steps"] == one  # the budget, not past it
    with RunStore.open(copy) as reader:
        children = [c for c in reader.candidates() if c.origin == "refine:es"]
    assert [c.id for c in children] == ([out["child"]] if out["kept"] else [])
    assert (out["child"] is None) == (not out["kept"])


def test_train_steps_sets_a_runs_refinement_lifetime(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default a run's rules refine at rung 0's budget; --train-steps changes the
    lifetime (e.g. to the target budget), never where the result is validated."""
    from evozero.cli import refine as cli_refine
    from evozero.refine.validate import Validation

    seen = []

    def fake(program, settings, on_event=lambda e: None):
        seen.append(settings)
        return RefineOutcome(
            program, program, 10, 0.0, [], Validation((1, 2), (0, 0), (0, 0), -1, 1)
        )

    monkeypatch.setattr(cli_refine, "refine", fake)
    copy = copy_run(run_dir, tmp_path / "run")
    with RunStore.open(copy) as reader:
        suite = Suite.from_json(reader.meta()["suite"])
    base = ["refine", str(copy), "--method", "es", "--steps", "999999999", "--backend", "serial"]
    base += ["-o", str(tmp_path / "out")]
    for extra, lifetime in [([], suite.tasks[0].steps), (["--train-steps", "30000"], 30000)]:
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 0, result.output
        assert seen[-1].config.total_steps == lifetime
        assert seen[-1].validation_config == run_settings(suite).validation_config
    # A program file's lifetime defaults to refine's own default.
    result = CliRunner().invoke(app, ["refine", "programs/ppo.evz", "--method", "es", *base[4:]])
    assert result.exit_code == 0, result.output
    assert seen[-1].config.total_steps == 1_000_000 and seen[-1].validation_config is None
