"""The gymnasium face of the native games: API, seeding, autoreset, truncation, bad input."""

import re
import threading
import warnings
import weakref

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

from evozero.envs import GAMES, MinAtarEnv, MinAtarVecEnv, gym_id
from evozero.native.gym_ids import did_you_mean_game

MINIMAL_ACTIONS = {
    "breakout": [0, 1, 3],
    "asterix": [0, 1, 2, 3, 4],
    "freeway": [0, 2, 4],
    "seaquest": [0, 1, 2, 3, 4, 5],
    "space_invaders": [0, 1, 3, 5],
}


def reference(game: str, seed: int, sticky: float = 0.1):
    """A reset reference env seeded as evozero seeds one env."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minatar warns when seaborn is missing
        from minatar import Environment
    env = Environment(game, sticky_action_prob=sticky)
    env.seed(seed)
    env.reset()
    return env


def assert_matches(obs: np.ndarray, refs: list, where: str) -> None:
    for i, ref in enumerate(refs):
        np.testing.assert_array_equal(obs[i], ref.state(), err_msg=f"{where}, env {i}")


def step_both(env: MinAtarVecEnv, refs: list, actions: np.ndarray):
    """Step the native env and the references (reset where they end) with the same actions."""
    out = env.step(actions)
    for i, ref in enumerate(refs):
        _, done = ref.act(env.action_set[actions[i]])
        if done:
            ref.reset()
    return out


# --- registration and the gymnasium API ----------------------------------------------------


@pytest.mark.parametrize("minimal", [True, False])
@pytest.mark.parametrize("game", GAMES)
def test_registered_env_passes_env_checker(game: str, minimal: bool) -> None:
    env = gym.make(gym_id(game, minimal))
    assert isinstance(env.unwrapped, MinAtarEnv)
    n = len(MINIMAL_ACTIONS[game]) if minimal else 6
    assert env.action_space == spaces.Discrete(n)
    channels = env.unwrapped._vec.single_observation_space.shape[2]
    assert env.observation_space == spaces.Box(0, 1, (10, 10, channels), dtype=bool)
    check_env(env.unwrapped)
    env.close()


def test_games_are_the_cores() -> None:
    from evozero import _core

    assert tuple(_core.GAMES) == GAMES  # the ids are registered without loading the core


def test_gym_ids() -> None:
    assert gym_id("breakout") == "evozero/Breakout-v1"
    assert gym_id("space_invaders", minimal_action_set=False) == "evozero/SpaceInvaders-v0"
    for game in GAMES:
        assert gym_id(game, True) in gym.registry and gym_id(game, False) in gym.registry


def test_make_vec_returns_native_vec_env_with_minimal_actions() -> None:
    env = gym.make_vec("evozero/Breakout-v1", num_envs=4)
    assert type(env) is MinAtarVecEnv
    assert env.num_envs == 4
    assert env.action_set == MINIMAL_ACTIONS["breakout"]
    assert env.single_action_space == spaces.Discrete(3)
    assert env.action_space == spaces.MultiDiscrete([3] * 4)
    assert env.observation_space.shape == (4, 10, 10, 4)
    assert env.channel_names == ["paddle", "ball", "trail", "brick"]
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 10, 10, 4) and obs.dtype == bool and info == {}
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert (reward.dtype, terminated.dtype, truncated.dtype) == (np.float32, bool, bool)
    env.close()
    full = gym.make_vec("evozero/Breakout-v0", num_envs=2)
    assert full.action_set == list(range(6))


def test_make_vec_forwards_options() -> None:
    env = gym.make_vec("evozero/Freeway-v1", num_envs=2, max_episode_steps=3)
    env.reset(seed=1)
    truncated = [env.step(np.zeros(2, dtype=np.int64))[3] for _ in range(3)]
    assert [t.tolist() for t in truncated] == [[False, False], [False, False], [True, True]]


# --- seeding ---------------------------------------------------------------------------------


@pytest.mark.reference
def test_env_i_is_seeded_with_seed_plus_i_mod_2_32() -> None:
    seed = 2**32 - 2  # envs 2 and 3 wrap around to seeds 0 and 1
    env = MinAtarVecEnv("freeway", 4)
    obs, _ = env.reset(seed=seed)
    refs = [reference("freeway", (seed + i) % 2**32) for i in range(4)]
    assert_matches(obs, refs, "after reset")
    rng = np.random.default_rng(0)
    for t in range(60):
        obs = step_both(env, refs, rng.integers(0, 3, 4))[0]
        assert_matches(obs, refs, f"step {t}")


@pytest.mark.reference
def test_a_list_of_seeds_seeds_each_env() -> None:
    seeds = [7, 2**32 - 1, 0]
    env = MinAtarVecEnv("freeway", 3)
    obs, _ = env.reset(seed=seeds)
    assert_matches(obs, [reference("freeway", s) for s in seeds], "after reset")
    obs, _ = env.reset(seed=np.array(seeds, dtype=np.uint32))
    assert_matches(obs, [reference("freeway", s) for s in seeds], "after reset from an array")


def _trajectory(env: MinAtarVecEnv, seed: int, steps: int = 200) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(steps):
        obs, reward, terminated, _, _ = env.step(rng.integers(0, env.single_action_space.n, 2))
        out += [obs, reward, terminated]
    return out


def test_reset_with_a_seed_is_reproducible() -> None:
    env = MinAtarVecEnv("asterix", 2)
    first = _trajectory(env, 42)
    again = _trajectory(env, 42)  # the same env, reseeded
    other = _trajectory(MinAtarVecEnv("asterix", 2), 42)  # a fresh env
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    different = _trajectory(env, 43)
    assert any(not np.array_equal(a, b) for a, b in zip(first, different, strict=True))


def test_seed_given_at_construction_is_used_by_the_first_reset() -> None:
    a, _ = MinAtarVecEnv("freeway", 2, seed=9).reset()
    b, _ = MinAtarVecEnv("freeway", 2).reset(seed=9)
    np.testing.assert_array_equal(a, b)


@pytest.mark.reference
def test_reset_without_seed_restarts_from_the_current_stream() -> None:
    env = MinAtarVecEnv("freeway", 2)
    obs, _ = env.reset(seed=3)
    refs = [reference("freeway", 3 + i) for i in range(2)]
    rng = np.random.default_rng(3)
    for _ in range(100):
        step_both(env, refs, rng.integers(0, 3, 2))
    obs, _ = env.reset()  # no seed: every env draws its new cars from where its stream is
    for ref in refs:
        ref.reset()
    assert_matches(obs, refs, "after an unseeded reset")
    fresh, _ = MinAtarVecEnv("freeway", 2).reset(seed=3)
    assert not np.array_equal(obs, fresh)
    for t in range(50):
        obs = step_both(env, refs, rng.integers(0, 3, 2))[0]
        assert_matches(obs, refs, f"step {t} after the unseeded reset")


# --- autoreset and truncation ----------------------------------------------------------------


@pytest.mark.reference
def test_same_step_autoreset_returns_the_final_obs_in_info() -> None:
    n = 4
    env = MinAtarVecEnv("breakout", n)
    env.reset(seed=5)
    refs = [reference("breakout", 5 + i) for i in range(n)]
    rng = np.random.default_rng(5)
    endings = 0
    for t in range(400):
        actions = rng.integers(0, 6, n)
        obs, reward, terminated, truncated, info = env.step(actions)
        assert not truncated.any()
        if not terminated.any():
            assert info == {}
        else:
            np.testing.assert_array_equal(info["_final_obs"], terminated)
            np.testing.assert_array_equal(info["_final_info"], terminated)
        for i, ref in enumerate(refs):
            r, done = ref.act(actions[i])
            assert (reward[i], terminated[i]) == (r, done), f"step {t} env {i}"
            if done:
                endings += 1
                np.testing.assert_array_equal(info["final_obs"][i], ref.state())
                ref.reset()
            elif "final_obs" in info:
                assert info["final_obs"][i] is None
            np.testing.assert_array_equal(obs[i], ref.state(), err_msg=f"step {t} env {i}")
    assert endings > 20


@pytest.mark.reference
def test_max_episode_steps_truncates_and_autoresets() -> None:
    limit, n = 15, 8
    env = MinAtarVecEnv("breakout", n, max_episode_steps=limit)
    env.reset(seed=0)
    refs = [reference("breakout", i) for i in range(n)]
    rng = np.random.default_rng(0)
    lengths = np.zeros(n, dtype=np.int64)
    counts = {"terminated": 0, "truncated": 0}
    for t in range(300):
        actions = rng.integers(0, 6, n)
        obs, _, terminated, truncated, info = env.step(actions)
        lengths += 1
        assert not (terminated & truncated).any()
        np.testing.assert_array_equal(truncated, (lengths == limit) & ~terminated)
        ended = terminated | truncated
        if ended.any():
            np.testing.assert_array_equal(info["_final_obs"], ended)
        for i, ref in enumerate(refs):
            _, done = ref.act(actions[i])
            assert done == terminated[i]
            if ended[i]:
                # a truncated episode ends like a terminated one: last state in info, then reset
                np.testing.assert_array_equal(info["final_obs"][i], ref.state(), err_msg=f"{t}")
                ref.reset()
            np.testing.assert_array_equal(obs[i], ref.state(), err_msg=f"step {t} env {i}")
        counts["terminated"] += int(terminated.sum())
        counts["truncated"] += int(truncated.sum())
        lengths[ended] = 0
    assert counts["terminated"] > 20 and counts["truncated"] > 20


def test_gym_make_max_episode_steps_truncates() -> None:
    env = gym.make("evozero/Freeway-v1", max_episode_steps=5)
    env.reset(seed=0)
    truncated = [env.step(0)[3] for _ in range(5)]
    assert truncated == [False] * 4 + [True]


@pytest.mark.reference
def test_single_env_matches_reference_across_an_episode_end() -> None:
    env = MinAtarEnv("breakout")
    obs, _ = env.reset(seed=11)
    ref = reference("breakout", 11)
    rng = np.random.default_rng(11)
    for episode in range(3):
        np.testing.assert_array_equal(obs, ref.state())
        terminated = False
        while not terminated:
            a = int(rng.integers(0, 6))
            obs, reward, terminated, truncated, _ = env.step(a)
            assert (reward, terminated) == ref.act(a)
            assert isinstance(reward, float) and not truncated
            np.testing.assert_array_equal(obs, ref.state(), err_msg=f"episode {episode}")
        with pytest.raises(RuntimeError, match=r"episode has ended; call reset\(\)"):
            env.step(0)
        obs, _ = env.reset()  # continues the stream, as the reference reset()
        ref.reset()


# --- what step() returns: the caller's own arrays ------------------------------------------
# step() hands out again the arrays the caller has dropped (every array of its results,
# the object array of final observations included) and reuses the memory of dropped
# observation buffers; none of this may show: what the caller holds is never written again.


def _raw_step(env: MinAtarVecEnv, actions: np.ndarray):
    """The core's own step into fresh buffers, final observations of every env included."""
    n, shape = env.num_envs, (env.num_envs, *env.single_observation_space.shape)
    obs, final = np.empty(shape, dtype=bool), np.empty(shape, dtype=bool)
    reward = np.empty(n, dtype=np.float32)
    terminated, truncated = np.empty(n, dtype=bool), np.empty(n, dtype=bool)
    env._env.step(np.asarray(actions, dtype=np.int64), obs, reward, terminated, truncated, final)
    return obs, reward, terminated, truncated, final


