"""Native seaquest equals minatar's, step for step.

A scripted diver-collecting policy drives the games into their deep states:
surfacing with 6 divers (the diver count becomes -1 and the reference goes on
from there), surfacing with fewer, oxygen running out, enemy kills and a fully
ramped difficulty. A probe on the reference envs records which of those
happened, so the tests fail if a policy change stops reaching them.
"""

from collections import Counter

import numpy as np
import pytest
from lockstep import lockstep

pytestmark = pytest.mark.reference

NOOP, LEFT, UP, RIGHT, DOWN, FIRE = range(6)  # the minimal set is all six, in order


class DiverPolicy:
    """Collects divers, shoots enemies ahead, dodges, surfaces when full or short of air.

    Even envs surface when oxygen runs low (losing a diver, or ending the game
    with none); odd envs are greedy and only surface with 6 divers, so they
    run out of oxygen. After surfacing with 6 (the count is then -1, which the
    gauge shows as 0) an env bobs between the surface and row 1: each
    surfacing takes one more diver and ramps the difficulty, down to its floor
    after 19 surfacings.
    """

    BOBS = 25

    def __init__(self, num_envs: int, noise: float = 0.03):
        self.noise = noise
        self.prev_gauge = np.zeros(num_envs, dtype=np.int64)
        self.bobs = np.zeros(num_envs, dtype=np.int64)  # surfacings left to bob

    def __call__(self, obs: np.ndarray, t: int, rng: np.random.Generator) -> np.ndarray:
        acts = np.array([self.act(i, o) for i, o in enumerate(obs)], dtype=np.int64)
        noise = rng.random(len(obs)) < self.noise
        return np.where(noise, rng.integers(0, 6, len(obs)), acts)

    def act(self, i: int, o: np.ndarray) -> int:
        sy, sx = (int(v[0]) for v in np.nonzero(o[:, :, 0]))
        facing_right = int(np.flatnonzero(o[sy, :, 1])[0]) < sx
        gauge, oxygen = int(o[9, :, 8].sum()), int(o[9, :, 7].sum())
        fresh = (sy, sx, facing_right, oxygen) == (0, 5, False, 10) and not o[:9, :, 2:].any()
        if fresh or gauge > 0:
            self.bobs[i] = 0  # a new episode, or a diver picked up
        elif sy == 0 and oxygen == 10 and self.prev_gauge[i] == 6:
            self.bobs[i] = self.BOBS
        self.prev_gauge[i] = gauge
        enemies = o[:, :, 5] | o[:, :, 6]
        threat = enemies | o[:, :, 4]

        def danger(y: int) -> bool:
            return 1 <= y <= 8 and bool(threat[y, max(0, sx - 1) : sx + 2].any())

        if self.bobs[i]:
            if sy > 0:
                return UP if not danger(sy - 1) else FIRE
            self.bobs[i] -= 1
            return DOWN
        if gauge == 6 or (oxygen <= 2 and i % 2 == 0):
            if sy == 0:
                return NOOP
            return UP if not danger(sy - 1) else FIRE
        if sy == 0:
            return DOWN
        ahead = np.flatnonzero(enemies[sy])
        ahead = ahead[ahead > sx] if facing_right else ahead[ahead < sx]
        if ahead.size and abs(int(ahead[0] if facing_right else ahead[-1]) - sx) <= 4:
            return FIRE
        if danger(sy):
            for y, a in ((sy + 1, DOWN), (sy - 1, UP)):
                if 1 <= y <= 8 and not danger(y):
                    return a
            return FIRE
        dys, dxs = np.nonzero(o[:, :, 9])
        if dys.size:
            k = int(np.argmin(np.abs(dys - sy) + np.abs(dxs - sx)))
            ty, tx = int(dys[k]), int(dxs[k])
            if ty > sy and not danger(sy + 1):
                return DOWN
            if ty < sy and sy > 1 and not danger(sy - 1):
                return UP
            return RIGHT if tx > sx else LEFT if tx < sx else NOOP
        return DOWN if sy < 4 else NOOP


