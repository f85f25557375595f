"""Native freeway equals minatar's, step for step, across crossings and the time limit."""

import numpy as np
import pytest
from lockstep import lockstep

pytestmark = pytest.mark.reference

SEEDS = [0, 2**32 - 1]
EPISODE_STEPS = 2501  # the reference's timer starts at 2500 and ends the game below 0


def mostly_up_policy(minimal: bool):
    """Press up 90% of the time: the chicken crosses often and is also hit by cars."""
    up, num_actions = (1, 3) if minimal else (2, 6)

    def policy(obs: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        n = len(obs)
        return np.where(rng.random(n) < 0.9, up, rng.integers(0, num_actions, n))

    return policy


class CrossingProbe:
    """Counts, on the reference envs, crossings and episodes that ran to the time limit.

    A crossing re-draws every car's speed, so one shows as new speeds without
    a reset; a reset shows as the time-limit timer jumping back up.
    """

    def __init__(self) -> None:
        self.crossings = 0
        self.full_episodes = 0
        self._last: dict[int, tuple[int, list[int]]] = {}

    def __call__(self, refs: list, t: int) -> None:
        for i, ref in enumerate(refs):
            game = ref.env
            timer, speeds = game.terminate_timer, [int(car[3]) for car in game.cars]
            if i in self._last:
                last_timer, last_speeds = self._last[i]
                if timer > last_timer:
                    self.full_episodes += last_timer == 0
                elif speeds != last_speeds:
                    self.crossings += 1
            self._last[i] = timer, speeds


@pytest.mark.parametrize("ramping", [True, False])
@pytest.mark.parametrize("sticky", [0.0, 0.1])
@pytest.mark.parametrize("minimal", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_random_policy(seed: int, minimal: bool, sticky: float, ramping: bool) -> None:
    stats = lockstep(
        "freeway",
        seed=seed,
        num_envs=8,
        steps=300,
        sticky_action_prob=sticky,
        difficulty_ramping=ramping,
        minimal_action_set=minimal,
    )
    assert stats.episodes == 0  # every episode lasts 2501 steps


@pytest.mark.parametrize("ramping", [True, False])
@pytest.mark.parametrize("sticky", [0.0, 0.1])
@pytest.mark.parametrize("minimal", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_mostly_up_policy_crosses_until_time_limit(
    seed: int, minimal: bool, sticky: float, ramping: bool
) -> None:
    probe = CrossingProbe()
    stats = lockstep(
        "freeway",
        seed=seed,
        num_envs=2,
        steps=EPISODE_STEPS + 100,
        sticky_action_prob=sticky,
        difficulty_ramping=ramping,
        minimal_action_set=minimal,
        policy=mostly_up_policy(minimal),
        probe=probe,
    )
    assert stats.episodes == probe.full_episodes == 2
    assert stats.longest_episode == EPISODE_STEPS
    # every reward is a crossing; one on the very last step of an episode hides in its reset
    assert stats.total_reward - 2 <= probe.crossings <= stats.total_reward
    assert probe.crossings > 30
