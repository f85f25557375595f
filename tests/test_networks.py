"""The native actor-critic networks (csrc/trainer) against PyTorch autograd.

The native side computes gradients of
    L = sum_i c_logp[i] * logp_i + c_v[i] * v_i + c_h[i] * entropy_i
with hand-written backward passes; here a torch copy of the same network (same
parameters) differentiates the same L, and one clipped Adam step is compared
with torch.optim.Adam after torch.nn.utils.clip_grad_norm_.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from evozero import _core  # noqa: E402
from evozero.native.train import TrainConfig  # noqa: E402

torch.set_num_threads(1)

BENCHMARKS = str(Path(__file__).resolve().parents[1] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
import torch_ppo  # noqa: E402  the PyTorch PPO baseline's conv network, checked here

#: The trainer's settings the networks take: evozero.TrainConfig's defaults.
DEFAULTS = TrainConfig()


# ---- helpers ------------------------------------------------------------------


def actor_critic(
    obs_size: int,
    num_actions: int,
    hidden: int = DEFAULTS.hidden,
    seed: int = 0,
    network: str = DEFAULTS.network,
) -> _core.testing.ActorCritic:
    """The native networks as the trainer builds them (Adam's eps: TrainConfig's)."""
    return _core.testing.ActorCritic(
        obs_size, num_actions, hidden, network, seed, adam_eps=DEFAULTS.adam_eps
    )


def torch_copy(net: _core.testing.ActorCritic) -> nn.ModuleDict:
    """A torch module with the native network's architecture and parameters."""

    def make(out: int) -> nn.Module:
        if net.network == "conv":
            return torch_ppo.MinAtarConv(net.obs_size, out)
        return torch_ppo.mlp(net.obs_size, net.hidden, out, 1.0)

    module = nn.ModuleDict({"actor": make(net.num_actions), "critic": make(1)})
    module.load_state_dict({k: torch.from_numpy(v) for k, v in net.parameters().items()})
    return module


def torch_outputs(module: nn.ModuleDict, obs: np.ndarray, actions: np.ndarray):
    x = torch.from_numpy(obs)
    log_probs = torch.log_softmax(module["actor"](x), dim=-1)
    logp = log_probs.gather(1, torch.from_numpy(actions.astype(np.int64))[:, None])[:, 0]
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    v = module["critic"](x)[:, 0]
    return logp, v, entropy


def torch_loss(module, obs, actions, c_logp, c_v, c_h):
    logp, v, entropy = torch_outputs(module, obs, actions)
    c = [torch.from_numpy(a) for a in (c_logp, c_v, c_h)]
    return (c[0] * logp + c[1] * v + c[2] * entropy).sum()


def torch_gradients(module, *batch) -> dict[str, np.ndarray]:
    module.zero_grad()
    torch_loss(module, *batch).backward()
    return {k: p.grad.numpy().copy() for k, p in module.named_parameters()}


def sparse_batch(rng: np.random.Generator, n: int, obs_size: int, density: float):
    """Binary observations as dense float32 rows and as CSR (indptr int64, indices int32)."""
    dense = rng.random((n, obs_size)) < density
    dense[0] = False  # one sample with no active cell
    indptr = np.concatenate([[0], np.cumsum(dense.sum(1))]).astype(np.int64)
    indices = np.nonzero(dense)[1].astype(np.int32)
    return dense.astype(np.float32), indptr, indices


def coefficients(rng: np.random.Generator, n: int, scale: float = 1.0):
    return tuple((scale * rng.standard_normal(n) / n).astype(np.float32) for _ in range(3))


def randomized(net: _core.testing.ActorCritic, rng: np.random.Generator, scale: float = 0.3):
    """Moves the parameters away from the init (non-zero biases, larger logits)."""
    params = {
        k: (v + scale * rng.standard_normal(v.shape)).astype(np.float32)
        for k, v in net.parameters().items()
    }
    net.set_parameters(params)
    return net


