"""The final check of a refinement: refined vs original, native trainer, fresh seeds.

Both rules train on the same fresh seeds (the same seed gives both the same envs and
initial networks); the per-seed differences of final return (refined - original) get a
95% bootstrap interval of their mean (:func:`evozero.search.report.mean_intervals`). The
refined constants are kept only when the whole interval lies above zero.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from evozero.native.train import TrainConfig, train
from evozero.program.model import Program
from evozero.search.report import mean_intervals
from evozero.status import Status

__all__ = ["VALIDATION_SEED0", "Validation", "validate"]

#: Validation seeds start here: far from the seeds refinement trains on (0, 1, ...).
VALIDATION_SEED0 = 1_000_000


@dataclass(frozen=True)
class Validation:
    """Per-seed final returns of both rules and the paired interval."""

    seeds: tuple[int, ...]
    original: tuple[float, ...]
    refined: tuple[float, ...]
    lo: float
    hi: float
    env: str = ""  # where both trained, and each run's env steps
    steps: int = 0

    @property
    def mean_difference(self) -> float:
        d = np.subtract(self.refined, self.original)
        return float(np.nanmean(d)) if np.isfinite(d).any() else math.nan

    @property
    def kept(self) -> bool:
        """Refined is better: the whole interval of the paired difference is above 0."""
        return bool(self.lo > 0)

    @property
    def verdict(self) -> str:
        """One line: which way it went."""
        ci = (
            f"paired difference {self.mean_difference:+.3g}, "
            f"95% CI [{self.lo:+.3g}, {self.hi:+.3g}]"
        )
        if self.kept:
            return f"refined constants kept: better on fresh seeds ({ci})"
        if self.hi < 0:
            return f"refined constants dropped: worse on fresh seeds ({ci})"
        return f"refined constants dropped: no clear gain on fresh seeds ({ci})"


def _final(
    program: Program, env: str, config: TrainConfig, seed: int, stop: threading.Event
) -> float:
    r = train(program, env, config, seed=seed, stop=stop)
    return r.final_return if r.status is Status.OK else math.nan


def validate(
    original: Program,
    refined: Program,
    env: str,
    config: TrainConfig,
    seeds: int,
    workers: int = 2,
) -> Validation:
    """Train both on ``seeds`` fresh seeds and compare (see the module doc).

    Ctrl-C (``KeyboardInterrupt`` in the calling thread) cancels the trainings in flight,
    which stop within one update, and is raised again."""
    ids = tuple(range(VALIDATION_SEED0, VALIDATION_SEED0 + seeds))
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # train releases the GIL
        try:
            orig = list(pool.map(lambda s: _final(original, env, config, s, stop), ids))
            ref = list(pool.map(lambda s: _final(refined, env, config, s, stop), ids))
        except BaseException:
            # Else leaving the pool waits for the trainings in flight to end (hours, for
            # a long lifetime); pool.map has already cancelled those not started.
            stop.set()
            raise
    diffs = [b - a for a, b in zip(orig, ref, strict=True) if np.isfinite(a) and np.isfinite(b)]
    interval = mean_intervals([diffs])[0]  # None when no pair of runs finished
    lo, hi = (interval["lo"], interval["hi"]) if interval else (math.nan, math.nan)
    return Validation(ids, tuple(orig), tuple(ref), lo, hi, env, config.run_steps)
