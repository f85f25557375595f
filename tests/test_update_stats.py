"""The trainer's per-update statistics (``TrainResult.update_stats``): their names, shape
and range (tests/test_refine_twin.py checks their values against the torch twin)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from evozero.native import codegen
from evozero.native.train import UPDATE_STATS, TrainConfig, train

CONFIG = TrainConfig(total_steps=4 * 16 * 4, num_envs=4, num_steps=16, num_minibatches=2, hidden=16)


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
