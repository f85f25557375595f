"""Aggregate training env-steps/s of evozero.train_many: 256 agents on the GPU (one
thread block each), with the host path (the same block code, one thread per agent, all
cores) measured in the same run as the baseline. Skips without a GPU
(``bash benchmarks/gpu/check.sh <wheels>`` runs it where there is one).
"""

from __future__ import annotations

import os

import evozero
from evozero.native.train import TrainConfig

TABLE = "train_many env steps/s (aggregate)"
AGENTS = 256
# PureJaxRL's MinAtar settings, two updates per agent (2 * 64 * 128 env steps).
CONFIG = TrainConfig(total_steps=2 * 64 * 128)


def test_gpu_train_many(cuda, benchmark, figures) -> None:
    seeds = list(range(AGENTS))

    def run() -> list[evozero.TrainResult]:
        return evozero.train_many("programs/ppo.evz", "breakout", CONFIG, seeds, device="cuda")

    benchmark.group = "train_many"
    results = benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    assert all(r.status == "ok" for r in results)
    steps = sum(r.steps for r in results)
    figures(TABLE, f"breakout, ppo, {AGENTS} agents", "GPU", steps / benchmark.stats.stats.median)


def test_cpu_train_many(cuda, benchmark, figures) -> None:
    cores = os.cpu_count() or 1
    seeds = list(range(cores))

    def run() -> list[evozero.TrainResult]:
        return evozero.train_many("programs/ppo.evz", "breakout", CONFIG, seeds, device="cpu")

    benchmark.group = "train_many"
    results = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    steps = sum(r.steps for r in results)
    figures(
        TABLE,
        f"breakout, ppo, {AGENTS} agents",
        f"CPU, {cores} cores",
        steps / benchmark.stats.stats.median,
    )