@pytest.mark.parametrize("game", GAMES)
def test_kept_results_are_never_written_again(game: str) -> None:
    # 64 envs: large enough to step without the GIL; short episodes: endings every step
    n = 64
    env, twin = (MinAtarVecEnv(game, n, max_episode_steps=5) for _ in range(2))
    env.reset(seed=3)
    twin.reset(seed=3)
    rng = np.random.default_rng(3)
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    kept_final: list[tuple[np.ndarray, list]] = []
    endings = 0
    for t in range(40):
        actions = rng.integers(0, env.single_action_space.n, n)
        obs, reward, terminated, truncated, info = env.step(actions)
        raw_obs, raw_reward, raw_term, raw_trunc, raw_final = _raw_step(twin, actions)
        for got, want in [
            (obs, raw_obs),
            (reward, raw_reward),
            (terminated, raw_term),
            (truncated, raw_trunc),
        ]:
            np.testing.assert_array_equal(got, want, err_msg=f"step {t}")
        if t % 4 == 0:
            kept += [(a, a.copy()) for a in (obs, reward, terminated, truncated)]
        ended = np.flatnonzero(terminated | truncated)
        if len(ended) == 0:
            assert info == {}
            continue
        endings += len(ended)
        final = info["final_obs"]
        for i in ended:
            np.testing.assert_array_equal(final[i], raw_final[i], err_msg=f"step {t} env {i}")
            assert final[i].shape == env.single_observation_space.shape
            assert final[i].dtype == bool and final[i].flags.writeable
            assert not np.shares_memory(final[i], obs)
        # keep one final observation, a view of another, drop the rest
        kept.append((final[ended[0]], final[ended[0]].copy()))
        view = final[ended[-1]][3:7, :, 0]
        kept.append((view, view.copy()))
        if t % 3 == 0:  # and now and then the info's own arrays
            kept.append((info["_final_obs"], info["_final_obs"].copy()))
            kept_final.append((final, list(final)))
    assert endings >= 8 * n  # every env truncated every 5 steps, some terminated between
    for i, (array, copy) in enumerate(kept):
        np.testing.assert_array_equal(array, copy, err_msg=f"kept array {i}")
    for i, (final, items) in enumerate(kept_final):
        assert all(a is b for a, b in zip(final, items, strict=True)), f"kept final_obs {i}"


