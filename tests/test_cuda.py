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


def _extension_missing() -> str:
    """Why the tests of the extension's host code cannot run here, or ''."""
    try:
        from evozero import _cuda  # noqa: F401
    except ImportError:
        return "needs evozero._cuda (EVOZERO_CUDA=1 pip install .); no GPU needed"
    return ""


extension = pytest.mark.skipif(bool(_extension_missing()), reason=_extension_missing() or "-")


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


def test_step_on_device_needs_the_cuda_envs() -> None:
    env = MinAtarVecEnv("breakout", 4, seed=0)
    env.reset()
    with pytest.raises(ValueError, match="step_on_device needs MinAtarVecEnv.*device='cuda'"):
        env.step_on_device(np.zeros(4, dtype=np.int64))


@extension
def test_dlpack_views_export_without_a_copy() -> None:
    """The export path of the device views, on host memory: consumers read the buffer in
    place, the exported tensor keeps the owner alive (and lets it go), and what the view
    cannot give is a clear error."""
    import gc
    import weakref

    from evozero import _cuda

    again = _cuda.host_view(np.zeros(2, dtype=np.float32))
    with pytest.raises(BufferError, match=r"copy=True is not supported.*clone"):
        again.__dlpack__(copy=True)
    with pytest.raises(BufferError, match="cannot be exported to another"):
        again.__dlpack__(dl_device=(2, 0))
    with pytest.raises(TypeError, match="dl_device must be a"):
        again.__dlpack__(dl_device="cuda")
    with pytest.raises(TypeError):
        _cuda.host_view(np.zeros(4, dtype=np.float64))  # never a silent converted copy

    class Owned(np.ndarray):  # an array that owns its memory and takes weak references
        pass

    a = Owned((3, 4), dtype=np.float32)
    a[...] = np.arange(12).reshape(3, 4)
    owner = weakref.ref(a)
    view = _cuda.host_view(a)
    assert view.__dlpack_device__() == (1, 0)
    assert view.shape == (3, 4) and view.dtype == "float32"
    b = np.from_dlpack(view)
    np.testing.assert_array_equal(b, a)
    a[1, 2] = -1.0  # the same memory
    assert b[1, 2] == -1.0
    del a, view
    gc.collect()
    assert owner() is not None  # b's tensor holds it
    del b
    gc.collect()
    assert owner() is None  # the consumer's deleter released it

    c = Owned(3, dtype=np.float32)
    owner = weakref.ref(c)
    capsule = _cuda.host_view(c).__dlpack__()
    del c
    gc.collect()
    assert owner() is not None
    del capsule  # never consumed: its destructor frees the tensor
    gc.collect()
    assert owner() is None

    torch = pytest.importorskip("torch")
    t = torch.from_dlpack(_cuda.host_view(np.full(5, 2.5, dtype=np.float32)))
    assert t.dtype == torch.float32 and t.tolist() == [2.5] * 5


@gpu
def test_step_on_device_gives_device_views_of_the_step() -> None:
    """Every output of every step, read back from the device views, equals the CPU envs'
    (episodes truncated at 7 steps, so ends and final observations occur)."""
    from evozero import _cuda

    kw = {"seed": 3, "max_episode_steps": 7}
    cpu, dev = (
        MinAtarVecEnv("breakout", 64, **kw),
        MinAtarVecEnv("breakout", 64, **kw, device="cuda"),
    )
    cpu.reset()
    dev.reset()
    rng = np.random.default_rng(0)
    for t in range(40):
        actions = rng.integers(0, cpu.single_action_space.n, 64)
        obs, reward, terminated, truncated, info = cpu.step(actions)
        out = dev.step_on_device(actions)
        assert out.obs.__dlpack_device__()[0] == 2  # kDLCUDA
        for view, want in zip(out[:4], (obs, reward, terminated, truncated), strict=True):
            assert view.shape == want.shape and view.dtype == str(want.dtype)
            np.testing.assert_array_equal(_cuda.to_numpy(view), want, err_msg=f"step {t}")
        final = np.zeros_like(obs)
        for i in np.flatnonzero(info.get("_final_obs", np.zeros(64, bool))):
            final[i] = info["final_obs"][i]
        np.testing.assert_array_equal(_cuda.to_numpy(out.final_obs), final, err_msg=f"step {t}")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("reading the views with torch needs a CUDA build of torch")
    got = torch.from_dlpack(out.obs)
    assert got.dtype == torch.bool and got.is_cuda
    np.testing.assert_array_equal(got.cpu().numpy(), obs)


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