def assert_close_tensors(native: dict, reference: dict, rtol: float = 1e-4) -> None:
    assert native.keys() == reference.keys()
    for name, ref in reference.items():
        got = native[name]
        assert got.shape == ref.shape, name
        scale = max(float(np.abs(ref).max()), 1e-12)
        err = float(np.abs(got - ref).max())
        assert err <= rtol * scale, f"{name}: max error {err:.3g} vs max |grad| {scale:.3g}"


SHAPES = [  # obs_size, num_actions, hidden, density
    (400, 6, 64, 0.09),  # MinAtar breakout-like: ~35 of 400 cells active
    (4, 2, 64, 0.5),  # CartPole-sized input (tall first layer)
    (100, 3, 20, 0.2),  # hidden width that is not a multiple of the vector width
]


# ---- (a) gradients against torch autograd -------------------------------------


@pytest.mark.parametrize(("obs_size", "num_actions", "hidden", "density"), SHAPES)
def test_gradients_match_torch(obs_size, num_actions, hidden, density) -> None:
    rng = np.random.default_rng(obs_size + hidden)
    net = randomized(actor_critic(obs_size, num_actions, hidden, seed=1), rng)
    n = 203  # not a multiple of the row tile
    dense, indptr, indices = sparse_batch(rng, n, obs_size, density)
    actions = rng.integers(0, num_actions, n)
    c = coefficients(rng, n)
    reference = torch_gradients(torch_copy(net), dense, actions, *c)

    assert_close_tensors(net.gradients_sparse(indptr, indices, actions, *c), reference)
    # dense input with non-binary values
    real = rng.standard_normal((n, obs_size)).astype(np.float32)
    assert_close_tensors(
        net.gradients_dense(real, actions, *c), torch_gradients(torch_copy(net), real, actions, *c)
    )


def test_forward_matches_torch() -> None:
    rng = np.random.default_rng(7)
    net = randomized(actor_critic(400, 6, seed=3), rng, scale=0.5)
    dense, indptr, indices = sparse_batch(rng, 64, 400, 0.09)
    actions = rng.integers(0, 6, 64)
    expected = [t.detach().numpy() for t in torch_outputs(torch_copy(net), dense, actions)]
    for got in (net.forward_sparse(indptr, indices, actions), net.forward_dense(dense, actions)):
        for g, e in zip(got, expected, strict=True):
            assert g.dtype == np.float32
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_gradients_at_initialization_match_torch() -> None:
    rng = np.random.default_rng(11)
    net = actor_critic(400, 18, seed=5)
    dense, indptr, indices = sparse_batch(rng, 128, 400, 0.09)
    actions = rng.integers(0, 18, 128)
    c = coefficients(rng, 128)
    reference = torch_gradients(torch_copy(net), dense, actions, *c)
    assert_close_tensors(net.gradients_sparse(indptr, indices, actions, *c), reference)


# ---- (b) sparse and dense inputs agree ------------------------------------------