# Each array of a step's results: obs, reward, terminated, truncated, one final
# observation, the mask, the object array of final observations.
_RESULTS = {
    "obs": lambda r: r[0],
    "reward": lambda r: r[1],
    "terminated": lambda r: r[2],
    "truncated": lambda r: r[3],
    "final_obs[0]": lambda r: r[4]["final_obs"][0],
    "_final_obs": lambda r: r[4]["_final_obs"],
    "final_obs": lambda r: r[4]["final_obs"],
}


@pytest.mark.parametrize("result", _RESULTS)
@pytest.mark.parametrize("change", ["shape", "dtype", "read-only", "weakref"])
def test_a_dropped_result_changed_in_place_is_not_handed_out_again(
    change: str, result: str
) -> None:
    env = MinAtarVecEnv("breakout", 2, max_episode_steps=1)  # every step ends the episodes
    env.reset(seed=0)
    pick = _RESULTS[result]
    first = pick(env.step([0, 0]))
    want_shape, want_dtype = first.shape, first.dtype
    copy = first.copy()
    if change == "shape":
        first.shape = (first.size, 1)
    elif change == "dtype" and first.dtype != object:  # an object array's dtype is fixed
        first.dtype = np.uint8 if first.dtype == bool else np.int32
    elif change == "read-only":
        first.flags.writeable = False
    ref = weakref.ref(first)
    if change != "weakref":
        del ref
    del first
    later = [pick(env.step([1, 1])) for _ in range(3)]
    for array in later:
        assert array.shape == want_shape and array.dtype == want_dtype and array.flags.writeable
    if change == "weakref":  # what a weak reference reaches is not handed out again
        assert ref() is None or (
            all(ref() is not a for a in later)
            and (ref().dtype == object or np.array_equal(ref(), copy))
        )


