"""Small searched runs for the refinement tests: made once, copied per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from evozero.search.config import SearchConfig
from evozero.search.driver import Search

#: A tiny, deterministic search's settings (serial backend, population 3).
TINY = dict(suite="tiny", backend="serial", workers=1, population=3, tournament=2)


def searched_run(base: Path, budget: int = 3) -> Path:
    """A tiny run in ``base/run``, searched (``budget``) but not reported; its normalizers
    cached under ``base/cache``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVOZERO_CACHE_DIR", str(base / "cache"))
        search = Search.create(base / "run", SearchConfig(budget=budget, **TINY))
        search.run(report=False)
        search.store.close()
    return base / "run"


def copy_run(run_dir: Path, to: Path) -> Path:
    """A copy of the run (each test writes its own)."""
    to.mkdir()
    for f in run_dir.iterdir():
        if f.is_file() and f.suffix != ".lock":
            (to / f.name).write_bytes(f.read_bytes())
    return to
