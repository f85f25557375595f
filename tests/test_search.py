"""The search driver, the run store, fitness and the final report (tiny suite).

The algorithm itself (tournament, aging, duplicates, resume) is tested without training
in tests/test_evolution.py."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from evozero.program import dsl
from evozero.program.canon import canonical_key
from evozero.search import driver
from evozero.search.backends import Outcome
from evozero.search.config import SearchConfig
from evozero.search.driver import Search
from evozero.search.fitness import (
    NormalizerCache,
    aggregate,
    candidate_result,
    evaluate_job,
    normalized,
    random_return,
    reference_program_text,
    task_score,
)
from evozero.search.protocol import CandidateResult, JobResult, Phase, RunRecord
from evozero.search.report import hall_of_fame
from evozero.search.store import DB_NAME, RunStore, RunStoreError
from evozero.search.tasks import SUITES, Suite, Task
from evozero.status import TRAINED, Status


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # One normalizer cache per test session: measured once, shared by the tests.
    monkeypatch.setenv("EVOZERO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def tiny(**changes) -> SearchConfig:
    return SearchConfig(
        **{
            "budget": 8,
            "suite": "tiny",
            "backend": "serial",
            "workers": 1,
            "population": 6,
            "tournament": 3,
            **changes,
        }
    )


def record(
    final_return: float | None, status: Status = Status.OK, seed: int = 0, task: str = "t"
) -> RunRecord:
    return RunRecord(
        task=task,
        seed=seed,
        status=status,
        message="",
        final_return=final_return,
        auc=None,
        steps=0,
        seconds=0.0,
    )


def table(store: RunStore) -> list[tuple]:
    return [
        (c.id, c.text, c.status, c.fitness, c.parent, c.mutation, c.duplicate_of)
        for c in store.candidates()
    ]


# ----------------------------------------------------------------------------- fitness


def test_normalized_score_is_zero_at_random_and_one_at_ppo():
    assert normalized(2.0, 2.0, 10.0) == 0.0
    assert normalized(10.0, 2.0, 10.0) == 1.0
    assert normalized(14.0, 2.0, 10.0) == 1.5
    assert math.isfinite(normalized(1.0, 3.0, 3.0))  # degenerate spread: finite, not a crash
    ok = [record(4.0), record(6.0, seed=1)]
    assert task_score(ok, [1.0, 1.0], [9.0, 9.0]) == pytest.approx(0.5)
    assert task_score([record(4.0, Status.DIVERGED), ok[1]], [1, 1], [9, 9]) is None


def test_tasks_and_suites_round_trip_through_json():
    for suite in SUITES.values():
        again = Suite.from_json(json.loads(json.dumps(suite.to_json())))
        assert again == suite
        for task in (*suite.tasks, *suite.heldout):
            assert Task.from_json(task.to_json()) == task
            assert task.train_config().total_steps == task.steps
    with pytest.raises(ValueError, match="num_envs"):
        Task("breakout", 10_000, config={"num_envs": 0})
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        Task("breakout", 10_000, config={"envs": 3})


def test_random_return_is_deterministic_per_seed():
    task = Task("breakout", 20_000)
    assert random_return(task, 3) == random_return(task, 3)
    assert 0.0 <= random_return(task, 3) < 2.0  # a random breakout player scores ~0.4


def test_normalizer_cache_keys_on_version_task_and_seed(tmp_path, monkeypatch):
    cache = NormalizerCache(tmp_path / "n.json")
    task = Task("breakout", 10_000)
    assert cache.get(task, 0, "ppo") is None
    cache.put(task, 0, "ppo", 3.5)
    cache.put(task, 1, "ppo", 4.5)
    assert NormalizerCache(tmp_path / "n.json").get(task, 0, "ppo") == 3.5
    assert cache.get(task, 1, "ppo") == 4.5
    assert cache.get(Task("breakout", 20_000), 0, "ppo") is None
    assert cache.get(task, 0, "random") is None
    assert cache.get(Task("breakout", 10_000, config={"network": "conv"}), 0, "ppo") is None
    monkeypatch.setattr("evozero.__version__", "9.9.9")
    assert cache.get(task, 0, "ppo") is None  # another evozero never reuses the numbers
    (tmp_path / "n.json").write_text("not json")
    assert cache.get(task, 0, "ppo") is None  # a damaged cache is remeasured, not fatal


def test_hurdle_culls_before_the_full_suite():
    suite = SUITES["tiny"]
    payload = {
        "program": reference_program_text("noop"),
        "tasks": [t.to_json() for t in suite.tasks],
        "hurdle": {"task": suite.hurdle.to_json(), "threshold": 0.3, "random": [0.4], "ppo": [2.5]},
    }
    out = evaluate_job(payload)
    assert out["passed"] is False and out["runs"] == {}
    assert out["hurdle_score"] < 0.3 and len(out["hurdle"]) == 1


# ----------------------------------------------------------------------------- hall of fame


def test_hall_of_fame_is_the_pareto_front(tmp_path):
    store = RunStore.create(tmp_path / "run", {"kind": "test"})
    rows = [(0, 10, 0.5), (1, 12, 0.4), (2, 12, 0.8), (3, 15, 0.7), (4, 20, 1.2), (5, 8, None)]
    for id, cx, fit in rows:
        store.add_candidate(
            id=id,
            origin="x",
            parent=None,
            mutation=None,
            text=f"t{id}",
            key=f"k{id}",
            fingerprint=f"f{id}",
            complexity=cx,
        )
        store.finish_candidate(
            id, CandidateResult(Status.OK if fit is not None else Status.DIVERGED, fit)
        )
    assert [c.id for c in hall_of_fame(store)] == [4, 2, 0]


# ----------------------------------------------------------------------------- report


# The final report's statistics and verdicts: tests/test_verdicts.py.


# ----------------------------------------------------------------------------- the search


def test_serial_search_is_reproduced_exactly(tmp_path):
    a = Search.create(tmp_path / "a", tiny(seed=7))
    a.run()
    b = Search.create(tmp_path / "b", tiny(seed=7))
    b.run()
    ta, tb = table(a.store), table(b.store)
    assert ta == tb
    assert sum(1 for row in ta if row[2] != Status.DUPLICATE) == 8
    assert any(row[4] is not None for row in ta)  # mutants were bred
    assert a.store.meta()["report"] == b.store.meta()["report"]
    c = Search.create(tmp_path / "c", tiny(seed=8))
    c.run()
    assert table(c.store) != ta


def test_every_number_behind_a_result_is_stored(tmp_path):
    s = Search.create(tmp_path / "run", tiny(budget=6))
    s.run()
    store = RunStore.open(tmp_path / "run")
    meta = store.meta()
    env = meta["environment"]
    assert env["evozero"] and env["numpy"] == np.__version__ and env["compiler"] != "unknown"
    assert meta["config"]["budget"] == 6 and meta["suite"]["name"] == "tiny"
    assert meta["state"] == "finished"
    ok = store.candidates(Status.OK)
    assert ok, "ppo.evz passes the tiny hurdle"
    for c in ok:
        runs = store.runs(c.id, Phase.SEARCH)
        assert runs and all(len(r.curve) == 20 for r in runs)
        assert set(c.scores) == {t.label for t in SUITES["tiny"].rungs[c.rung]}
        assert c.fitness == pytest.approx(min(c.scores.values()))
        for rung in range(c.rung + 1):  # every rung's runs are kept
            assert {r.task for r in store.runs(c.id, Phase.SEARCH, rung)} == {
                t.label for t in SUITES["tiny"].rungs[rung]
            }
        dsl.parse(c.text)  # stored text parses back
    for c in store.candidates(Status.CULLED):
        assert c.fitness == c.hurdle_score < SUITES["tiny"].hurdle_threshold
        assert not store.runs(c.id, Phase.SEARCH) and store.runs(c.id, Phase.HURDLE)
    norms = store.normalizers()
    assert {t for t, _ in norms} >= {SUITES["tiny"].hurdle.label}
    best = meta["report"]["subjects"][0]
    assert store.runs(best["id"], Phase.REPORT)


def test_duplicates_are_never_trained_twice(tmp_path):
    ppo = reference_program_text("ppo")
    # The same rule written differently: a dead instruction and reordered constants.
    twin = ppo.replace("objective:\n", "objective:\n  unused = square(adv)\n", 1)
    assert twin != ppo
    config = tiny(budget=3, init_texts=(("ppo.evz", ppo), ("twin.evz", twin), ("ppo2.evz", ppo)))
    s = Search.create(tmp_path / "run", config)
    s.run()
    store = s.store
    dups = store.candidates(Status.DUPLICATE)
    assert [c.id for c in dups][:2] == [1, 2]
    for c in dups:
        original = store.candidate(c.duplicate_of)
        assert original.status != Status.DUPLICATE
        # its standing is the original's when it was proposed (which a promotion may
        # have raised since)
        assert c.fitness == store.ladders()[original.id][c.rung][1]
        assert store.runs(c.id) == []  # nothing was trained for it
    assert store.count(*TRAINED) == 3
    keys = [c.key for c in store.candidates() if c.status != Status.DUPLICATE]
    assert len(keys) == len(set(keys))


def test_a_fingerprint_match_never_overrides_different_sympy_keys(tmp_path, monkeypatch):
    # Two rules the probe batch could not tell apart: every program gets one fingerprint.
    ppo = reference_program_text("ppo")
    wider = ppo.replace("eps = 0.2", "eps = 0.3")
    assert canonical_key(dsl.parse(ppo)) != canonical_key(dsl.parse(wider))
    monkeypatch.setattr(driver, "fingerprint", lambda p: "one fingerprint")
    config = tiny(budget=2, init_texts=(("ppo.evz", ppo), ("wider.evz", wider)))
    s = Search.create(tmp_path / "sympy", config)
    s.run(report=False)
    assert s.store.count(Status.DUPLICATE) == 0  # different sympy keys: both trained
    # When sympy gives up on one of them, the fingerprint decides: a duplicate.
    no_sympy = dsl.parse(wider)
    monkeypatch.setattr(
        driver, "canonical_key", lambda p: "f:x" if p == no_sympy else canonical_key(p)
    )
    s = Search.create(tmp_path / "fingerprint", config)
    s.run(report=False)
    dup = s.store.candidate(1)
    assert dup.key == "f:x" and dup.status == "duplicate" and dup.duplicate_of == 0


def test_bad_search_settings_are_clear_errors():
    with pytest.raises(ValueError, match="--budget must be an integer >= 1"):
        tiny(budget=0)
    with pytest.raises(ValueError, match="unknown suite 'nope'; choose one of: quick"):
        tiny(suite="nope")
    with pytest.raises(ValueError, match="--tournament .* cannot exceed --population"):
        tiny(population=2, tournament=3)
    with pytest.raises(ValueError, match="unknown --backend 'gpu'"):
        tiny(backend="gpu")
    with pytest.raises(ValueError, match="unknown --init"):
        tiny(init="zeros")


def test_run_store_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(RunStoreError, match="is not a directory"):
        RunStore.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunStoreError, match="is not an evozero run"):
        RunStore.open(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run.sqlite").write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(RunStoreError, match="not a readable run database"):
        RunStore.open(tmp_path / "junk")
    store = RunStore.create(tmp_path / "run", {"kind": "evolve"})
    with pytest.raises(RunStoreError, match="already holds a run"):
        RunStore.create(tmp_path / "run", {})
    env = store.meta()["environment"]
    store.set_meta({"environment": {**env, "evozero": "0.0.1"}})
    store.close()
    RunStore.open(tmp_path / "run").close()  # reading an older run is fine
    with pytest.raises(RunStoreError, match="made by evozero 0.0.1.*resume it with evozero"):
        RunStore.open(tmp_path / "run", writer="resume")
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(RunStoreError, match="schema 99"):
        RunStore.open(tmp_path / "run")


def test_a_failed_worker_fails_its_candidate_only(tmp_path):
    s = Search.create(tmp_path / "run", tiny(budget=2))
    s._normalizers([SUITES["tiny"].hurdle, *SUITES["tiny"].tasks])
    out = s.result_of(
        Outcome(
            job_id=0, result=None, seconds=1.0, error="worker died (signal SIGKILL) during the job"
        )
    )
    assert out == CandidateResult(
        Status.ERROR, None, seconds=1.0, message="worker died (signal SIGKILL) during the job"
    )


# ----------------------------------------------------------------------------- rungs


def ladder_table(store: RunStore) -> list[tuple]:
    """Every candidate's standing, its result per rung, and its search runs per rung."""
    ladders = store.ladders()
    return [
        (
            *row,
            store.candidate(row[0]).rung,
            sorted(ladders.get(row[0], {}).items()),
            [(r.task, r.seed, r.final_return) for r in store.runs(row[0], Phase.SEARCH)],
        )
        for row in table(store)
    ]