def test_steps_in_threads_match_steps_in_turn() -> None:
    # Large batches step without the GIL: two envs stepped at once give what they give alone.
    def run(seed: int, out: list) -> None:
        env = MinAtarVecEnv("breakout", 512, max_episode_steps=9)
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        for _ in range(30):
            obs, reward, _, _, info = env.step(rng.integers(0, 3, 512))
            out.append((obs, reward, info.get("final_obs")))

    alone: dict[int, list] = {0: [], 1: []}
    for seed in alone:
        run(seed, alone[seed])
    threaded: dict[int, list] = {0: [], 1: []}
    threads = [threading.Thread(target=run, args=(seed, threaded[seed])) for seed in threaded]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed in alone:
        for (obs, reward, final), (obs2, reward2, final2) in zip(
            alone[seed], threaded[seed], strict=True
        ):
            np.testing.assert_array_equal(obs, obs2)
            np.testing.assert_array_equal(reward, reward2)
            assert (final is None) == (final2 is None)
            if final is not None:
                for a, b in zip(final, final2, strict=True):
                    assert (a is None and b is None) or np.array_equal(a, b)


@pytest.mark.parametrize(
    "dtype",
    [
        np.int8,
        np.uint8,
        np.int16,
        np.uint16,
        np.int32,
        np.uint32,
        np.int64,
        np.uint64,
        ">i8",
        "<i4",
    ],
)
def test_actions_of_every_integer_dtype(dtype) -> None:
    actions = np.random.default_rng(2).integers(0, 3, (20, 6))
    results = []
    for convert in (
        lambda a: a.astype(np.int64),
        lambda a: a.astype(dtype),
        lambda a: np.repeat(a.astype(dtype), 2)[::2],
        lambda a: a.tolist(),
    ):
        env = MinAtarVecEnv("breakout", 6, minimal_action_set=True)
        env.reset(seed=1)
        results.append([env.step(convert(a))[0] for a in actions])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