def test_sparse_and_dense_paths_identical() -> None:
    rng = np.random.default_rng(3)
    net = randomized(actor_critic(400, 6, seed=2), rng)
    dense, indptr, indices = sparse_batch(rng, 257, 400, 0.09)
    actions = rng.integers(0, 6, 257)
    c = coefficients(rng, 257)
    for a, b in zip(
        net.forward_sparse(indptr, indices, actions), net.forward_dense(dense, actions), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    gs = net.gradients_sparse(indptr, indices, actions, *c)
    gd = net.gradients_dense(dense, actions, *c)
    for name in gs:
        np.testing.assert_array_equal(gs[name], gd[name], err_msg=name)

    twin = actor_critic(400, 6, seed=2)
    twin.set_parameters(net.parameters())
    clip = DEFAULTS.max_grad_norm
    assert net.step_sparse(indptr, indices, actions, *c, lr=5e-3, max_grad_norm=clip) == (
        twin.step_dense(dense, actions, *c, lr=5e-3, max_grad_norm=clip)
    )
    for name, value in net.parameters().items():
        np.testing.assert_array_equal(value, twin.parameters()[name], err_msg=name)


# ---- (c) clipped Adam against torch ----------------------------------------------


@pytest.mark.parametrize("scale", [50.0, 0.01])  # global norm above / below max_grad_norm
def test_step_matches_torch_adam(scale: float) -> None:
    """step_sparse = gradients, clip to global norm 0.5, Adam(eps=1e-5), as torch does it.

    torch is given the native gradients (equal to its own autograd ones to float
    rounding, test (a)): Adam's first steps move a parameter with a gradient near
    eps by an amount that is very sensitive to that gradient, so feeding torch its
    own gradients would mostly test float32 summation order.
    """
    rng = np.random.default_rng(5)
    net = randomized(actor_critic(400, 6, seed=4), rng)
    module = torch_copy(net)
    params = dict(module.named_parameters())
    optimizer = torch.optim.Adam(module.parameters(), lr=1.0, eps=1e-5)
    for step, lr in enumerate([5e-3, 4e-3, 3e-3]):
        before = net.parameters()
        dense, indptr, indices = sparse_batch(rng, 256, 400, 0.09)
        actions = rng.integers(0, 6, 256)
        c = coefficients(rng, 256, scale)
        grads = net.gradients_sparse(indptr, indices, actions, *c)
        if step == 0:
            assert_close_tensors(grads, torch_gradients(module, dense, actions, *c))

        norm = net.step_sparse(indptr, indices, actions, *c, lr=lr, max_grad_norm=0.5)

        for name, g in grads.items():
            params[name].grad = torch.from_numpy(g)
        torch_norm = float(torch.nn.utils.clip_grad_norm_(module.parameters(), 0.5))
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()

        assert (torch_norm > 0.5) == (scale > 1)
        assert norm == pytest.approx(torch_norm, rel=1e-6)
        assert net.adam_count == step + 1
        for name, value in net.parameters().items():
            # compare the updates (each at most ~lr per element) to a few float32
            # ulps of the parameters (~0.5)
            np.testing.assert_allclose(
                value - before[name],
                params[name].detach().numpy() - before[name],
                rtol=0,
                atol=1e-4 * lr,
                err_msg=f"step {step}: {name}",
            )


def test_adam_step_with_given_gradients() -> None:
    """adam_step(grads) is optax: clip_by_global_norm(0.5) then adam(eps=1e-5)."""
    rng = np.random.default_rng(9)
    net = actor_critic(8, 3, hidden=16, seed=0)
    p = {k: v.astype(np.float64) for k, v in net.parameters().items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    for t in (1, 2, 3):
        grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in p.items()}
        norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))
        assert net.adam_step(grads, lr=1e-2, max_grad_norm=0.5) == pytest.approx(norm, rel=1e-6)
        for k, g in grads.items():
            g = g / norm * 0.5
            m[k] = 0.1 * g + 0.9 * m[k]
            v2[k] = 0.001 * g * g + 0.999 * v2[k]
            update = (m[k] / (1 - 0.9**t)) / (np.sqrt(v2[k] / (1 - 0.999**t)) + 1e-5)
            p[k] = p[k] - 1e-2 * update
    for k, value in net.parameters().items():
        np.testing.assert_allclose(value, p[k], rtol=0, atol=1e-6, err_msg=k)


def test_non_finite_gradient_is_not_applied() -> None:
    rng = np.random.default_rng(2)
    net = actor_critic(400, 6, seed=0)
    before = net.parameters()
    _, indptr, indices = sparse_batch(rng, 32, 400, 0.09)
    actions = rng.integers(0, 6, 32)
    c_logp, c_v, c_h = coefficients(rng, 32)
    c_v[3] = np.nan
    assert np.isnan(
        net.step_sparse(
            indptr,
            indices,
            actions,
            c_logp,
            c_v,
            c_h,
            lr=5e-3,
            max_grad_norm=DEFAULTS.max_grad_norm,
        )
    )
    assert net.adam_count == 0
    for k, v in net.parameters().items():
        np.testing.assert_array_equal(v, before[k])


