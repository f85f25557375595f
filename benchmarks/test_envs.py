"""Env steps per second: native (one core, observations written) vs the reference.

Both sides do the same unit of work per round, 4096 env-steps with random
actions and the observation of every step materialized; the ratio of medians
is the speed-up. The native side steps 4096 envs in one call (the way the
trainer drives it); the reference steps one ``minatar.Environment`` with
``act()`` + ``state()``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from evozero.envs import GAMES, MinAtarVecEnv

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from minatar import Environment

WORK = 4096  # env-steps per round, both sides


@pytest.mark.parametrize("game", GAMES)
def test_native_steps(benchmark, figures, game: str) -> None:
    benchmark.group = f"env steps: {game}"
    env = MinAtarVecEnv(game, WORK)._env  # the core's env, with evozero.envs' defaults
    size = WORK * 100 * env.channels
    obs = np.empty(size, dtype=bool)
    reward = np.empty(WORK, dtype=np.float32)
    term, trunc = np.empty(WORK, dtype=bool), np.empty(WORK, dtype=bool)
    env.reset(np.arange(WORK, dtype=np.uint32), obs)
    actions = np.random.default_rng(0).integers(0, 6, size=(64, WORK))
    state = {"t": 0}

    def step() -> None:
        env.step(actions[state["t"] % 64], obs, reward, term, trunc)
        state["t"] += 1

    for _ in range(200):  # run into mid-game states (ramped, crowded) before timing
        step()
    benchmark.pedantic(step, rounds=200, iterations=1, warmup_rounds=5)
    figures("env steps/s (median)", game, "native", WORK / benchmark.stats.stats.median)
    _ratio(figures, game)


@pytest.mark.parametrize("game", GAMES)
def test_reference_steps(benchmark, figures, game: str) -> None:
    benchmark.group = f"env steps: {game}"
    env = Environment(game)
    env.seed(0)
    env.reset()
    actions = np.random.default_rng(0).integers(0, 6, size=WORK).tolist()

    def steps() -> None:
        for a in actions:
            _, done = env.act(a)
            env.state()
            if done:
                env.reset()

    benchmark.pedantic(steps, rounds=5, iterations=1, warmup_rounds=1)
    figures("env steps/s (median)", game, "reference", WORK / benchmark.stats.stats.median)
    _ratio(figures, game)


def _ratio(figures, game: str) -> None:
    from conftest import _FIGURES

    row = _FIGURES["env steps/s (median)"][game]
    if "native" in row and "reference" in row:
        figures("env steps/s (median)", game, "ratio", row["native"] / row["reference"])
