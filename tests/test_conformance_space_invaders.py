"""Native space invaders equals minatar's, step for step.

Two scripted policies drive the games into their deep states: a hunter that
aims where the swarm will be and dodges, clearing wave after wave (the ramp
included), and a carver that waits at the right edge and shoots only the
bottom-right aliens, so the swarm reaches the bottom row without touching the
cannon and rolls on: its bottom row wraps into row 0 in the terminal
observation. A probe on the reference envs records what happened.
"""

from collections import Counter

import numpy as np
import pytest
from lockstep import lockstep

pytestmark = pytest.mark.reference

FULL = {"noop": 0, "left": 1, "right": 3, "fire": 5}
MINIMAL = {"noop": 0, "left": 1, "right": 2, "fire": 3}  # indices into [n, l, r, f]
WAVE = np.zeros((10, 10), dtype=bool)
WAVE[0:4, 2:8] = True


def danger_columns(o: np.ndarray) -> np.ndarray:
    """Columns where the cannon may be hit within two steps."""
    aliens = o[:, :, 1]
    d = -1 if o[:, :, 2].any() else 1
    return o[7, :, 5] | o[8, :, 5] | aliens[9] | np.roll(aliens[9], d)


def dodge(o: np.ndarray, pos: int, danger: np.ndarray, a: dict) -> int | None:
    if danger[pos]:
        for c in (pos - 1, pos + 1):
            if 0 <= c <= 9 and not danger[c]:
                return a["left"] if c < pos else a["right"]
    return None


