"""The trainer's per-update statistics (``TrainResult.update_stats``) against the torch
twin replaying the same update, and their shape, range and names."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from evozero.native import codegen
from evozero.native.train import UPDATE_STATS, TrainConfig, train
from evozero.program import dsl

CONFIG = TrainConfig(
    total_steps=8 * 32 * 3,
    num_envs=8,
    num_steps=32,
    num_minibatches=4,
    update_epochs=2,
    hidden=32,
)


def test_the_generated_columns_are_the_python_ones() -> None:
    text = codegen.render()["update_stats.hpp"]
    names = re.search(r"kUpdateStatNames\[kNumUpdateStats\] = \{(.*)\};", text)
    assert names is not None
    assert names.group(1) == ", ".join(f'"{s}"' for s in UPDATE_STATS)


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_one_row_per_update_finite_and_entropy_in_range(name: str) -> None:
    result = train(f"programs/{name}.evz", "breakout", CONFIG, seed=1)
    assert result.status == "ok"
    assert result.update_stats.shape == (CONFIG.num_updates, len(UPDATE_STATS))
    assert np.isfinite(result.update_stats).all()
    entropy = result.update_stat("entropy")
    assert (entropy > 0).all() and (entropy <= math.log(3) + 1e-6).all()  # breakout: 3 actions
    assert (result.update_stat("approx_kl") >= 0).all()
    for coef in ("d_logp", "d_v", "d_entropy"):
        assert (result.update_stat(f"{coef}_std") >= 0).all()


def test_a_diverged_run_has_rows_only_for_completed_updates() -> None:
    result = train("programs/ppo.evz", "breakout", CONFIG.replace(lr=1e30), seed=0)
    assert result.status == "diverged"
    assert result.update_stats.shape[0] < CONFIG.num_updates
    assert np.isfinite(result.update_stats).all()


@pytest.mark.parametrize("name", ["ppo", "td_ac"])
def test_first_updates_stats_equal_the_torch_replay(name: str) -> None:
    """The twin replays update 0 on the recorded rollout, parameters and minibatch order;
    its entropy, loss, approx KL and the loss's derivatives w.r.t. logp, v and entropy,
    pooled over every minibatch, are the native row."""
    torch = pytest.importorskip("torch")
    from evozero.refine.twin import Checkpoint, TorchRule, replay_update

    program = dsl.load(f"programs/{name}.evz")
    result = train(program, "breakout", CONFIG, seed=3, hooks={"checkpoints": [0]})
    cp = Checkpoint.from_native(result.checkpoints[0], dtype=torch.float64)
    constants = {c.name: torch.tensor(c.value, dtype=torch.float64) for c in program.constants}
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
    replay_update(
        rule,
        cp,
        constants,
        num_minibatches=CONFIG.num_minibatches,
        max_grad_norm=CONFIG.max_grad_norm,
        adam_eps=CONFIG.adam_eps,
        on_minibatch=observe,
    )
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
