"""The search curve: best fitness so far vs trained candidates, from the default init.

Runs (or resumes) ``evozero evolve`` on the ``quick`` suite with the process backend on
every core, then reads the run store: evaluations per hour, the duplicate hit rate, the
best fitness after each trained candidate, and the final report. Results go to
``benchmarks/results/search_curve.json``; the README quotes them.

    python benchmarks/search_curve.py --budget 300 --out runs/bench-quick
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evozero.search.config import SearchConfig
from evozero.search.driver import Search
from evozero.search.store import RunStore
from evozero.status import FINISHED, TRAINED, Status

CHECKPOINTS = (5, 10, 20, 50, 100, 200, 300, 500, 1000)


def curve(store: RunStore) -> list[tuple[int, float | None]]:
    """``(trained, best fitness among candidates that passed the suite)`` per result."""
    best: float | None = None
    trained = 0
    out = []
    for c in store.finished():
        if c.status not in TRAINED:
            continue
        trained += 1
        if c.status == Status.OK and c.fitness is not None and (best is None or c.fitness > best):
            best = c.fitness
        out.append((trained, best))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-quick"))
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/search_curve.json"))
    args = ap.parse_args()
    if (args.out / "run.sqlite").exists():
        search = Search.resume(args.out)
    else:
        search = Search.create(args.out, SearchConfig(budget=args.budget, suite="quick"))
    status = search.run()
    store = search.store
    points = curve(store)
    proposals = store.count(*FINISHED)
    summary = {
        "budget": search.config.budget,
        "workers": search.config.workers,
        "evals_per_hour": status.evals_per_hour,
        "search_seconds": status.search_seconds,
        "duplicates": status.duplicates,
        "proposals": proposals,
        "duplicate_hit_rate": status.duplicates / max(proposals, 1),
        "culled": status.culled,
        "failed": status.failed,
        "curve": {n: b for n, b in points if n in CHECKPOINTS or n == len(points)},
        "report": store.meta().get("report"),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "report"}, indent=2))


if __name__ == "__main__":
    main()
