"""Run the native games in lockstep with the reference ``minatar`` package.

``lockstep`` steps a native :class:`MinAtarVecEnv` and one reference
``minatar.Environment`` per env with the same seeds and actions, and asserts
that observations, rewards and terminal flags agree at every step, across
episode boundaries (the reference is reset from its own stream, as the native
autoreset does).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # minatar warns when seaborn is missing
    from minatar import Environment

from evozero.envs import MinAtarVecEnv

# policy(obs, t, rng) -> action indices, shape (num_envs,)
Policy = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
# probe(reference_envs, t) is called after every step, to record deep states reached
Probe = Callable[[list, int], None]


def random_policy(num_actions: int) -> Policy:
    return lambda obs, t, rng: rng.integers(0, num_actions, size=len(obs))


@dataclass
class LockstepStats:
    steps: int = 0
    episodes: int = 0
    total_reward: float = 0.0
    longest_episode: int = 0
    episode_returns: list[float] = field(default_factory=list)


def lockstep(
    game: str,
    *,
    seed: int,
    num_envs: int,
    steps: int,
    policy: Policy | None = None,
    probe: Probe | None = None,
    sticky_action_prob: float = 0.1,
    difficulty_ramping: bool = True,
    minimal_action_set: bool = False,
) -> LockstepStats:
    """Step both sides ``steps`` times on ``num_envs`` envs; fail on the first mismatch."""
    env = MinAtarVecEnv(
        game,
        num_envs,
        sticky_action_prob=sticky_action_prob,
        difficulty_ramping=difficulty_ramping,
        minimal_action_set=minimal_action_set,
    )
    obs, _ = env.reset(seed=seed)
    refs = []
    for i in range(num_envs):
        ref = Environment(
            game, sticky_action_prob=sticky_action_prob, difficulty_ramping=difficulty_ramping
        )
        ref.seed((seed + i) % 2**32)
        ref.reset()
        np.testing.assert_array_equal(obs[i], ref.state(), err_msg=f"{game} env {i} after reset")
        refs.append(ref)
    action_set = env.action_set
    policy = policy or random_policy(len(action_set))
    rng = np.random.default_rng(seed % 2**32)
    stats = LockstepStats()
    returns = np.zeros(num_envs)
    lengths = np.zeros(num_envs, dtype=np.int64)
    for t in range(steps):
        actions = np.asarray(policy(obs, t, rng), dtype=np.int64)
        obs, reward, terminated, truncated, info = env.step(actions)
        assert not truncated.any()
        for i, ref in enumerate(refs):
            r, done = ref.act(action_set[actions[i]])
            where = f"{game} seed {seed} env {i} step {t}"
            assert reward[i] == r, f"{where}: reward {reward[i]} != reference {r}"
            assert terminated[i] == done, f"{where}: terminal {terminated[i]} != reference {done}"
            if done:
                np.testing.assert_array_equal(info["final_obs"][i], ref.state(), err_msg=where)
                ref.reset()
            np.testing.assert_array_equal(obs[i], ref.state(), err_msg=where)
        if probe is not None:
            probe(refs, t)
        returns += reward
        lengths += 1
        stats.total_reward += float(reward.sum())
        for i in np.flatnonzero(terminated):
            stats.episodes += 1
            stats.episode_returns.append(float(returns[i]))
            stats.longest_episode = max(stats.longest_episode, int(lengths[i]))
            returns[i], lengths[i] = 0, 0
    stats.steps = steps * num_envs
    stats.longest_episode = max(stats.longest_episode, int(lengths.max()))
    return stats