# ---- (d) orthogonal initialization ------------------------------------------------


@pytest.mark.parametrize(("obs_size", "hidden"), [(400, 64), (4, 64), (100, 20)])
def test_orthogonal_init(obs_size: int, hidden: int) -> None:
    params = actor_critic(obs_size, 6, hidden=hidden, seed=0).parameters()
    gains = {"0": np.sqrt(2), "2": np.sqrt(2)}
    for name, w in params.items():
        if name.endswith("bias"):
            assert not w.any(), name
            continue
        gain = gains.get(name.split(".")[1], 0.01 if name.startswith("actor") else 1.0)
        w = w.astype(np.float64)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        np.testing.assert_allclose(gram, gain**2 * np.eye(len(gram)), atol=1e-5 * gain**2)


def test_init_is_deterministic() -> None:
    a = actor_critic(400, 6, seed=42).parameters()
    b = actor_critic(400, 6, seed=42).parameters()
    c = actor_critic(400, 6, seed=43).parameters()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        if name.endswith("weight"):
            assert not np.array_equal(a[name], c[name]), name
    # pinned values: the generator (mt19937_64, polar method, Gram-Schmidt) is
    # platform-independent, so these must never change
    w = actor_critic(3, 2, hidden=4, seed=123).parameters()["actor.0.weight"]
    assert w.tolist() == PINNED_ACTOR_0_WEIGHT


PINNED_ACTOR_0_WEIGHT = [
    [-1.4092923402786255, 0.019903136417269707, 0.06532247364521027],
    [0.046261016279459, -0.4388396143913269, -0.6208767294883728],
    [0.10173085331916809, -0.02008928172290325, 1.2554088830947876],
    [-0.03749273717403412, -1.3441057205200195, 0.18491490185260773],
]


# ---- (e) bad inputs ----------------------------------------------------------------


def test_bad_inputs_raise_value_error() -> None:
    net = actor_critic(10, 3, hidden=8)
    indptr = np.array([0, 2, 3], dtype=np.int64)
    indices = np.array([1, 4, 9], dtype=np.int32)
    actions = np.array([0, 2])
    c = np.zeros(2, dtype=np.float32)
    net.forward_sparse(indptr, indices, actions)  # the valid call
    net.forward_sparse(indptr, indices, actions.astype(np.int32))  # any integer dtype

    bad_sparse = [
        (indptr.astype(np.int32), indices, actions),  # indptr dtype
        (indptr, indices.astype(np.int64), actions),  # indices dtype
        (indptr, np.array([1, 4, 10], dtype=np.int32), actions),  # index >= obs_size
        (indptr, np.array([1, 4, -1], dtype=np.int32), actions),  # negative index
        (indptr, np.array([4, 1, 9], dtype=np.int32), actions),  # unsorted row
        (indptr, np.array([4, 4, 9], dtype=np.int32), actions),  # duplicate in a row
        (np.array([0, 2, 4], dtype=np.int64), indices, actions),  # indptr past the end
        (np.array([1, 2, 3], dtype=np.int64), indices, actions),  # indptr[0] != 0
        (np.array([0, 3, 2, 3], dtype=np.int64), indices, np.zeros(3, int)),  # decreasing
        (np.array([], dtype=np.int64), indices, actions),  # empty indptr
        (indptr[:, None], indices, actions),  # 2-D indptr
        (indptr, indices, np.array([0, 3])),  # action out of range
        (indptr, indices, np.array([0, -1])),  # negative action
        (indptr, indices, np.array([0.0, 1.0])),  # float actions
        (indptr, indices, np.array([0, 1, 2])),  # wrong length
        ([0, 2, 3], indices, actions),  # not an array
    ]
    for args in bad_sparse:
        with pytest.raises(ValueError):
            net.forward_sparse(*args)

    obs = np.zeros((2, 10), dtype=np.float32)
    for bad_obs in (obs.astype(np.float64), obs[:, :9], obs.reshape(-1), obs.astype(bool)):
        with pytest.raises(ValueError):
            net.forward_dense(bad_obs, actions)
    net.forward_dense(obs[:, ::1], actions)
    for bad_c in (c[:1], c.astype(np.float64), c[:, None]):
        with pytest.raises(ValueError):
            net.gradients_dense(obs, actions, c, bad_c, c)
        with pytest.raises(ValueError):
            net.step_sparse(indptr, indices, actions, bad_c, c, c, lr=1e-3, max_grad_norm=0.5)

    params = net.parameters()
    for broken in (
        {k: v for k, v in params.items() if k != "critic.4.bias"},  # missing key
        {**params, "extra": params["critic.4.bias"]},  # unknown key
        {**params, "actor.0.weight": params["actor.0.weight"].T},  # wrong shape
        {**params, "actor.0.bias": params["actor.0.bias"].astype(np.int32)},  # not float
    ):
        with pytest.raises(ValueError):
            net.set_parameters(broken)
        with pytest.raises(ValueError):
            net.adam_step(broken, lr=1e-3, max_grad_norm=0.5)
    for sizes in ((0, 3), (10, 0), (10, 3, 0), (-1, 3)):
        with pytest.raises(ValueError):
            actor_critic(*sizes)