class SeaquestProbe:
    """Counts deep-state events on the reference envs (``ref.env`` attributes).

    It hooks each reference's ``reset`` to see the terminal state before the
    harness resets it, and compares each env with its state one step earlier.
    """

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()
        self.prev: dict[int, tuple] = {}

    def _hook(self, ref) -> None:
        reset = ref.reset

        def reset_after_end():
            g = ref.env
            if g.oxygen <= 0:
                self.events["oxygen_out"] += 1
            elif g.sub_y == 0 and g.diver_count == 0:
                self.events["surfaced_empty"] += 1
            else:
                self.events["hit"] += 1
            ref.episode = getattr(ref, "episode", 0) + 1
            return reset()

        ref.reset = reset_after_end

    def __call__(self, refs: list, t: int) -> None:
        for i, ref in enumerate(refs):
            if t == 0:
                self._hook(ref)
            g = ref.env
            episode = getattr(ref, "episode", 0)
            enemies = g.e_fish + g.e_subs
            if i in self.prev and self.prev[i][0] == episode:
                _, count, oxygen, old_enemies = self.prev[i]
                e = self.events
                if count == 6 and g.diver_count == -1:
                    e["surfaced_six"] += 1
                elif count < 0 and g.diver_count == count + 1:
                    e["pickup_below_zero"] += 1  # a count of 0 must not draw a gauge cell
                elif count < 0 and g.diver_count == count - 1:
                    e["surfaced_below_zero"] += 1  # would have ended the game at 0
                elif 1 <= count <= 5 and g.diver_count == count - 1 and g.oxygen == 200:
                    e["surfaced_few"] += 1
                alive = {id(x) for x in enemies}
                # an enemy that left the screen was moved off it before removal
                e["kills"] += sum(id(x) not in alive and 0 <= x[0] <= 9 for x in old_enemies)
                if g.oxygen == 200 and oxygen < 200 and g.e_spawn_speed == 1 and g.move_speed == 2:
                    e["surfaced_at_ramp_floor"] += 1
            self.prev[i] = (episode, g.diver_count, g.oxygen, enemies)


@pytest.mark.parametrize("sticky", [0.0, 0.1])
@pytest.mark.parametrize("minimal", [False, True])
@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_random_policy(seed: int, minimal: bool, sticky: float) -> None:
    stats = lockstep(
        "seaquest",
        seed=seed,
        num_envs=8,
        steps=800,
        sticky_action_prob=sticky,
        minimal_action_set=minimal,
    )
    assert stats.episodes > 50


@pytest.mark.parametrize(
    ("seed", "sticky", "ramping", "minimal"),
    [(0, 0.1, True, False), (2**32 - 1, 0.0, True, True), (12345, 0.1, False, True)],
)
def test_diver_policy_reaches_deep_states(
    seed: int, sticky: float, ramping: bool, minimal: bool
) -> None:
    num_envs = 16
    probe = SeaquestProbe()
    stats = lockstep(
        "seaquest",
        seed=seed,
        num_envs=num_envs,
        steps=2500,
        sticky_action_prob=sticky,
        difficulty_ramping=ramping,
        minimal_action_set=minimal,
        policy=DiverPolicy(num_envs),
        probe=probe,
    )
    e = probe.events
    assert e["surfaced_six"] >= 3, e
    assert e["pickup_below_zero"] >= 1, e
    assert e["surfaced_few"] >= 10, e
    assert e["kills"] >= 100, e
    assert e["oxygen_out"] >= 3 and e["hit"] >= 10 and e["surfaced_empty"] >= 1, e
    if ramping:
        assert e["surfaced_below_zero"] >= 20, e
        assert e["surfaced_at_ramp_floor"] >= 1, e
    assert stats.longest_episode > 300
