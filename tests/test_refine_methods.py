"""Refinement methods: domains of constants, ES on a known optimum, meta-gradient vs
finite differences of the same meta-objective."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from evozero.program import dsl
from evozero.refine.constants import ConstantSpace, domain_of
from evozero.refine.es import ESConfig, ESState, centered_ranks, es_step, quadratic_job
from evozero.search.backends import make_backend

PPO = dsl.load("programs/ppo.evz")


def test_constants_keep_their_domains() -> None:
    space = ConstantSpace.of(PPO)
    assert dict(zip(space.names, space.domains, strict=True)) == {
        "gamma": "unit",
        "lam": "unit",
        "eps": "positive",
        "c_v": "positive",
        "c_h": "positive",
    }
    assert domain_of("shift", -0.5) == "free"
    theta = space.initial_theta()
    assert space.values(theta) == PPO.constant_values  # the round trip is exact in float32
    for far in (-50.0, 50.0):
        vals = space.values(np.full(space.size, far))
        assert 0.0 <= vals["gamma"] <= 1.0 and 0.0 <= vals["lam"] <= 1.0
        assert vals["eps"] >= 0.0 and vals["c_h"] >= 0.0
    with pytest.raises(ValueError, match=r"unknown constant\(s\) \['nope'\]"):
        ConstantSpace.of(PPO, ["nope"])


def test_centered_ranks_put_failures_last() -> None:
    np.testing.assert_allclose(centered_ranks(np.array([3.0, math.nan, 1.0])), [0.5, -0.5, 0.0])


def _es(backend_name: str, iterations: int, **kw) -> np.ndarray:
    optimum = [1.0, -2.0, 0.5]
    state = ESState(np.zeros(3))
    rng = np.random.default_rng(0)
    config = ESConfig(pairs=8, sigma=0.1, lr=0.1)
    with make_backend(backend_name, quadratic_job, **kw) as backend:
        for _ in range(iterations):
            es_step(state, config, rng, backend, lambda x: {"x": x.tolist(), "optimum": optimum})
    return state.theta


def test_es_finds_a_known_optimum() -> None:
    theta = _es("serial", 150)
    np.testing.assert_allclose(theta, [1.0, -2.0, 0.5], atol=0.1)


def test_es_on_worker_processes_matches_serial() -> None:
    """The process backend returns results out of order; the step must not depend on it."""
    np.testing.assert_array_equal(_es("process", 3, workers=2), _es("serial", 3))


# ----------------------------------------------------------------------------- metagrad

torch = pytest.importorskip("torch")

from evozero.native.train import TrainConfig, train  # noqa: E402
from evozero.refine.metagrad import MetaProblem, checkpoint_updates  # noqa: E402
from evozero.refine.twin import Checkpoint, TorchRule  # noqa: E402


def test_checkpoint_updates_spread_over_the_lifetime() -> None:
    assert checkpoint_updates(10, 3, 1) == [0, 1, 3, 4, 6, 7]
    assert checkpoint_updates(10, 1, 2, offset=0.5) == [4, 5, 6]
    with pytest.raises(ValueError, match="too short"):
        checkpoint_updates(2, 1, 2)


@pytest.mark.parametrize(("k", "network"), [(1, "mlp"), (2, "mlp"), (1, "conv")])
def test_meta_gradient_equals_finite_differences(k: int, network: str) -> None:
    """dJ/dtheta by autograd through K unrolled updates equals central differences of
    the same J (float64, a small fixed problem), through either network."""
    config = TrainConfig(
        total_steps=4 * 8 * 4,
        num_envs=4,
        num_steps=8,
        num_minibatches=2,
        update_epochs=2,
        hidden=8,
        network=network,
    )
    run = train(PPO, "breakout", config, seed=2, hooks={"checkpoints": list(range(k + 1))})
    window = [Checkpoint.from_native(c, dtype=torch.float64) for c in run.checkpoints]
    space = ConstantSpace.of(PPO)
    problem = MetaProblem(
        TorchRule(PPO), space, [window], config.num_minibatches, config.max_grad_norm, 1e-5
    )
    theta = space.initial_theta()
    value, grad = problem.value_and_grad(theta)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    h = 1e-5
    fd = np.empty_like(grad)
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = h
        hi = problem.value(theta + step)
        lo = problem.value(theta - step)
        fd[i] = (hi - lo) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-3, atol=1e-7 + 1e-3 * np.abs(grad).max())


def test_metagrad_steps_report_the_return_their_runs_reached() -> None:
    """The live display shows what each meta-step's training reached (J itself is ~0
    at the current constants by construction, so it would say nothing)."""
    from evozero.refine.run import RefineSettings, event_line, iteration_steps, refine

    config = TrainConfig(total_steps=16384, num_envs=8, num_steps=32, num_minibatches=4)
    settings = RefineSettings(method="metagrad", config=config, pairs=1)
    settings = RefineSettings(
        method="metagrad", config=config, pairs=1, budget_steps=2 * iteration_steps(settings)
    )
    lines = []
    outcome = refine(
        PPO, settings, lambda e: lines.append(event_line("ppo", e)), validate_result=False
    )
    assert outcome.history and all(np.isfinite(e["return"]) for e in outcome.history)
    assert all(" | return " in line for line in lines) and len(lines) == len(outcome.history)


# ----------------------------------------------------------------------------- the command


def test_refine_command_es_writes_a_kept_rule_and_says_which_way(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from evozero.cli import app

    # A budget of 1.5 ES iterations (8 lifetimes of 2 updates each): one fits.
    args = ["refine", "programs/ppo.evz", "--method", "es", "--steps", "196608", "--train-steps"]
    args += ["16384", "--pairs", "4", "--seeds", "2", "--backend", "serial", "-o", str(tmp_path)]
    args += ["--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    import json

    (out,) = json.loads(result.stdout)
    assert out["verdict"].startswith("refined constants " + ("kept" if out["kept"] else "dropped"))
    if out["kept"]:  # only a kept refinement is written
        assert dsl.load(out["output"]).constant_values == out["refined"]
    else:
        assert out["output"] is None and not list(tmp_path.glob("*.evz"))
    assert out["original"] == PPO.constant_values and out["refined"] != out["original"]
    assert len(out["validation"]["original"]) == 2 and out["steps"] == 8 * 16384
    assert (out["env"], out["train_steps"]) == ("breakout", 16384)
    assert (out["validation"]["env"], out["validation"]["steps"]) == ("breakout", 16384)


def test_refine_command_trains_a_program_file_on_the_network_asked_for(tmp_path) -> None:
    from typer.testing import CliRunner

    from evozero.cli import app

    args = ["refine", "programs/ppo.evz", "--method", "es", "--steps", "32768", "--train-steps"]
    args += ["16384", "--pairs", "1", "--seeds", "2", "--backend", "serial", "-o", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--network", "CONV", "--json"])
    assert result.exit_code == 0, result.output
    (out,) = json.loads(result.stdout)
    assert out["network"] == "conv" and out["steps"] == 2 * 16384
    bad = CliRunner().invoke(app, [*args, "--network", "conv", "--env", "CartPole-v1"])
    assert bad.exit_code == 2 and "--network conv needs a native game" in bad.output
    run = CliRunner().invoke(app, ["refine", str(tmp_path), "--network", "conv"])
    assert run.exit_code == 2 and "--network is for a program file" in run.output


def test_refine_metagrad_without_torch_says_how_to_install(monkeypatch) -> None:
    from typer.testing import CliRunner

    from evozero.cli import app
    from evozero.cli import refine as cli_refine

    monkeypatch.setattr(cli_refine, "torch_available", lambda: False)
    result = CliRunner().invoke(app, ["refine", "programs/ppo.evz", "--method", "metagrad"])
    assert result.exit_code == 2
    assert "pip install 'evozero[refine]'" in result.output and "--method es" in result.output
