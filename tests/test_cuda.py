"""The CUDA envs: a clear error where the build or the GPU is missing; on a GPU, bit-exact
with the CPU envs.

The GPU tests need evozero._cuda (``EVOZERO_CUDA=1 pip install .``) and a CUDA GPU, and
skip with the reason otherwise; ``bash benchmarks/gpu/check.sh <wheels>`` runs them.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from evozero.envs import GAMES, MinAtarVecEnv


def _gpu_missing() -> str:
    """Why the GPU tests cannot run here, or '' when they can."""
    try:
        from evozero import _cuda
    except ImportError:
        return "needs evozero._cuda (EVOZERO_CUDA=1 pip install .) and a CUDA GPU"
    count, why = _cuda.device_count()
    return "" if count else f"needs a CUDA GPU; the CUDA runtime says: {why}"


gpu = pytest.mark.skipif(bool(_gpu_missing()), reason=_gpu_missing() or "GPU present")


def test_unknown_device_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', got 'gpu'"):
        MinAtarVecEnv("breakout", 4, device="gpu")


def test_cuda_without_the_extension_names_the_build(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "evozero._cuda", None)  # import fails, as without it
    monkeypatch.delattr("evozero._cuda", raising=False)
    with pytest.raises(RuntimeError, match=r"CUDA extension.*EVOZERO_CUDA=1 pip install \."):
        MinAtarVecEnv("breakout", 4, device="cuda")


def test_cuda_without_a_gpu_names_the_gpu(monkeypatch) -> None:
    fake = types.ModuleType("evozero._cuda")
    fake.device_count = lambda: (0, "no CUDA-capable device is detected")
    monkeypatch.setitem(sys.modules, "evozero._cuda", fake)
    monkeypatch.setattr("evozero._cuda", fake, raising=False)
    with pytest.raises(RuntimeError, match="needs an NVIDIA GPU.*no CUDA-capable device"):
        MinAtarVecEnv("breakout", 4, device="cuda")


STEPS, ENVS = 400, 256  # 102,400 env-steps per game


@gpu
@pytest.mark.parametrize("game", GAMES)
def test_cuda_envs_equal_cpu_envs(game: str) -> None:
    """Same seeds and actions: identical observations, rewards, ends and final observations."""
    cpu = MinAtarVecEnv(game, ENVS, seed=7)
    dev = MinAtarVecEnv(game, ENVS, seed=7, device="cuda")
    obs_c, _ = cpu.reset()
    obs_d, _ = dev.reset()
    np.testing.assert_array_equal(obs_c, obs_d)
    rng = np.random.default_rng(0)
    ends = 0
    for t in range(STEPS):
        a = rng.integers(0, cpu.single_action_space.n, ENVS)
        c, d = cpu.step(a), dev.step(a)
        for x, y in zip(c[:4], d[:4], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=f"{game}, step {t}")
        assert c[4].keys() == d[4].keys(), f"{game}, step {t}"
        if c[4]:
            np.testing.assert_array_equal(c[4]["_final_obs"], d[4]["_final_obs"])
            for i in np.flatnonzero(c[4]["_final_obs"]):
                np.testing.assert_array_equal(c[4]["final_obs"][i], d[4]["final_obs"][i])
            ends += int(c[4]["_final_obs"].sum())
    assert ends > 0  # episode boundaries were crossed


@gpu
def test_cuda_op_kernels_equal_numpy_on_exact_ops() -> None:
    """The interpreter's exactly rounded ops give numpy's bits on the device."""
    from evozero import _cuda
    from evozero.program.ops import opcode

    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(4096).astype(np.float32) for _ in range(3))
    exact = {"add": a + b, "sub": a - b, "mul": a * b, "neg": -a, "square": a * a}
    for name, want in exact.items():
        np.testing.assert_array_equal(_cuda.op_values(opcode(name), a, b, c), want, err_msg=name)
