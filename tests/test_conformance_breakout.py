"""Native breakout equals minatar's, step for step."""

import numpy as np
import pytest
from lockstep import lockstep

pytestmark = pytest.mark.reference


def tracking_policy(minimal: bool):
    """Follow the ball with the paddle (mostly): long rallies, brick refills."""
    left, right = (1, 2) if minimal else (1, 3)

    def policy(obs: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        ball_x = obs[:, :, :, 1].any(axis=1).argmax(axis=1)
        paddle_x = obs[:, 9, :, 0].argmax(axis=1)
        a = np.where(ball_x < paddle_x, left, np.where(ball_x > paddle_x, right, 0))
        noise = rng.random(len(obs)) < 0.05
        return np.where(noise, rng.integers(0, 3, len(obs)), a)

    return policy


@pytest.mark.parametrize("sticky", [0.0, 0.1])
@pytest.mark.parametrize("minimal", [False, True])
@pytest.mark.parametrize("seed", [0, 2**32 - 1, 12345])
def test_random_policy(seed: int, minimal: bool, sticky: float) -> None:
    stats = lockstep("breakout", seed=seed, num_envs=8, steps=1500, sticky_action_prob=sticky,
                     minimal_action_set=minimal)
    assert stats.episodes > 100


@pytest.mark.parametrize("ramping", [True, False])
@pytest.mark.parametrize("minimal", [False, True])
def test_tracking_policy_reaches_brick_refills(minimal: bool, ramping: bool) -> None:
    stats = lockstep("breakout", seed=7, num_envs=16, steps=2000, difficulty_ramping=ramping,
                     minimal_action_set=minimal, policy=tracking_policy(minimal))
    # 30 bricks per wall: a return above 30 means a refill happened and was matched.
    assert stats.total_reward > 200
    assert stats.steps >= 32_000