def test_a_serial_run_stopped_during_a_promotion_resumes_to_the_same_run(tmp_path):
    whole = Search.create(tmp_path / "whole", tiny(seed=7))
    whole.run(report=False)
    expected = ladder_table(whole.store)
    promoted = [c for c in whole.store.candidates() if c.rung == 1]
    assert promoted and all(c.status != Status.DUPLICATE for c in promoted)
    assert whole.store.unfinished_promotions() == []

    stopped = Search.create(tmp_path / "run", tiny(seed=7))

    def ctrl_c(status) -> None:
        if status.phase == "search" and status.rungs and status.rungs[1]["in_flight"]:
            raise KeyboardInterrupt

    stopped.on_status = ctrl_c
    with pytest.raises(KeyboardInterrupt):
        stopped.run(report=False)
    pending = stopped.store.unfinished_promotions()
    assert pending  # the promotion in flight is queued for the resume
    stopped.store.close()
    with RunStore.open(tmp_path / "run") as reader:
        assert reader.rung_summary()[1]["in_flight"] == len(pending)

    resumed = Search.resume(tmp_path / "run")
    resumed.run(report=False)
    assert ladder_table(resumed.store) == expected
    # nothing trained twice: one run per rung's task and seed of each trained candidate
    for c in resumed.store.candidates():
        runs = resumed.store.runs(c.id, Phase.SEARCH)
        assert len(runs) == len({(r.task, r.seed) for r in runs})
    summary = resumed.store.rung_summary()
    assert [r["evaluated"] for r in summary] == [8, len(promoted)]
    assert summary[1]["best"] == max(c.fitness for c in promoted if c.status == Status.OK)


