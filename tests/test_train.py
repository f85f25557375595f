"""The native trainer: it learns, it is deterministic, and it fails cleanly."""

from __future__ import annotations

import threading

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from evozero.native.train import TrainConfig, TrainResult, final_return, learning_curve, train
from evozero.program import dsl

PPO = "programs/ppo.evz"
SMALL = TrainConfig(total_steps=40_960, num_envs=16, num_steps=64)


def test_ppo_beats_random_on_breakout() -> None:
    r = train(PPO, "breakout", TrainConfig(total_steps=300_000), seed=0)
    assert r.status == "ok", r.message
    assert r.steps == r.total_steps == 294_912  # whole rollouts of 64 x 128
    # A random policy scores about 0.5 (reference/minatar.md).
    assert r.final_return > 3.0


def test_ppo_solves_cartpole() -> None:
    config = TrainConfig(total_steps=60_000, num_envs=8, num_steps=128)
    r = train(PPO, "CartPole-v1", config, seed=1)
    assert r.status == "ok", r.message
    assert r.final_return > 150  # random: about 22


def test_ppo_with_the_conv_network_beats_random_on_breakout() -> None:
    config = TrainConfig(
        total_steps=40_960, num_envs=16, num_steps=64, update_epochs=2, network="conv"
    )
    r = train(PPO, "breakout", config, seed=0)
    assert r.status == "ok", r.message
    assert r.final_return > 2.0  # random play: about 0.5 (reference/minatar.md)


def test_the_conv_network_on_a_flat_box_env_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="network 'conv' needs a native MinAtar game") as e:
        train(PPO, "CartPole-v1", SMALL.replace(network="conv"), seed=0)
    assert "\n" not in str(e.value) and "use network 'mlp'" in str(e.value)


def test_acrobot_runs_through_the_gymnasium_path() -> None:
    r = train(PPO, "Acrobot-v1", TrainConfig(total_steps=8_192, num_envs=8, num_steps=64), 0)
    assert r.status == "ok", r.message
    assert r.steps == 8_192 and r.episode_returns.size > 0
    assert np.all(r.episode_returns <= 0)


