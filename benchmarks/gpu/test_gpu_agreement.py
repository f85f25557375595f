"""The GPU trainer learns as the CPU trainer does (issue 16: "ppo.evz on breakout at 1M
steps: GPU seeds within the spread of CPU seeds").

A GPU run is not bit-exact with its CPU run (CUDA's exp/log may differ from glibc's by an
ulp, and training amplifies that), so the check is statistical. It trains ppo.evz on
breakout for 1M env steps (the default TrainConfig) with seeds 0-7 on the GPU
(``train_many(device="cuda")``) and with seeds 0-7 on the CPU (``evozero.train``, the
eight runs on threads; train_many's host path equals it bit for bit but is a slow
reference, docs/CUDA.md), and asserts:

* every run ends ``ok``;
* **the mean final return of the GPU seeds lies within [min, max] of the CPU seeds' final
  returns** (the spread of the CPU seeds; ``final_return``: the mean return of the
  episodes ended in the last 10% of the run).

Skips without a GPU (``bash benchmarks/gpu/check.sh <wheels>`` runs it where there is
one and prints its line).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import evozero
from evozero.native.train import TrainConfig

TABLE = "ppo.evz on breakout at 1M steps: final return over 8 seeds"
SEEDS = list(range(8))
CONFIG = TrainConfig(total_steps=1_000_000)


def within_spread(gpu: list[float], cpu: list[float]) -> bool:
    """The check's criterion: the GPU seeds' mean lies in [min, max] of the CPU seeds."""
    return min(cpu) <= float(np.mean(gpu)) <= max(cpu)


def test_the_criterion() -> None:  # runs everywhere: the criterion itself
    assert within_spread([2.0, 4.0], [1.0, 3.5])
    assert not within_spread([5.0, 6.0], [1.0, 3.5])
    assert not within_spread([0.1, 0.2], [1.0, 3.5])


def test_gpu_seeds_are_within_the_spread_of_cpu_seeds(cuda, figures) -> None:
    gpu = evozero.train_many("programs/ppo.evz", "breakout", CONFIG, SEEDS, device="cuda")
    with ThreadPoolExecutor(min(len(SEEDS), os.cpu_count() or 1)) as pool:  # train() frees the GIL
        cpu = list(
            pool.map(lambda s: evozero.train("programs/ppo.evz", "breakout", CONFIG, s), SEEDS)
        )
    for device, results in (("GPU", gpu), ("CPU", cpu)):
        assert all(r.status == "ok" for r in results), [(r.status, r.message) for r in results]
        returns = [r.final_return for r in results]
        assert all(np.isfinite(returns)), returns
        row = f"{device}, seeds 0-7"
        for column, value in (
            ("mean", np.mean(returns)),
            ("min", min(returns)),
            ("max", max(returns)),
        ):
            figures(TABLE, row, column, float(value))
    gpu_returns = [r.final_return for r in gpu]
    cpu_returns = [r.final_return for r in cpu]
    figures(
        TABLE,
        "GPU mean within the CPU spread",
        "1 = yes",
        float(within_spread(gpu_returns, cpu_returns)),
    )
    assert within_spread(gpu_returns, cpu_returns), (gpu_returns, cpu_returns)