def test_the_robust_fitness_does_not_let_one_game_hide_a_collapse():
    # The measurement at 5M steps: the rule halves breakout and doubles
    # space_invaders; ppo.evz is the normalizer (score 1 on each game).
    rule = {"breakout": 15.4, "space_invaders": 373.0}
    ppo = {"breakout": 29.3, "space_invaders": 164.5}
    random = {"breakout": 0.3, "space_invaders": 2.9}
    scores = [normalized(rule[g], random[g], ppo[g]) for g in rule]
    ppo_scores = [normalized(ppo[g], random[g], ppo[g]) for g in ppo]
    assert np.mean(scores) > np.mean(ppo_scores)  # the mean would call it better
    assert aggregate(scores) < aggregate(ppo_scores) == pytest.approx(1.0)
    # and through the candidate's verdict, with two seeds per game
    tasks = (Task("breakout", 10**6, (0, 1)), Task("space_invaders", 10**6, (0, 1)))
    suite = Suite("t", "t", rungs=(tasks,))
    norms = {(t.label, s): (random[t.env], ppo[t.env]) for t in tasks for s in t.seeds}

    def verdict(returns: dict[str, float]) -> float | None:
        runs = {
            t.label: tuple(record(returns[t.env], seed=s, task=t.label) for s in t.seeds)
            for t in tasks
        }
        return candidate_result(JobResult(None, None, True, runs), suite, norms, 0.0).fitness

    assert verdict(rule) < verdict(ppo) == pytest.approx(1.0)
    better_everywhere = {g: 1.2 * v for g, v in ppo.items()}
    assert verdict(better_everywhere) > verdict(ppo)