# --- bad input -------------------------------------------------------------------------------


def test_unknown_game_lists_the_valid_games() -> None:
    valid = re.escape(", ".join(GAMES))
    with pytest.raises(ValueError, match=f"unknown game 'pong'; valid games: {valid}"):
        MinAtarVecEnv("pong", 1)
    hint = re.escape("; did you mean 'breakout'?")
    with pytest.raises(ValueError, match=f"unknown game 'Breakout'{hint}; valid games: {valid}"):
        MinAtarEnv("Breakout")
    with pytest.raises(ValueError, match="unknown game 'pong'"):
        gym_id("pong")


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("Breakout", "breakout"),
        ("breakout-v1", "breakout"),
        ("MinAtar/SpaceInvaders-v1", "space_invaders"),
        ("evozero/Asterix-v0", "asterix"),
        ("space-invaders", "space_invaders"),
        ("seaqest", "seaquest"),
        ("pong", None),
        ("breakout", None),  # already right: nothing to suggest
    ],
)
def test_did_you_mean_game(name: str, suggestion: str | None) -> None:
    expected = f"; did you mean {suggestion!r}?" if suggestion else ""
    assert did_you_mean_game(name) == expected


@pytest.mark.parametrize("num_envs", [0, -1])
def test_num_envs_below_one(num_envs: int) -> None:
    with pytest.raises(ValueError, match=f"num_envs must be at least 1, got {num_envs}"):
        MinAtarVecEnv("breakout", num_envs)


@pytest.mark.parametrize("num_envs", [2.0, "4", True, None])
def test_num_envs_not_an_integer(num_envs) -> None:
    with pytest.raises(ValueError, match="num_envs must be an integer, got"):
        MinAtarVecEnv("breakout", num_envs)


@pytest.fixture
def env() -> MinAtarVecEnv:
    env = MinAtarVecEnv("breakout", 4, minimal_action_set=True)
    env.reset(seed=0)
    return env


@pytest.mark.parametrize("actions", [[0, 1, 2], [[0], [1], [2], [0]], 0, []])
def test_actions_of_the_wrong_shape(env: MinAtarVecEnv, actions) -> None:
    with pytest.raises(ValueError, match=r"actions must have shape \(4,\), one per env; got shape"):
        env.step(actions)