@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_empty_batch(network: str) -> None:
    net = actor_critic(100, 3, hidden=8, network=network)
    empty = np.zeros(0, dtype=np.float32)
    logp, v, h = net.forward_sparse(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, int))
    assert logp.shape == v.shape == h.shape == (0,)
    grads = net.gradients_dense(
        np.zeros((0, 100), np.float32), np.zeros(0, int), empty, empty, empty
    )
    assert not any(g.any() for g in grads.values())


# ---- (e) the conv network (csrc/trainer/conv.hpp) ------------------------------------

CONV_SHAPES = [  # channels, num_actions, density
    (4, 6, 0.09),  # breakout-like: ~35 of 400 cells active
    (10, 18, 0.02),  # seaquest's channels, the full action set, few active cells
    (7, 3, 0.6),  # dense bit planes: every position reached by many cells
]


@pytest.mark.parametrize(("channels", "num_actions", "density"), CONV_SHAPES)
def test_conv_gradients_match_torch(channels: int, num_actions: int, density: float) -> None:
    rng = np.random.default_rng(channels)
    obs_size = 100 * channels
    net = randomized(actor_critic(obs_size, num_actions, seed=1, network="conv"), rng, 0.05)
    n = 203
    dense, indptr, indices = sparse_batch(rng, n, obs_size, density)
    actions = rng.integers(0, num_actions, n)
    c = coefficients(rng, n)
    reference = torch_gradients(torch_copy(net), dense, actions, *c)
    assert_close_tensors(net.gradients_sparse(indptr, indices, actions, *c), reference)
    # dense rows with real values: each value multiplies its filter column
    real = (rng.standard_normal((n, obs_size)) * (rng.random((n, obs_size)) < 0.3)).astype(
        np.float32
    )
    assert_close_tensors(
        net.gradients_dense(real, actions, *c), torch_gradients(torch_copy(net), real, actions, *c)
    )


def test_conv_gradients_match_torch_on_game_frames() -> None:
    """Real frames, where one patch is held by hundreds of samples (patches.hpp): the
    summed gradients of shared patches, against torch's per-sample ones."""
    from test_patches import csr, game_frames

    rng = np.random.default_rng(9)
    obs = game_frames("breakout", 512)
    net = randomized(actor_critic(obs.shape[1], 3, seed=2, network="conv"), rng, 0.05)
    actions = rng.integers(0, 3, len(obs))
    c = coefficients(rng, len(obs))
    reference = torch_gradients(torch_copy(net), obs, actions, *c)
    sparse = net.gradients_sparse(*csr(obs), actions, *c)
    assert_close_tensors(sparse, reference)
    for name, g in net.gradients_dense(obs, actions, *c).items():
        np.testing.assert_array_equal(g, sparse[name], err_msg=name)