class Hunter:
    """Fires where an alien will be when the bullet gets there.

    It learns the swarm's move timing from the observations (the move period
    is min(aliens left, move interval)) and plans, for the lowest alien of
    each column, the earliest shot it can still reach.
    """

    def __init__(self, num_envs: int, actions: dict, noise: float = 0.02):
        self.a, self.noise = actions, noise
        self.prev = [None] * num_envs
        self.last_move = [0] * num_envs
        self.period = [12] * num_envs
        self.interval = [12] * num_envs
        self.fire_ok = [0] * num_envs

    def __call__(self, obs: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        acts = np.array([self.act(i, o, t) for i, o in enumerate(obs)], dtype=np.int64)
        noisy = rng.random(len(obs)) < self.noise
        return np.where(noisy, rng.choice(list(self.a.values()), len(obs)), acts)

    def track(self, i: int, aliens: np.ndarray, t: int) -> None:
        """Notes a swarm move in step t - 1 (cells that were empty are now taken)."""
        prev = self.prev[i]
        self.prev[i] = aliens
        refill = (aliens == WAVE).all()  # a new wave or episode: the timer runs on
        if prev is None or refill or not (aliens & ~prev).any():
            return
        gap = t - 1 - self.last_move[i]
        if 1 <= gap < self.period[i]:
            self.interval[i] = gap  # the ramp shortened it
        self.last_move[i] = t - 1
        self.period[i] = min(int(prev.sum()), self.interval[i])

    def act(self, i: int, o: np.ndarray, t: int) -> int:
        a = self.a
        aliens = o[:, :, 1]
        self.track(i, aliens, t)
        pos = int(np.flatnonzero(o[9, :, 0])[0])
        if o[8, pos, 4]:
            self.fire_ok[i] = t + 4  # fired in step t - 1; cool-down 5
        danger = danger_columns(o)
        escape = dodge(o, pos, danger, a)
        if escape is not None:
            return escape
        cols = np.flatnonzero(aliens.any(axis=0))
        # The swarm's offset after each step u >= t, moving every m steps.
        lo, hi = int(cols[0]), int(cols[-1])
        d = -1 if o[:, :, 2].any() else 1
        m = min(int(aliens.sum()), self.interval[i])
        next_move = self.last_move[i] + self.period[i]
        while next_move < t:
            next_move += m
        dx = dy = 0
        path = []
        for u in range(t, t + 20):
            if u == next_move:
                if (lo + dx == 0 and d < 0) or (hi + dx == 9 and d > 0):
                    d, dy = -d, dy + 1
                else:
                    dx += d
                next_move += m
            path.append((u, dx, dy))
        # A bullet fired in step f is in row 8 - j after step f + j.
        best = None
        for c0 in cols:
            y0 = int(np.flatnonzero(aliens[:, c0]).max())
            for u, ddx, ddy in path:
                y, c = y0 + ddy, int(c0) + ddx
                f = u - 8 + y
                if y <= 8 and f >= t + abs(c - pos) and f >= self.fire_ok[i]:
                    if best is None or f < best[0]:
                        best = (f, c)
                    break
        if best is None:
            return a["noop"]
        f, c = best
        if c == pos:
            return a["fire"] if f == t else a["noop"]
        step = a["left"] if c < pos else a["right"]
        return a["noop"] if danger[pos - 1 if c < pos else pos + 1] else step


def carver(actions: dict, noise: float = 0.02):
    """Waits at the right edge and shoots only aliens of the swarm's bottom row.

    The bottom row then ends left of the swarm's right edge, so the swarm
    reaches row 9 at the right edge without touching the cannon, sweeps left
    and, at the left edge, rolls its bottom row over into row 0.
    """
    a = actions

    def act(o: np.ndarray) -> int:
        pos = int(np.flatnonzero(o[9, :, 0])[0])
        danger = danger_columns(o)
        escape = dodge(o, pos, danger, a)
        if escape is not None:
            return escape
        aliens = o[:, :, 1]
        bottom = int(np.flatnonzero(aliens.any(axis=1)).max())
        if pos >= 8 and bottom < 9 and aliens[bottom, pos]:
            return a["fire"]
        return a["right"] if pos < 9 and not danger[pos + 1] else a["noop"]

    def policy(obs: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        acts = np.array([act(o) for o in obs], dtype=np.int64)
        noisy = rng.random(len(obs)) < noise
        return np.where(noisy, rng.choice(list(a.values()), len(obs)), acts)

    return policy


class InvadersProbe:
    """Counts new waves, the ramp and the ways episodes end, on the reference envs.

    It hooks each reference's ``reset`` to see the terminal state before the
    harness resets it.
    """

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        self.prev: dict[int, tuple[int, int]] = {}

    def _hook(self, ref) -> None:
        reset = ref.reset

        def reset_after_end():
            g = ref.env
            aliens = g.alien_map.astype(bool)
            if aliens[0].any() and aliens[5:].any():  # a swarm spans 4 rows unless wrapped
                self.events["wrapped"] += 1
            elif g.e_bullet_map[9, g.pos]:
                self.events["shot"] += 1
            elif aliens[9, g.pos]:
                self.events["alien_on_cannon"] += 1
            ref.episode = getattr(ref, "episode", 0) + 1
            return reset()

        ref.reset = reset_after_end

    def __call__(self, refs: list, t: int) -> None:
        for i, ref in enumerate(refs):
            if t == 0:
                self._hook(ref)
            g = ref.env
            episode, count = getattr(ref, "episode", 0), int(np.count_nonzero(g.alien_map))
            if i in self.prev and self.prev[i][0] == episode and count > self.prev[i][1]:
                self.events["new_wave"] += 1
            self.events["max_ramp_index"] = max(self.events["max_ramp_index"], g.ramp_index)
            self.prev[i] = (episode, count)


@pytest.mark.parametrize("sticky", [0.0, 0.1])
@pytest.mark.parametrize("minimal", [False, True])
@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_random_policy(seed: int, minimal: bool, sticky: float) -> None:
    stats = lockstep(
        "space_invaders",
        seed=seed,
        num_envs=8,
        steps=500,
        sticky_action_prob=sticky,
        minimal_action_set=minimal,
    )
    assert stats.episodes > 5


@pytest.mark.parametrize(
    ("seed", "sticky", "ramping", "minimal"),
    [(0, 0.1, True, True), (2**32 - 1, 0.0, False, False)],
)
def test_hunter_clears_waves(seed: int, sticky: float, ramping: bool, minimal: bool) -> None:
    num_envs = 16
    probe = InvadersProbe()
    policy = Hunter(num_envs, MINIMAL if minimal else FULL)
    lockstep(
        "space_invaders",
        seed=seed,
        num_envs=num_envs,
        steps=1500,
        sticky_action_prob=sticky,
        difficulty_ramping=ramping,
        minimal_action_set=minimal,
        policy=policy,
        probe=probe,
    )
    e = probe.events
    assert e["new_wave"] >= 50, e
    # the ramp stops at a move interval of 6, after 6 waves
    assert e["max_ramp_index"] == (6 if ramping else 0), e


@pytest.mark.parametrize(("seed", "minimal"), [(0, False), (2**32 - 1, True)])
def test_carver_lets_the_swarm_wrap(seed: int, minimal: bool) -> None:
    probe = InvadersProbe()
    stats = lockstep(
        "space_invaders",
        seed=seed,
        num_envs=16,
        steps=1200,
        sticky_action_prob=0.1,
        minimal_action_set=minimal,
        policy=carver(MINIMAL if minimal else FULL),
        probe=probe,
    )
    e = probe.events
    assert e["wrapped"] >= 10 and e["shot"] >= 1 and e["alien_on_cannon"] >= 1, e
    assert stats.episodes == e["wrapped"] + e["shot"] + e["alien_on_cannon"]
