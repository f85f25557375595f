"""Native breakout equals minatar's, step for step."""

import numpy as np
import pytest
from lockstep import lockstep

pytestmark = pytest.mark.reference


def _landing(x: int, y: int, dx: int, dy: int, bricks: np.ndarray, strike: bool):
    """Play the ball forward (walls, ceiling, bricks) until it is about to reach row 9.

    Returns the steps until then, the ball's column in row 8 (a paddle there
    sends it straight back) and the column it is heading for (a paddle there
    sends it back the way it came).
    """
    bricks = bricks.copy()
    for k in range(1, 200):
        nx, ny = x + dx, y + dy
        if not 0 <= nx <= 9:
            nx, dx = min(max(nx, 0), 9), -dx
        hit = False
        if ny < 0:
            ny, dy = 0, -dy
        elif bricks[ny, nx]:
            hit = True
            if not strike:  # the reference breaks no brick right after a strike
                bricks[ny, nx] = False
                ny, dy = y, -dy
        elif ny == 9:
            return k, x, nx
        strike = hit
        x, y = nx, ny
    return 200, x, x


class LandingPolicy:
    """Meet the ball where it comes down; lose it on purpose once a wall has been refilled.

    The ball's direction is read from its trail (the previous cell). Which of
    the two paddle cells that return the ball is aimed for changes at random,
    so the ball reaches every brick. Losing the ball after 40 broken bricks
    ends episodes whose return shows the refill.
    """

    GIVE_UP_AT = 40

    def __init__(self, minimal: bool) -> None:
        self.left, self.right = (1, 2) if minimal else (1, 3)
        self.straight: np.ndarray | None = None

    def __call__(self, obs: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        n = len(obs)
        if self.straight is None:
            self.straight = np.zeros(n, dtype=bool)
            self.bricks = np.full(n, 30)
            self.broken = np.zeros(n, dtype=np.int64)
        actions = np.zeros(n, dtype=np.int64)
        for i, o in enumerate(obs):
            (by,), (bx,) = np.nonzero(o[:, :, 1])
            (ty,), (tx,) = np.nonzero(o[:, :, 2])
            by, bx, ty, tx = int(by), int(bx), int(ty), int(tx)
            pos = int(o[9, :, 0].argmax())
            count = int(o[:, :, 3].sum())
            if count == 30 and by == 3 and (ty, tx) == (by, bx):  # the reset state
                self.broken[i] = 0
            elif count < self.bricks[i]:
                self.broken[i] += self.bricks[i] - count
            self.bricks[i] = count
            # a ball that did not move along an axis was turned back on it
            dx = np.sign(bx - tx) if bx != tx else (1 if bx == 0 else -1)
            dy = np.sign(by - ty) if by != ty else (-1 if by == 8 else 1)
            strike = by == ty and 0 < by < 8
            if dy < 0 and rng.random() < 0.2:
                self.straight[i] = rng.random() < 0.5
            k, straight_x, back_x = _landing(bx, by, int(dx), int(dy), o[:, :, 3], strike)
            target = straight_x if self.straight[i] else back_x
            if abs(target - pos) > k:
                target = back_x if self.straight[i] else straight_x
            if self.broken[i] >= self.GIVE_UP_AT:
                target = 0 if pos <= min(straight_x, back_x) else 9
            actions[i] = self.left if target < pos else self.right if target > pos else 0
        return actions


@pytest.mark.parametrize("sticky", [0.0, 0.1])
@pytest.mark.parametrize("minimal", [False, True])
@pytest.mark.parametrize("seed", [0, 2**32 - 1, 12345])
def test_random_policy(seed: int, minimal: bool, sticky: float) -> None:
    stats = lockstep(
        "breakout",
        seed=seed,
        num_envs=8,
        steps=1500,
        sticky_action_prob=sticky,
        minimal_action_set=minimal,
    )
    assert stats.episodes > 100


@pytest.mark.parametrize("sticky", [0.0, 0.1])
@pytest.mark.parametrize("ramping", [True, False])
@pytest.mark.parametrize("minimal", [False, True])
def test_tracking_policy_reaches_brick_refills(minimal: bool, ramping: bool, sticky: float) -> None:
    stats = lockstep(
        "breakout",
        seed=7,
        num_envs=8,
        steps=1500,
        sticky_action_prob=sticky,
        difficulty_ramping=ramping,
        minimal_action_set=minimal,
        policy=LandingPolicy(minimal),
    )
    # 30 bricks per wall: a return above 30 means a refill happened and was matched.
    assert max(stats.episode_returns) > 30
    assert stats.total_reward > 400
    assert stats.steps >= 12_000
