"""Native asterix equals minatar's, step for step, up to the fully ramped game."""

import numpy as np
import pytest
from lockstep import lockstep

pytestmark = pytest.mark.reference

SEEDS = [0, 2**32 - 1]
# The ramp steps up every 102 steps, 9 times, until enemies spawn and move every step.
MAX_RAMP_LEVEL = 9
RAMP_STEPS = 9 * 102

# (dx, dy) of actions n, l, u, r, d: indices 0..4 of both the full and the minimal set
MOVES = [(0, 0), (-1, 0), (0, -1), (1, 0), (0, 1)]
_Y, _X = np.divmod(np.arange(100), 10)
# STEP[a, c]: the cell (flat y*10 + x) action a leads to from cell c; the player keeps to rows 1..8
STEP = np.stack([np.clip(_Y + dy, 1, 8) * 10 + np.clip(_X + dx, 0, 9) for dx, dy in MOVES])
CENTRE = -np.abs(_X - 4.5) - 0.5 * np.abs(_Y - 4.5)
# where an enemy can be in the step it spawns (at an edge, then maybe moved one cell)
SPAWN_COLUMNS = np.isin(np.arange(10), [0, 1, 8, 9])


def _entities(obs: np.ndarray):
    """Per env and row: whether an entity is there, its x, its direction, whether it is gold.

    The reference keeps at most one entity per row (its slot), and its trail is
    the cell behind it; an entity without a trail has just entered at an edge.
    """
    ent = obs[..., 1] | obs[..., 3]
    has = ent.any(axis=2)
    x = ent.argmax(axis=2)
    trail = obs[..., 2]
    d = np.where(trail.any(axis=2), np.sign(x - trail.argmax(axis=2)), np.where(x == 0, 1, -1))
    gold = np.take_along_axis(obs[..., 3], x[..., None], axis=2)[..., 0] & has
    return has, x, d, gold


def _grid(has: np.ndarray, x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(n, 100) mask of the cells (row, x[row]) of the kept entities; x may be off the board."""
    cells = (has & keep)[:, :, None] & (x[:, :, None] == np.arange(10))
    return cells.reshape(len(x), 100)


def dodging_policy(obs: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
    """Step where no enemy is or is about to be, away from the edges where enemies spawn.

    Assumes enemies move every step (the fully ramped game), which is safe at
    any ramp level; looks one step further for room to move and for a safe
    repeat of this action (the sticky action of the next step).
    """
    n = len(obs)
    has, x0, d, gold = _entities(obs)
    enemy = has & ~gold
    danger_now = _grid(has, x0, enemy) | _grid(has, x0 + d, enemy)
    danger_next = danger_now | _grid(has, x0 + 2 * d, enemy)
    gold_now = _grid(has, x0, gold) | _grid(has, x0 + d, gold)
    spawn = (~has[:, :, None] & SPAWN_COLUMNS).reshape(n, 100)  # rows with a free slot
    safe_next = ~danger_next & ~spawn

    player = obs[..., 0].reshape(n, 100).argmax(axis=1)
    env = np.arange(n)[:, None]
    cell = STEP[:, player].T  # (n, a): where each action leads
    after = safe_next[env[:, :, None], STEP[:, cell].transpose(1, 2, 0)]  # (n, a, next action)
    room = after.sum(axis=2)
    repeat = after[:, np.arange(len(MOVES)), np.arange(len(MOVES))]
    scores = (
        -1000 * danger_now[env, cell]
        - 50 * spawn[env, cell]
        + 10 * room
        + 30 * repeat
        + 20 * gold_now[env, cell]
        + CENTRE[cell]
    )
    scores += 0.1 * rng.random(scores.shape)  # break ties at random
    return scores.argmax(axis=1)


class RampProbe:
    """The deepest difficulty the reference envs reached."""

    def __init__(self) -> None:
        self.max_level = 0
        self.min_spawn_speed = self.min_move_speed = 10**9

    def __call__(self, refs: list, t: int) -> None:
        for ref in refs:
            game = ref.env
            self.max_level = max(self.max_level, game.difficulty_ramp())
            self.min_spawn_speed = min(self.min_spawn_speed, game.spawn_speed)
            self.min_move_speed = min(self.min_move_speed, game.move_speed)


@pytest.mark.parametrize("ramping", [True, False])
@pytest.mark.parametrize("sticky", [0.0, 0.1])
@pytest.mark.parametrize("minimal", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_random_policy(seed: int, minimal: bool, sticky: float, ramping: bool) -> None:
    stats = lockstep(
        "asterix",
        seed=seed,
        num_envs=8,
        steps=300,
        sticky_action_prob=sticky,
        difficulty_ramping=ramping,
        minimal_action_set=minimal,
    )
    assert stats.episodes > 20
    assert stats.total_reward > 0


@pytest.mark.parametrize("ramping", [True, False])
@pytest.mark.parametrize("sticky", [0.0, 0.1])
@pytest.mark.parametrize("minimal", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_dodging_policy_reaches_full_ramp(
    seed: int, minimal: bool, sticky: float, ramping: bool
) -> None:
    probe = RampProbe()
    stats = lockstep(
        "asterix",
        seed=seed,
        num_envs=6,
        steps=1000,
        sticky_action_prob=sticky,
        difficulty_ramping=ramping,
        minimal_action_set=minimal,
        policy=dodging_policy,
        probe=probe,
    )
    assert stats.longest_episode > RAMP_STEPS
    assert stats.total_reward > 100
    if ramping:
        assert probe.max_level == MAX_RAMP_LEVEL
        assert probe.min_spawn_speed == probe.min_move_speed == 1
    else:
        assert probe.max_level == 0
        assert (probe.min_spawn_speed, probe.min_move_speed) == (10, 5)
