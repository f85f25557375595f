"""What a resume's check of the run store costs on a long run.

Before it writes anything, ``evozero evolve --resume`` checks the whole store
(``PRAGMA integrity_check`` and decoding every row: :meth:`RunStore.open` with
``writer="resume"``) and parses the stored programs it will read (the population, the queued
candidates, the report's subjects). The store here is a run of
``EVOZERO_BENCH_STORE_CANDIDATES`` (default 10,000) candidates as the ``quick`` suite makes
them: mutants of ppo.evz, each with a hurdle run and two task runs of 20-bin learning
curves. The baseline, measured in the same run, is what a resume read before the check:
opening the store and reading the finished and queued candidates (the population is
rebuilt from them). Figures: seconds of each, and their ratio.

Run with: ``pytest benchmarks/test_store.py --benchmark-enable -s``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from evozero.program import dsl
from evozero.program.mutate import mutate
from evozero.search.fitness import reference_program_text
from evozero.search.protocol import CandidateResult, Phase, RunRecord
from evozero.search.store import RunStore
from evozero.status import Status

CANDIDATES = int(os.environ.get("EVOZERO_BENCH_STORE_CANDIDATES", "10000"))
POPULATION = 32  # SearchConfig's default


def build_store(path) -> RunStore:
    rng = np.random.default_rng(0)
    ppo = dsl.parse(reference_program_text("ppo"))
    texts = [dsl.to_text(mutate(ppo, rng)[0]) for _ in range(200)]
    store = RunStore.create(path, {"kind": "evolve"})
    curve = tuple(float(x) for x in rng.normal(size=20))
    for i in range(CANDIDATES):
        store.add_candidate(
            id=i,
            origin="mutation",
            parent=max(i - 1, 0) if i else None,
            mutation="insert",
            text=texts[i % len(texts)],
            key=f"k{i}",
            fingerprint=f"f{i}",
            complexity=30 + i % 20,
        )
        runs = [
            (phase, RunRecord(task, 0, Status.OK, "", 1.5, 1.2, 500_000, 60.0, curve))
            for phase, task in (
                (Phase.HURDLE, "breakout@200k"),
                (Phase.SEARCH, "breakout@500k"),
                (Phase.SEARCH, "space_invaders@500k"),
            )
        ]
        store.finish_candidate(
            i,
            CandidateResult(
                Status.OK,
                float(rng.random()),
                0.5,
                {"breakout@500k": 0.4, "space_invaders@500k": 0.6},
                "",
                runs,
                120.0,
            ),
        )
    return store


def seconds(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@pytest.mark.benchmark(group="store")
def test_resume_check_cost(benchmark, figures, tmp_path):
    build_store(tmp_path / "run").close()
    run = tmp_path / "run"

    def baseline() -> None:
        with RunStore.open(run) as store:
            store.finished()
            store.unfinished()

    def check() -> None:
        with RunStore.open(run, writer="resume") as store:
            for c in store.finished()[-POPULATION:]:
                store.program(c)

    def integrity() -> None:
        with RunStore.open(run) as store:
            store.conn.execute("PRAGMA integrity_check(1)").fetchall()

    benchmark.pedantic(check, rounds=1, iterations=1)
    size = os.path.getsize(run / "run.sqlite") / 1e6
    table = f"resume check, {CANDIDATES} candidates, {size:.0f} MB store"
    base, checked = seconds(baseline), seconds(check)
    figures(table, "baseline: open, read the candidates", "seconds", base)
    figures(table, "check: integrity, every row, population programs", "seconds", checked)
    figures(table, "of which PRAGMA integrity_check", "seconds", seconds(integrity))
    figures(table, "ratios", "check / baseline", checked / base)
