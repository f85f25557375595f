"""Env steps per second at 16, 64, 256 and 4096 envs: through ``step()``, native, reference.

Three ways to step, each measured in this run:

- ``step()``: :meth:`evozero.envs.MinAtarVecEnv.step`, the gymnasium API (new arrays
  each step, ``info["final_obs"]`` when an episode ends), as a user's loop calls it:
  the previous step's results are dropped when the next step returns;
- native: the core's own call into preallocated buffers (no final observations), the
  way a C++ caller drives it (``MinAtarVecEnv(...)._env.step``);
- reference: ``minatar.Environment.act()`` + ``state()``, one env in a Python loop
  (minatar has no batched step, and its cost per env-step does not depend on how many
  envs a loop holds).

Every round is at least 4096 env-steps with random actions and every observation
written; batches of fewer envs take several calls per round. Before timing, each batch
plays at least 200 steps into mid-game states (ramped, crowded). The figures are medians; the
ratios (``step()`` / native, ``step()`` / reference, native / reference) divide medians
measured in the same run.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from evozero.envs import GAMES, MinAtarVecEnv

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from minatar import Environment

SIZES = (16, 64, 256, 4096)
WORK = 4096  # env-steps per round, at least
TABLE = "env steps/s (median)"
PATHS = ("step()", "native", "reference")


def _row(game: str, num_envs: int) -> str:
    return f"{game}, {num_envs} envs"


def _batch(game: str, num_envs: int) -> tuple[MinAtarVecEnv, list[np.ndarray]]:
    """A reset env (evozero.envs' defaults) and the actions of one round, a row per call."""
    env = MinAtarVecEnv(game, num_envs, seed=0)
    env.reset()
    calls = max(1, WORK // num_envs)
    actions = np.random.default_rng(0).integers(0, env.single_action_space.n, (64, num_envs))
    return env, [actions[t % 64] for t in range(calls)]


def _time(benchmark, figures, game: str, num_envs: int, path: str, round_, calls: int) -> None:
    benchmark.group = f"env steps: {game}, {num_envs} envs"
    for _ in range(max(1, 200 // calls)):  # 200 steps into mid-game states
        round_()
    rounds = 200 if num_envs >= 256 else 50
    benchmark.pedantic(round_, rounds=rounds, iterations=1, warmup_rounds=3)
    figures(TABLE, _row(game, num_envs), path, calls * num_envs / benchmark.stats.stats.median)
    _ratios(figures, game)


@pytest.mark.parametrize("num_envs", SIZES)
@pytest.mark.parametrize("game", GAMES)
def test_step_api(benchmark, figures, game: str, num_envs: int) -> None:
    env, actions = _batch(game, num_envs)

    def round_() -> None:
        for a in actions:
            result = env.step(a)  # kept until the next step returns, as in a user's loop
        del result

    _time(benchmark, figures, game, num_envs, "step()", round_, len(actions))


@pytest.mark.parametrize("num_envs", SIZES)
@pytest.mark.parametrize("game", GAMES)
def test_native(benchmark, figures, game: str, num_envs: int) -> None:
    env, actions = _batch(game, num_envs)
    core = env._env  # the core's env, stepped into the caller's buffers
    obs = np.empty((num_envs, *env.single_observation_space.shape), dtype=bool)
    reward = np.empty(num_envs, dtype=np.float32)
    term, trunc = np.empty(num_envs, dtype=bool), np.empty(num_envs, dtype=bool)

    def round_() -> None:
        for a in actions:
            core.step(a, obs, reward, term, trunc)

    _time(benchmark, figures, game, num_envs, "native", round_, len(actions))


@pytest.mark.parametrize("game", GAMES)
def test_reference(benchmark, figures, game: str) -> None:
    benchmark.group = f"env steps: {game}, reference"
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
    per_second = WORK / benchmark.stats.stats.median
    for num_envs in SIZES:
        figures(TABLE, _row(game, num_envs), "reference", per_second)
    _ratios(figures, game)


def _ratios(figures, game: str) -> None:
    """The ratios of the game's rows whose figures are all measured."""
    from conftest import _FIGURES

    for num_envs in SIZES:
        row = _FIGURES.get(TABLE, {}).get(_row(game, num_envs), {})
        for a, b in [("step()", "native"), ("step()", "reference"), ("native", "reference")]:
            if a in row and b in row:
                figures(TABLE, _row(game, num_envs), f"{a} / {b}", row[a] / row[b])
