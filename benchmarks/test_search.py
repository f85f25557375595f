"""Search throughput on the default suite: candidate evaluations per hour.

One search of ``EVOZERO_BENCH_SEARCH_BUDGET`` (default 30) trained candidates from the
default init (the reference programs) on the ``quick`` suite with its hurdle, run twice
with the same seed: with the ``process`` backend on every core, and with the ``serial``
backend (one core) as the baseline. Figures: evaluations per hour (trained candidates,
duplicates excluded, over the search's wall time; normalizers are measured beforehand and
the final report is not timed), the parallel speedup, the duplicate hit rate (proposals
settled from the store without training) and the fraction culled by the hurdle. The
issue's goal is >= 1,000 evaluations per hour on 2 cores.

Run with: ``pytest benchmarks/test_search.py --benchmark-enable -s``.
"""

from __future__ import annotations

import os

import pytest

from evozero.search.config import SearchConfig
from evozero.search.driver import Search
from evozero.search.tasks import SUITES
from evozero.status import FINISHED

BUDGET = int(os.environ.get("EVOZERO_BENCH_SEARCH_BUDGET", "30"))


def search_figures(tmp_path, backend: str, workers: int) -> dict[str, float]:
    config = SearchConfig(budget=BUDGET, suite="quick", backend=backend, workers=workers, seed=0)
    search = Search.create(tmp_path / backend, config)
    suite = SUITES["quick"]
    status = search.run(report=False)
    store = search.store
    proposals = store.count(*FINISHED)
    return {
        "evals_per_hour": status.evals_per_hour,
        "duplicate_hit_rate": status.duplicates / max(proposals, 1),
        "culled_fraction": status.culled / max(status.trained, 1),
        "failed_fraction": status.failed / max(status.trained, 1),
        "seconds": status.search_seconds,
        "tasks": len(suite.tasks),
    }


@pytest.mark.benchmark(group="search")
def test_evaluations_per_hour(benchmark, figures, tmp_path):
    cores = os.cpu_count() or 1
    serial = search_figures(tmp_path, "serial", 1)
    parallel = benchmark.pedantic(
        search_figures, args=(tmp_path, "process", cores), rounds=1, iterations=1
    )
    table = f"search, quick suite, budget {BUDGET}"
    for name, figs in (("serial (1 core)", serial), (f"process ({cores} cores)", parallel)):
        for key, value in figs.items():
            figures(table, name, key, value)
    figures(
        table, "ratios", "parallel speedup", parallel["evals_per_hour"] / serial["evals_per_hour"]
    )
    figures(table, "ratios", "evals/h vs goal 1000", parallel["evals_per_hour"] / 1000)
