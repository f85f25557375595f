"""GPU env steps per second, with the CPU's native step measured in the same run.

GPU: ``step_on_device`` of evozero._cuda's envs, one kernel launch per step for the whole
batch, outputs left on the device (the actions go up each step). CPU: the native step of
``MinAtarVecEnv(...)._env`` into preallocated buffers, one core. Skips without a GPU
(``bash benchmarks/gpu/check.sh <wheels>`` runs it where there is one).
"""

from __future__ import annotations

import numpy as np
import pytest

from evozero.envs import GAMES, MinAtarVecEnv

TABLE = "GPU env steps/s (median)"
GPU_ENVS = 1 << 16  # 65,536 envs: enough threads to fill an H200
CPU_ENVS = 4096


@pytest.mark.parametrize("game", GAMES)
def test_gpu_env_steps(cuda, benchmark, figures, game: str) -> None:
    env = MinAtarVecEnv(game, GPU_ENVS, seed=0, device="cuda")
    env.reset()
    core = env._env
    acts = np.random.default_rng(0).integers(0, env.single_action_space.n, (16, GPU_ENVS))
    for t in range(50):  # into mid-game states
        core.step_on_device(acts[t % 16])
    calls = 10

    def round_() -> None:
        for t in range(calls):
            core.step_on_device(acts[t])

    benchmark.group = f"gpu env steps: {game}"
    benchmark.pedantic(round_, rounds=20, iterations=1, warmup_rounds=2)
    figures(TABLE, game, "GPU", calls * GPU_ENVS / benchmark.stats.stats.median)


@pytest.mark.parametrize("game", GAMES)
def test_cpu_env_steps(cuda, benchmark, figures, game: str) -> None:
    # the baseline of the GPU table: only measured where there is a GPU (the cuda fixture)
    env = MinAtarVecEnv(game, CPU_ENVS, seed=0)
    env.reset()
    core = env._env
    obs = np.empty((CPU_ENVS, *env.single_observation_space.shape), dtype=bool)
    reward = np.empty(CPU_ENVS, dtype=np.float32)
    term, trunc = np.empty(CPU_ENVS, dtype=bool), np.empty(CPU_ENVS, dtype=bool)
    acts = np.random.default_rng(0).integers(0, env.single_action_space.n, (16, CPU_ENVS))
    for t in range(50):
        core.step(acts[t % 16], obs, reward, term, trunc)

    def round_() -> None:
        for t in range(4):
            core.step(acts[t], obs, reward, term, trunc)

    benchmark.group = f"gpu env steps: {game}"
    benchmark.pedantic(round_, rounds=20, iterations=1, warmup_rounds=2)
    figures(TABLE, game, "CPU, one core", 4 * CPU_ENVS / benchmark.stats.stats.median)
