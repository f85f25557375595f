"""The torch twin of the trainer against the native trainer, and the native hooks."""

from __future__ import annotations

import numpy as np
import pytest

from evozero.native.train import UPDATE_STATS, TrainConfig, train
from evozero.program import dsl

torch = pytest.importorskip("torch")

from evozero.refine.twin import Checkpoint, TorchRule, replay_update  # noqa: E402

CONFIG = TrainConfig(
    total_steps=8 * 32 * 3,
    num_envs=8,
    num_steps=32,
    num_minibatches=4,
    update_epochs=2,
    hidden=32,
)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _constants(program, device: str = "cpu"):
    return {c.name: torch.tensor(c.value, device=device) for c in program.constants}


def _replay(rule, cp, constants, **kwargs):
    """replay_update with CONFIG's settings."""
    return replay_update(
        rule,
        cp,
        constants,
        num_minibatches=CONFIG.num_minibatches,
        max_grad_norm=CONFIG.max_grad_norm,
        adam_eps=CONFIG.adam_eps,
        **kwargs,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("name", "network"), [("ppo", "mlp"), ("a2c", "mlp"), ("td_ac", "mlp"), ("ppo", "conv")]
)
def test_one_update_in_torch_equals_the_native_update(name: str, network: str, device: str):
    """Same parameters, Adam state, rollout and minibatch order: the twin's parameters
    after a whole update (E epochs x M minibatches) are the native trainer's, for the
    MLPs and the conv networks. Update 2 starts from trained networks and non-zero Adam
    moments."""
    program = dsl.load(f"programs/{name}.evz")
    config = CONFIG.replace(network=network)
    result = train(program, "breakout", config, seed=3, hooks={"checkpoints": [0, 2]})
    assert [c["update"] for c in result.checkpoints] == [0, 2]
    rule = TorchRule(program)
    for raw in result.checkpoints:
        cp = Checkpoint.from_native(raw, device=device)
        constants = _constants(program, device)
        adv, vtarget = rule.scan(cp.rollout, cp.progress, constants)
        adv, vtarget = rule.post(
            adv, vtarget, cp.rollout["v"], cp.rollout["r"], cp.progress, constants
        )
        np.testing.assert_allclose(adv.cpu(), cp.adv.cpu(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(vtarget.cpu(), cp.vtarget.cpu(), rtol=1e-5, atol=1e-6)
        params, adam = _replay(rule, cp, constants)
        assert adam.count == cp.adam.count + CONFIG.update_epochs * CONFIG.num_minibatches
        output_bias = "5.bias" if network == "conv" else "4.bias"
        assert {k for k in cp.params_after if k.endswith(output_bias)} == {
            "actor." + output_bias,
            "critic." + output_bias,
        }  # the checkpoint holds this network's tensors
        for k, want in cp.params_after.items():
            moved = (want - cp.params_before[k]).abs().max().item()
            assert moved > 1e-4 or k.endswith(output_bias)  # the update did change them
            np.testing.assert_allclose(params[k].cpu(), want.cpu(), rtol=0, atol=2e-6, err_msg=k)


def test_hooks_start_from_given_parameters_and_leave_the_run_unchanged() -> None:
    program = dsl.load("programs/ppo.evz")
    plain = train(program, "breakout", CONFIG, seed=5)
    hooked = train(program, "breakout", CONFIG, seed=5, hooks={"checkpoints": [1]})
    np.testing.assert_array_equal(plain.episode_returns, hooked.episode_returns)
    assert plain.checkpoints == ()
    start = {k: v * 0.5 for k, v in hooked.checkpoints[0]["params_after"].items()}
    again = train(
        program,
        "breakout",
        CONFIG,
        seed=5,
        hooks={"initial_parameters": start, "checkpoints": [0], "stop_after_checkpoints": True},
    )
    assert again.steps == CONFIG.num_envs * CONFIG.num_steps  # stopped after update 0
    for k, v in start.items():
        np.testing.assert_array_equal(again.checkpoints[0]["params_before"][k], v)


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ({"initial_parameters": {}}, "initial_parameters lack 'actor.0.weight'"),
        ({"checkpoints": [3, 1]}, "ascending order"),
    ],
)
def test_bad_hooks_are_one_clear_error(hooks: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train("programs/ppo.evz", "breakout", CONFIG, seed=0, hooks=hooks)


@pytest.mark.parametrize("name", ["ppo", "td_ac"])
def test_the_update_stats_equal_the_torch_replay(name: str) -> None:
    """The twin replays update 0 on the recorded rollout, parameters and minibatch order;
    its entropy, loss, approx KL and the loss's derivatives w.r.t. logp, v and entropy,
    pooled over every minibatch, are the native row."""
    program = dsl.load(f"programs/{name}.evz")
    result = train(program, "breakout", CONFIG, seed=3, hooks={"checkpoints": [0]})
    cp = Checkpoint.from_native(result.checkpoints[0], dtype=torch.float64)
    constants = _constants(program)
    seen: dict[str, list] = {
        k: [] for k in ("entropy", "loss", "approx_kl", "d_logp", "d_v", "d_entropy")
    }

    def observe(mb) -> None:
        grads = torch.autograd.grad(
            mb["loss"].sum(), [mb["logp"], mb["v"], mb["entropy"]], retain_graph=True
        )
        log_ratio = (mb["logp"] - mb["logp_old"]).detach()
        seen["entropy"].append(mb["entropy"].detach())
        seen["loss"].append(mb["loss"].detach())
        seen["approx_kl"].append(torch.expm1(log_ratio) - log_ratio)
        for key, g in zip(("d_logp", "d_v", "d_entropy"), grads, strict=True):
            seen[key].append(g)

    rule = TorchRule(program)
    _replay(rule, cp, constants, on_minibatch=observe)
    assert len(seen["loss"]) == CONFIG.update_epochs * CONFIG.num_minibatches
    pooled = {k: torch.cat(v).numpy() for k, v in seen.items()}
    want = {k: pooled[k].mean() for k in ("entropy", "loss", "approx_kl")}
    for coef in ("d_logp", "d_v", "d_entropy"):
        want[f"{coef}_mean"] = pooled[coef].mean()
        want[f"{coef}_std"] = pooled[coef].std()
    got = result.update_stats[0]
    for k, value in want.items():
        np.testing.assert_allclose(
            got[UPDATE_STATS.index(k)], value, rtol=1e-4, atol=1e-6, err_msg=k
        )