@pytest.mark.parametrize("env", ["breakout", "CartPole-v1"])
def test_same_seed_same_run(env: str) -> None:
    a, b, c = (train(PPO, env, SMALL, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.episode_returns, b.episode_returns)
    np.testing.assert_array_equal(a.episode_end_steps, b.episode_end_steps)
    assert not np.array_equal(a.episode_end_steps, c.episode_end_steps)


def test_every_reference_program_trains() -> None:
    for name in ("reinforce", "a2c", "ppo", "dpo", "td_ac", "noop"):
        r = train(f"programs/{name}.evz", "breakout", SMALL, seed=0)
        assert r.status == "ok", (name, r.message)


def test_exploding_program_is_diverged_not_a_crash() -> None:
    bad = dsl.parse(
        "scan:\n  adv = exp(r * 1e30) * 1e30\n  vtarget = v\nobjective:\n  loss = -logp * adv\n"
    )
    r = train(bad, "breakout", SMALL, seed=0)
    assert r.status == "diverged"
    assert "not finite" in r.message
    assert r.steps < SMALL.total_steps


def test_exploding_loss_is_diverged() -> None:
    bad = dsl.parse(
        "scan:\n  adv = r\n  vtarget = v\nobjective:\n  loss = square(1e20 + v * 1e20)\n"
    )
    r = train(bad, "breakout", SMALL, seed=0)
    assert r.status == "diverged"


class _Exploding(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t > 100:
            raise RuntimeError("sensor failure")
        return np.zeros(3, np.float32), 0.0, False, False, {}


def test_python_env_error_ends_the_run_with_status_error() -> None:
    venv = gym.vector.SyncVectorEnv([_Exploding] * 2, autoreset_mode=AutoresetMode.SAME_STEP)
    r = train(PPO, venv, TrainConfig(total_steps=4_096, num_envs=2, num_steps=64), seed=0)
    assert r.status == "error"
    assert "sensor failure" in r.message


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("Pendulum-v1", "Discrete action spaces only"),
        ("NoSuchGame-v9", "not a native game"),
    ],
)
def test_unsupported_envs_get_clear_errors(env: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train(PPO, env, SMALL, seed=0)


def test_next_step_autoreset_env_is_refused_with_the_fix() -> None:
    venv = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    with pytest.raises(ValueError, match="SAME_STEP"):
        train(PPO, venv, SMALL, seed=0)


def test_image_observations_are_refused() -> None:
    class Image(_Exploding):
        observation_space = gym.spaces.Box(0, 1, (4, 4), np.float32)

    venv = gym.vector.SyncVectorEnv([Image], autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match="flat Box"):
        train(PPO, venv, SMALL, seed=0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_envs": 0}, "num_envs must be a positive integer"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"lr": float("nan")}, "lr must be a positive number"),
        ({"num_minibatches": 3}, "must divide"),
        ({"total_steps": 100}, "less than one rollout"),
        ({"sticky_action_prob": 2.0}, r"sticky_action_prob must be in \[0, 1\]"),
        ({"hidden": 2.5}, "hidden must be a positive integer"),
        ({"network": "resnet"}, "network must be one of mlp, conv, got 'resnet'"),
        ({"max_episode_steps": 0}, "max_episode_steps must be >= 1"),
        # Beyond the C++ field's type: refused here, not in a pybind11 cast.
        ({"total_steps": 2**63}, "total_steps must be at most 9,223,372,036,854,775,807"),
        ({"num_steps": 2**31}, "num_steps must be at most 2,147,483,647"),
        ({"max_episode_steps": 2**63}, "max_episode_steps must be >= 1"),
        ({"gamma": 0.9}, "unknown TrainConfig field"),
    ],
)
def test_config_validation(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig().replace(**changes)


@pytest.mark.parametrize("env", ["breakout", "CartPole-v1"])
def test_stop_cancels_a_run_from_another_thread(env: str) -> None:
    """A run with hours left stops once ``stop`` is set (eval's Ctrl-C), native or gym env."""
    stop = threading.Event()
    seen: list[int] = []

    def progress(steps: int) -> None:
        seen.append(steps)
        if steps > 0:
            threading.Thread(target=stop.set).start()  # as another thread would

    with pytest.raises(KeyboardInterrupt):
        train(PPO, env, SMALL.replace(total_steps=10**12), seed=0, on_progress=progress, stop=stop)
    assert 0 < seen[-1] < 10**9


@pytest.mark.parametrize("made", [True, False])
def test_ctrl_c_inside_thread_start_cancels_the_run(monkeypatch, made: bool) -> None:
    """A Ctrl-C can land inside ``Thread.start`` (the thread then may or may not have
    been made): the run is then cancelled and waited for, or never begins; never left
    running with hours to go (the interpreter would abort at exit)."""
    import types

    from evozero.native import train as train_module

    started: list[threading.Thread] = []

    class CtrlCInStart(threading.Thread):
        def start(self) -> None:
            if made:
                super().start()
                started.append(self)
            raise KeyboardInterrupt

    fake = types.SimpleNamespace(**{**vars(threading), "Thread": CtrlCInStart})
    monkeypatch.setattr(train_module, "threading", fake)
    with pytest.raises(KeyboardInterrupt):
        train(PPO, "breakout", SMALL.replace(total_steps=10**12), seed=0)
    assert all(not t.is_alive() for t in started)
    assert len(started) == made


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_bad_seed_is_refused(seed: int) -> None:
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        train(PPO, "breakout", SMALL, seed=seed)


def test_summary_figures() -> None:
    returns = np.array([1.0, 2.0, 3.0, 10.0])
    ends = np.array([10, 50, 95, 100])
    assert final_return(returns, ends, 100) == 6.5  # episodes ending at step >= 90
    x, curve = learning_curve(returns, ends, 100, bins=4)
    np.testing.assert_array_equal(x, [25, 50, 75, 100])
    np.testing.assert_array_equal(curve, [1.0, 2.0, 2.0, 6.5])  # an empty bin repeats
    r = TrainResult("t", 0, "ok", "", returns, ends, 100, 100, 2.0)
    assert r.summary()["final_return"] == 6.5 and r.steps_per_second == 50


def test_public_api_from_the_package() -> None:
    import evozero

    r = evozero.train(evozero.load(PPO), "breakout", SMALL, seed=0)
    assert isinstance(r, evozero.TrainResult) and r.status == "ok"
