"""evozero.train_many on the host: the population trainer's block code (csrc/population/,
the code the GPU runs, one thread per block here) against evozero.train, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import evozero
from evozero.native.train import TrainConfig, train
from evozero.program import dsl

# Two updates of two epochs of four minibatches: every part of an update, twice.
SMALL = TrainConfig(
    total_steps=2 * 8 * 16, num_envs=8, num_steps=16, update_epochs=2, num_minibatches=4, hidden=32
)


def assert_same_run(a: evozero.TrainResult, b: evozero.TrainResult) -> None:
    for field in ("status", "message", "steps", "total_steps"):
        assert getattr(a, field) == getattr(b, field), field
    np.testing.assert_array_equal(a.episode_returns, b.episode_returns)
    np.testing.assert_array_equal(a.episode_end_steps, b.episode_end_steps)
    np.testing.assert_array_equal(a.update_stats, b.update_stats)


def reference(program, game: str, config: TrainConfig, seed: int):
    """train()'s run with the parameters after its last update (from a checkpoint)."""
    r = train(program, game, config, seed, hooks={"checkpoints": [config.num_updates - 1]})
    return r, r.checkpoints[-1]["params_after"] if r.checkpoints else None


@pytest.mark.parametrize(
    ("name", "game"),
    [
        ("ppo", "breakout"),
        ("a2c", "asterix"),
        ("reinforce", "freeway"),
        ("td_ac", "seaquest"),
        ("dpo", "space_invaders"),
    ],
)
def test_host_run_is_train_bit_for_bit(name: str, game: str) -> None:
    program = f"programs/{name}.evz"
    config = SMALL.replace(max_episode_steps=10)  # freeway's episodes end only so
    (got,), (params,) = evozero.train_many(program, game, config, [5], parameters=True)
    want, want_params = reference(program, game, config, 5)
    assert got.status == "ok" and got.episode_returns.size > 0
    assert_same_run(got, want)
    assert params.keys() == want_params.keys()
    for k in params:
        np.testing.assert_array_equal(params[k], want_params[k], err_msg=k)


def test_every_agent_is_its_own_train_run_in_any_thread() -> None:
    programs = ["programs/ppo.evz", "programs/a2c.evz"]
    seeds = [0, 7, 2**63 + 1]
    config = SMALL.replace(max_episode_steps=9, sticky_action_prob=0.25)  # truncations too
    got = evozero.train_many(programs, "breakout", config, seeds, threads=2)
    assert [r.seed for r in got] == seeds * 2
    for p, program in enumerate(programs):
        for s, seed in enumerate(seeds):
            assert_same_run(got[p * len(seeds) + s], train(program, "breakout", config, seed))
    assert not np.array_equal(got[0].episode_end_steps, got[1].episode_end_steps)


def test_longer_run_with_annealing_and_clipping_stays_exact() -> None:
    config = SMALL.replace(total_steps=6 * 8 * 16, max_grad_norm=0.05, lr=1e-2)
    (got,), (params,) = evozero.train_many(
        "programs/ppo.evz", "asterix", config, [3], parameters=True
    )
    want, want_params = reference("programs/ppo.evz", "asterix", config, 3)
    assert_same_run(got, want)
    for k in params:
        np.testing.assert_array_equal(params[k], want_params[k], err_msg=k)


@pytest.mark.parametrize(
    "text",
    [
        "scan:\n  adv = exp(r * 1e30) * 1e30\n  vtarget = v\nobjective:\n  loss = -logp * adv\n",
        "scan:\n  adv = r\n  vtarget = v\nobjective:\n  loss = square(1e20 + v * 1e20)\n",
    ],
)
def test_diverging_programs_diverge_as_in_train(text: str) -> None:
    bad = dsl.parse(text)
    (got,) = evozero.train_many([bad], "breakout", SMALL, [0])
    want = train(bad, "breakout", SMALL, 0)
    assert got.status == "diverged"
    assert_same_run(got, want)