@pytest.mark.parametrize(
    "actions", [np.zeros(4), [0.0, 1.0, 2.0, 0.0], np.ones(4, dtype=bool), ["0", "1", "2", "0"]]
)
def test_actions_not_integers(env: MinAtarVecEnv, actions) -> None:
    with pytest.raises(ValueError, match="actions must be integers, got dtype"):
        env.step(actions)


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        ([0, -1, 0, 0], "action -1 of env 1 is out of range: this env has 3 actions \\(0..2\\)"),
        ([0, 0, 3, 0], "action 3 of env 2 is out of range"),
        (np.array([2**40, 0, 0, 0]), f"action {2**40} of env 0 is out of range"),
        (np.array([0, 0, 0, 2**64 - 1], dtype=np.uint64), "of env 3 is out of range"),
    ],
)
def test_actions_out_of_range(env: MinAtarVecEnv, actions, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        env.step(actions)


def test_action_out_of_range_for_the_full_set() -> None:
    env = MinAtarVecEnv("asterix", 1)
    env.reset(seed=0)
    env.step([5])
    with pytest.raises(ValueError, match=r"action 6 of env 0 is out of range: this env has 6"):
        env.step([6])
    single = MinAtarEnv("asterix", minimal_action_set=True)
    single.reset(seed=0)
    with pytest.raises(ValueError, match="action 5 of env 0 is out of range"):
        single.step(5)


def test_step_before_reset() -> None:
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        MinAtarVecEnv("breakout", 2).step([0, 0])
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        MinAtarEnv("breakout").step(0)


def test_step_and_reset_after_close(env: MinAtarVecEnv) -> None:
    env.close()
    with pytest.raises(RuntimeError, match="this breakout env is closed; create a new one"):
        env.step([0, 0, 0, 0])
    with pytest.raises(RuntimeError, match="env is closed"):
        env.reset(seed=0)
    single = MinAtarEnv("freeway")
    single.reset(seed=0)
    single.close()
    with pytest.raises(RuntimeError, match="env is closed"):
        single.step(0)


@pytest.mark.parametrize("prob", [-0.1, 1.5, float("nan"), "0.1", None])
def test_sticky_action_prob_outside_0_1(prob) -> None:
    with pytest.raises(ValueError, match=r"sticky_action_prob must be in \[0, 1\], got"):
        MinAtarVecEnv("breakout", 1, sticky_action_prob=prob)
    with pytest.raises(ValueError, match=r"sticky_action_prob must be in \[0, 1\]"):
        gym.make("evozero/Breakout-v1", sticky_action_prob=prob)


@pytest.mark.parametrize("prob", [0, 0.0, 1.0, np.float32(0.5)])
def test_sticky_action_prob_bounds_are_valid(prob) -> None:
    MinAtarVecEnv("breakout", 1, sticky_action_prob=prob).reset(seed=0)


@pytest.mark.parametrize("steps", [0, -3, 2.5, "10", True])
def test_bad_max_episode_steps(steps) -> None:
    with pytest.raises(ValueError, match="max_episode_steps must be an integer >= 1 or None"):
        MinAtarVecEnv("breakout", 1, max_episode_steps=steps)


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        (-1, "seed must be a non-negative integer, got -1"),
        (1.5, "seed must be an int, one int per env or None, got 1.5"),
        ("7", "seed must be an int, one int per env or None"),
        ([1, 2, 3], "got 3 seeds for 2 envs; give one per env or one int"),
        ([1, 2.5], "a seed sequence must hold integers only"),
        ([1, None], "a seed sequence must hold integers only"),
        ([1, 2**32], r"each seed must be in \[0, 2\*\*32\)"),
        ([-1, 0], r"each seed must be in \[0, 2\*\*32\)"),
    ],
)
def test_bad_seeds(seed, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MinAtarVecEnv("breakout", 2).reset(seed=seed)
