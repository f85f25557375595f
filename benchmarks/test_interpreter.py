"""Program interpreter throughput: native (csrc/interpreter) vs the numpy reference.

The units of work are the trainer's: ppo.evz's objective with its three derivatives on
one 1024-sample minibatch, and its scan (GAE) on a 128 x 64 rollout, plus post on the
same rollout. Figures are samples per second (median round); the native side is called
from Python through the binding (array checks and output allocation included), the way
the Python tests drive it; inside the C++ trainer there is not even that overhead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evozero.native.interpreter import NativeProgram
from evozero.program import dsl, evaluate

PPO = dsl.load(Path(__file__).parent.parent / "programs" / "ppo.evz")
T, B, N = 128, 64, 1024
TABLE = "interpreter samples/s (median)"


def _inputs() -> tuple[dict, dict, dict]:
    rng = np.random.default_rng(0)
    scan_in = {n: rng.normal(size=(T, B)).astype(np.float32) for n in evaluate.SCAN_INPUTS}
    scan_in["term"] = (rng.random((T, B)) < 0.02).astype(np.float32)
    scan_in["reset"] = scan_in["term"].copy()
    post_in = {n: rng.normal(size=(T, B)).astype(np.float32) for n in evaluate.POST_INPUTS}
    obj_in = {n: rng.normal(size=N).astype(np.float32) for n in evaluate.OBJECTIVE_INPUTS}
    obj_in["logp"] = np.log(rng.uniform(0.05, 1, N)).astype(np.float32)
    obj_in["logp_old"] = (obj_in["logp"] + rng.normal(0, 0.05, N)).astype(np.float32)
    return scan_in, post_in, obj_in


SCAN_IN, POST_IN, OBJ_IN = _inputs()
WORK = {"objective": N, "scan": T * B, "post": T * B}


def _runners(impl: str, component: str):
    native = NativeProgram(PPO, live=True)
    if component == "objective":
        return (
            (lambda: native.run_objective(OBJ_IN, 0.5))
            if impl == "native"
            else (lambda: evaluate.run_objective(PPO, OBJ_IN, 0.5))
        )
    if component == "scan":
        return (
            (lambda: native.run_scan(SCAN_IN, 0.5))
            if impl == "native"
            else (lambda: evaluate.run_scan(PPO, SCAN_IN, 0.5))
        )
    return (
        (lambda: native.run_post(POST_IN, 0.5))
        if impl == "native"
        else (lambda: evaluate.run_post(PPO, POST_IN, 0.5))
    )


@pytest.mark.parametrize("impl", ["native", "reference"])
@pytest.mark.parametrize("component", ["objective", "scan", "post"])
def test_interpreter(benchmark, figures, component: str, impl: str) -> None:
    benchmark.group = f"interpreter: ppo {component}"
    run = _runners(impl, component)
    run()
    rounds = 2000 if impl == "native" else 50
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=5)
    row = f"ppo {component} ({WORK[component]} samples)"
    figures(TABLE, row, impl, WORK[component] / benchmark.stats.stats.median)
    from conftest import _FIGURES

    r = _FIGURES[TABLE][row]
    if "native" in r and "reference" in r:
        figures(TABLE, row, "ratio", r["native"] / r["reference"])