# ---- train_many: the population trainer, one thread block per agent -------------------


def _population_config():
    from evozero.native.train import TrainConfig

    return TrainConfig(
        total_steps=3 * 8 * 16,
        num_envs=8,
        num_steps=16,
        update_epochs=2,
        num_minibatches=4,
        hidden=32,
        max_episode_steps=10,
    )


@gpu
def test_train_many_on_the_gpu_is_deterministic_and_independent_of_the_block_size() -> None:
    """Two launches give identical runs, and so do blocks of 32 and of 256 threads (every
    reduction has a fixed order and owner: agent.hpp)."""
    import evozero

    config = _population_config()
    programs = ["programs/ppo.evz", "programs/a2c.evz", "programs/dpo.evz"]
    runs = [
        evozero.train_many(programs, "breakout", config, [0, 1], device="cuda", threads=t)
        for t in (256, 256, 32)
    ]
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            assert (a.status, a.message, a.steps) == (b.status, b.message, b.steps)
            np.testing.assert_array_equal(a.episode_returns, b.episode_returns)
            np.testing.assert_array_equal(a.episode_end_steps, b.episode_end_steps)
            np.testing.assert_array_equal(a.update_stats, b.update_stats)


@gpu
def test_train_many_on_the_gpu_agrees_with_the_host() -> None:
    """The GPU runs the host's block code; only exp/log/expm1 of CUDA's libm may round
    differently from glibc's (by an ulp), so a short run takes the same actions and
    episodes and its statistics and parameters agree closely (not bit for bit)."""
    import evozero

    config = _population_config()
    programs = ["programs/ppo.evz", "programs/reinforce.evz"]
    gpu_runs, gpu_params = evozero.train_many(
        programs, "asterix", config, [3, 4], device="cuda", parameters=True
    )
    host_runs, host_params = evozero.train_many(
        programs, "asterix", config, [3, 4], device="cpu", parameters=True
    )
    for g, h in zip(gpu_runs, host_runs, strict=True):
        assert (g.status, g.steps) == (h.status, h.steps) == ("ok", config.run_steps)
        np.testing.assert_array_equal(g.episode_end_steps, h.episode_end_steps)
        np.testing.assert_array_equal(g.episode_returns, h.episode_returns)
        np.testing.assert_allclose(g.update_stats, h.update_stats, rtol=1e-3, atol=1e-5)
    for gp, hp in zip(gpu_params, host_params, strict=True):
        for k in gp:
            np.testing.assert_allclose(gp[k], hp[k], rtol=1e-3, atol=1e-5, err_msg=k)


@extension
def test_train_many_checks_the_packed_population_before_the_device() -> None:
    """_cuda.train_many's host side (no GPU needed): a malformed population is a
    ValueError naming the problem, raised before any CUDA call."""
    from evozero import _core, _cuda
    from evozero.native.compile import compile_program
    from evozero.program import dsl

    config = _population_config()
    it = _core.Interpreter(**compile_program(dsl.load("programs/ppo.evz")).arrays())
    pop = _core.pack_population(
        "breakout", 8, 0.1, True, True, 10, [it], [0, 0], [1, 2], config.trainer_options()
    )
    arrays = pop.arrays()
    with pytest.raises(ValueError, match="multiple of 32"):
        _cuda.train_many(arrays, 100)
    with pytest.raises(ValueError, match="lack 'params0'"):
        _cuda.train_many({k: v for k, v in arrays.items() if k != "params0"})
    with pytest.raises(ValueError, match="another build"):
        _cuda.train_many({**arrays, "config": arrays["config"][:-1]})
    with pytest.raises(ValueError, match="wrong dtype"):
        _cuda.train_many({**arrays, "agent_seed": arrays["agent_seed"].astype(np.float64)})
    with pytest.raises(ValueError, match="out of range"):
        _cuda.train_many({**arrays, "agent_program": np.array([0, 5], dtype=np.int32)})
