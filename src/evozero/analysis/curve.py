"""The search curve: every trained candidate's fitness, per rung, in the order results came.

One source for the report's figure (:mod:`~evozero.analysis.html_report`) and the
TensorBoard log (:mod:`~evozero.analysis.tensorboard`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evozero.status import TRAINED

if TYPE_CHECKING:
    from evozero.search.store import RunStore


def search_points(store: RunStore) -> list[tuple[int, float, int | None]]:
    """``(n, fitness, rung)`` for each trained candidate (the ``n``-th result to come;
    duplicates are not trained and are skipped) and each rung it has a fitness at: a
    promoted candidate counts on every rung it reached. ``rung`` is None when no candidate
    has results at more than one rung (a search without promotions)."""
    ladders = store.ladders()
    multi = any(len(results) > 1 for results in ladders.values())
    points: list[tuple[int, float, int | None]] = []
    n = 0
    for c in store.finished():
        if c.status not in TRAINED:
            continue
        n += 1
        if multi:
            results = sorted(ladders.get(c.id, {}).items())
            points += [(n, f, rung) for rung, (_, f) in results if f is not None]
        elif c.fitness is not None:
            points.append((n, c.fitness, None))
    return points