def runs_of(store: RunStore, id: int) -> list[tuple]:
    return sorted((r.task, r.seed, r.final_return) for r in store.runs(id))


def downgrade_to_schema_1(db: Path) -> None:
    """Rewrites a store as evozero wrote it before rungs existed (schema 1)."""
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        BEGIN;
        DROP TABLE rungs;
        CREATE TABLE runs_1 AS SELECT candidate, phase, task, seed, status, message,
            final_return, auc, steps, seconds, curve FROM runs;
        DROP TABLE runs;
        ALTER TABLE runs_1 RENAME TO runs;
        ALTER TABLE candidates DROP COLUMN rung;
        UPDATE meta SET value = '1' WHERE key = 'schema';
        COMMIT;
        """
    )
    conn.close()


def test_a_store_from_before_rungs_opens_as_a_single_rung(tmp_path):
    run = tmp_path / "run"
    s = Search.create(run, tiny(budget=3, population=3, tournament=2))
    s.run(report=False)
    s.store.close()
    with RunStore.open(run) as store:
        before = [(c.id, c.status, c.fitness) for c in store.candidates()]
        runs = {c.id: runs_of(store, c.id) for c in store.candidates()}
    downgrade_to_schema_1(run / DB_NAME)
    db = sqlite3.connect(run / DB_NAME)
    meta = json.loads(db.execute("SELECT value FROM meta WHERE key='suite'").fetchone()[0])
    with RunStore.open(run) as reader:  # read-only: migrated in memory, the file unchanged
        assert [(c.id, c.status, c.fitness) for c in reader.candidates()] == before
        assert {c.id: runs_of(reader, c.id) for c in reader.candidates()} == runs
        assert set(reader.ladders()) == {c[0] for c in before if c[1] != Status.DUPLICATE}
    assert sqlite3.connect(run / DB_NAME).execute(
        "SELECT value FROM meta WHERE key='schema'"
    ).fetchone() == ("1",)
    # a suite stored before rungs (its tasks, no rungs) reads as one rung
    old_suite = {k: v for k, v in meta.items() if k not in ("rungs", "promote", "target")}
    old_suite["tasks"] = meta["rungs"][0]
    assert Suite.from_json(old_suite).rungs == (tuple(Task.from_json(t) for t in meta["rungs"][0]),)
    resumed = Search.resume(run)  # the writer migrates the file
    resumed.change(budget=4)
    resumed.run(report=False)
    assert resumed.store.count(*TRAINED) == 4
    resumed.store.close()
    assert sqlite3.connect(run / DB_NAME).execute(
        "SELECT value FROM meta WHERE key='schema'"
    ).fetchone() == ("2",)


def test_max_time_counts_the_search_time_of_every_session(tmp_path):
    first = Search.create(tmp_path / "run", tiny(budget=2))
    first.run(report=False)
    spent = first.store.meta()["search_seconds"]
    first.store.close()
    assert spent > 0.001
    again = Search.resume(tmp_path / "run")
    again.change(budget=1000, max_time=0.001)  # already spent: nothing more starts
    seen = []
    again.on_status = seen.append
    again.run(report=False)
    assert again.store.count(*TRAINED) == 2 and again.store.unfinished_promotions() == []
    assert seen[-1].message == "--max-time (0.001 s) reached"
    assert again.store.meta()["config"]["max_time"] == 0.001
    with pytest.raises(ValueError, match="--max-time must be a positive duration"):
        tiny(max_time=0)


def test_a_task_records_its_network_and_refuses_conv_on_a_gym_env():
    task = Task("asterix", 10_000, config={"network": "conv"})
    assert Task.from_json(task.to_json()).train_config().network == "conv"
    assert '"network": "conv"' in task.spec_json()
    with pytest.raises(ValueError, match="network 'conv' needs a native game"):
        Task("CartPole-v1", 10_000, config={"network": "conv"})