def test_what_train_many_does_not_support_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="native MinAtar games"):
        evozero.train_many("programs/ppo.evz", "CartPole-v1", SMALL, [0])
    with pytest.raises(ValueError, match="'mlp' only"):
        evozero.train_many("programs/ppo.evz", "breakout", SMALL.replace(network="conv"), [0])
    with pytest.raises(ValueError, match="seeds"):
        evozero.train_many("programs/ppo.evz", "breakout", SMALL, [-1])
    with pytest.raises(RuntimeError, match="unknown device"):
        evozero.train_many("programs/ppo.evz", "breakout", SMALL, [0], device="tpu")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"programs": "no/such.evz"}, "'no/such.evz' does not exist; give the path of a .evz"),
        ({"programs": "programs"}, "'programs' is a directory, not a file"),
        ({"programs": 3}, "a program must be a Program or the path of a .evz file, got 3"),
        ({"programs": [0]}, "a program must be a Program or the path of a .evz file, got 0"),
        ({"config": {"total_steps": 256}}, "config must be a TrainConfig, got dict"),
        ({"threads": 0}, "threads must be an integer from 1 to 4096, got 0"),
        ({"threads": 1.5}, "threads must be an integer from 1 to 4096, got 1.5"),
        ({"threads": 48, "device": "cuda"}, "a multiple of 32"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs: dict, message: str) -> None:
    args = {"programs": "programs/ppo.evz", "env": "breakout", "config": SMALL, "seeds": [0]}
    with pytest.raises(ValueError) as e:
        evozero.train_many(**{**args, **kwargs})
    assert message in str(e.value)


def test_train_names_a_missing_program_file_too() -> None:
    with pytest.raises(ValueError, match="'no/such.evz' does not exist"):
        train("no/such.evz", "breakout", SMALL, 0)


def test_programs_and_seeds_may_be_any_iterable_or_one_seed() -> None:
    programs = (p for p in ["programs/ppo.evz", "programs/a2c.evz"])  # a generator
    got = evozero.train_many(programs, "breakout", SMALL, 4)
    assert [r.seed for r in got] == [4, 4]
    assert_same_run(got[1], train("programs/a2c.evz", "breakout", SMALL, 4))


def test_cuda_without_a_gpu_says_what_is_missing(no_gpu) -> None:
    with pytest.raises(RuntimeError, match="CUDA extension|NVIDIA GPU"):
        evozero.train_many("programs/ppo.evz", "breakout", SMALL, [0], device="cuda")


def test_the_mlp_follows_the_dispatched_kernels_rounding() -> None:
    """Other numerics (4 unfused lanes, the baseline kernels; 16 fused lanes, AVX-512's)
    give other runs: the bit-exact tests above pin the block code to the rounding of the
    kernels this CPU dispatches (net.hpp), not merely to close values."""
    from evozero import _core
    from evozero.native.compile import compile_program

    it = _core.Interpreter(**compile_program(dsl.load("programs/ppo.evz")).arrays())
    c = SMALL

    def stats(**numerics):
        pop = _core.pack_population(
            "breakout",
            c.num_envs,
            c.sticky_action_prob,
            c.difficulty_ramping,
            c.minimal_action_set,
            0,
            [it],
            [0],
            [1],
            c.trainer_options(),
            **numerics,
        )
        return _core.train_many_host(pop, 1)["update_stats"][0]

    here = stats()
    np.testing.assert_array_equal(here, train("programs/ppo.evz", "breakout", c, 1).update_stats)
    others = [stats(lanes=4, fma=False), stats(lanes=16, fma=True)]
    assert any(not np.array_equal(here, o) for o in others)
    for o in others:  # the same maths, rounded otherwise
        np.testing.assert_allclose(o, here, rtol=1e-2, atol=1e-4)


def test_a_block_of_threads_runs_exactly_as_one_thread() -> None:
    """The block code on host blocks of 2, 3 and 7 threads (sharing the agent's memory,
    meeting at a barrier, as a CUDA block's threads): the same runs bit for bit, so its
    syncs and the owners of its reductions are right without a GPU."""
    from evozero import _core
    from evozero.native.compile import compile_program

    programs = [
        _core.Interpreter(**compile_program(dsl.load(f"programs/{n}.evz")).arrays())
        for n in ("ppo", "dpo", "td_ac")
    ]
    c = SMALL.replace(max_episode_steps=12)
    pop = _core.pack_population(
        "space_invaders",
        c.num_envs,
        c.sticky_action_prob,
        c.difficulty_ramping,
        c.minimal_action_set,
        c.max_episode_steps,
        programs,
        [0, 1, 2],
        [4, 5, 6],
        c.trainer_options(),
    )
    one = _core.train_many_host(pop, 1)
    assert (one["info"][:, 0] == 0).all() and (one["info"][:, 3] > 0).all()
    for k in (2, 3, 7):
        many = _core.train_many_host(pop, 1, block_threads=k)
        for key in ("info", "episode_returns", "episode_end_steps", "update_stats", "params"):
            np.testing.assert_array_equal(many[key], one[key], err_msg=f"{key}, {k} threads")