def test_conv_forward_matches_torch_and_sparse_equals_dense() -> None:
    rng = np.random.default_rng(8)
    net = randomized(actor_critic(400, 6, seed=3, network="conv"), rng, scale=0.1)
    dense, indptr, indices = sparse_batch(rng, 64, 400, 0.09)
    actions = rng.integers(0, 6, 64)
    expected = [t.detach().numpy() for t in torch_outputs(torch_copy(net), dense, actions)]
    sparse = net.forward_sparse(indptr, indices, actions)
    for g, e in zip(sparse, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    for a, b in zip(sparse, net.forward_dense(dense, actions), strict=True):
        np.testing.assert_array_equal(a, b)
    c = coefficients(rng, 64)
    gs = net.gradients_sparse(indptr, indices, actions, *c)
    gd = net.gradients_dense(dense, actions, *c)
    for name in gs:
        np.testing.assert_array_equal(gs[name], gd[name], err_msg=name)


def test_conv_init_is_orthogonal_as_torch_flattens_it() -> None:
    net = actor_critic(400, 6, seed=0, network="conv")
    assert net.network == "conv"
    for name, w in net.parameters().items():
        if name.endswith("bias"):
            assert not w.any(), name
            continue
        gain = np.sqrt(2) if not name.endswith("5.weight") else 0.01 if "actor" in name else 1.0
        w = w.reshape(len(w), -1).astype(np.float64)  # torch's orthogonal_: all but dim 0
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        np.testing.assert_allclose(gram, gain**2 * np.eye(len(gram)), atol=1e-5 * gain**2)


def test_conv_step_matches_torch_adam() -> None:
    """One clipped Adam step of the conv networks equals torch's (as test (c) for the MLP)."""
    rng = np.random.default_rng(6)
    net = randomized(actor_critic(400, 6, seed=4, network="conv"), rng, 0.05)
    module = torch_copy(net)
    before = net.parameters()
    dense, indptr, indices = sparse_batch(rng, 128, 400, 0.09)
    actions = rng.integers(0, 6, 128)
    c = coefficients(rng, 128, 50.0)
    grads = net.gradients_sparse(indptr, indices, actions, *c)
    norm = net.step_sparse(indptr, indices, actions, *c, lr=1e-3, max_grad_norm=0.5)
    params = dict(module.named_parameters())
    for name, g in grads.items():
        params[name].grad = torch.from_numpy(g)
    assert norm == pytest.approx(float(nn.utils.clip_grad_norm_(module.parameters(), 0.5)), 1e-6)
    torch.optim.Adam(module.parameters(), lr=1e-3, eps=DEFAULTS.adam_eps).step()
    for name, value in net.parameters().items():
        np.testing.assert_allclose(
            value - before[name], params[name].detach().numpy() - before[name], atol=1e-7
        )


@pytest.mark.parametrize("obs_size", [4, 150, 0])
def test_conv_needs_minatar_bit_planes(obs_size: int) -> None:
    with pytest.raises(ValueError, match="10x10xC MinAtar observations|must be positive"):
        actor_critic(obs_size, 3, network="conv")


def test_conv_takes_at_most_64_channels() -> None:
    # one bit per channel in each cell's mask (csrc/trainer/conv.cpp)
    actor_critic(100 * 64, 3, network="conv")
    with pytest.raises(ValueError, match="at most 64 channels \\(got 65\\); use network 'mlp'"):
        actor_critic(100 * 65, 3, network="conv")


def test_unknown_network_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown network 'resnet'; use 'mlp' or 'conv'"):
        actor_critic(400, 3, network="resnet")
