"""Actor-critic update throughput: native (one core) vs PyTorch (one thread).

Both sides do the same unit of work per round: one minibatch of 1024 samples
through the separate 64x64 actor and critic MLPs of PureJaxRL's MinAtar PPO
(400 inputs, 6 actions), forward + backward of
L = sum(c_logp * logp + c_v * v + c_h * entropy), global-norm clipping and an
Adam step. The inputs look like MinAtar breakout observations: 35 of the 400
cells active. The native side takes them as sparse CSR indices (`step_sparse`,
the trainer's path) and, for reference, dense (`step_dense`); torch takes the
dense float32 matrix, as PureJaxRL's network does. Figures are samples/s
(median round) and the native / torch ratio.

The same for the conv networks (``network="conv"``: separate actor and critic,
Conv2d(4, 16, 3x3) -> ReLU -> Linear(1024, 128) -> ReLU -> head, the MinAtar paper's)
on 1024 real breakout observations (random play), against ``torch_ppo.MinAtarConv``:
the unit of work of the conv PPO's learning phase (benchmarks/test_conv_trainer.py
times the whole training), with less of the machine's noise. And the conv networks'
patch index of that minibatch (csrc/trainer/patches.hpp, built once per update for
actor and critic) alone, as the share of the native update's time it takes
(``patch_index_sparse``: a fresh index and its arrays copied out, so slightly more
than the update spends on it).
"""

from __future__ import annotations

import numpy as np
import pytest

from evozero import _core

N, OBS, ACTIONS, ACTIVE = 1024, 400, 6, 35
TABLE = "actor-critic update samples/s (median)"
CONV_TABLE = "conv actor-critic update samples/s (median), breakout observations"
INDEX_TABLE = "conv patch index of the breakout minibatch (median)"
BREAKOUT_ACTIONS = 3  # its minimal action set


def _batch():
    rng = np.random.default_rng(0)
    indices = np.sort(np.argsort(rng.random((N, OBS)), axis=1)[:, :ACTIVE], axis=1)
    dense = np.zeros((N, OBS), dtype=np.float32)
    np.put_along_axis(dense, indices, 1.0, axis=1)
    indptr = np.arange(0, N * ACTIVE + 1, ACTIVE, dtype=np.int64)
    actions = rng.integers(0, ACTIONS, N)
    c = [(rng.standard_normal(N) / N).astype(np.float32) for _ in range(3)]
    return dense, indptr, indices.reshape(-1).astype(np.int32), actions, c


def _record(figures, table: str, column: str, benchmark) -> None:
    """samples/s of one side into the table, and native / torch ("native sparse" ->
    "ratio sparse") once both are measured."""
    from conftest import _FIGURES

    if not benchmark.stats:  # --benchmark-disable: the step ran once, untimed
        return
    figures(table, "minibatch 1024", column, N / benchmark.stats.stats.median)
    row = _FIGURES[table]["minibatch 1024"]
    for native in [c for c in row if c.startswith("native") and "torch" in row]:
        figures(table, "minibatch 1024", "ratio" + native[6:], row[native] / row["torch"])


@pytest.mark.parametrize("form", ["sparse", "dense"])
def test_native_update(benchmark, figures, form: str) -> None:
    benchmark.group = "actor-critic update"
    dense, indptr, indices, actions, c = _batch()
    net = _core.testing.ActorCritic(OBS, ACTIONS, hidden=64, network="mlp", seed=0, adam_eps=1e-5)
    if form == "sparse":
        step = lambda: net.step_sparse(indptr, indices, actions, *c, lr=5e-3, max_grad_norm=0.5)  # noqa: E731
    else:
        step = lambda: net.step_dense(dense, actions, *c, lr=5e-3, max_grad_norm=0.5)  # noqa: E731
    benchmark.pedantic(step, rounds=200, iterations=1, warmup_rounds=10)
    _record(figures, TABLE, f"native {form}", benchmark)


def _torch_step(actor, critic, dense: np.ndarray, actions: np.ndarray, c, lr: float):
    """One update as the native step_*: forward, the loss L, backward, clip, Adam."""
    import torch
    from torch import nn

    params = [*actor.parameters(), *critic.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr, eps=1e-5)
    x, a = torch.from_numpy(dense), torch.from_numpy(actions)[:, None]
    c_logp, c_v, c_h = (torch.from_numpy(v) for v in c)

    def step() -> None:
        log_probs = torch.log_softmax(actor(x), dim=-1)
        logp = log_probs.gather(1, a)[:, 0]
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        v = critic(x)[:, 0]
        loss = (c_logp * logp + c_v * v + c_h * entropy).sum()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 0.5)
        optimizer.step()

    return step


def test_torch_update(benchmark, figures) -> None:
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.set_num_threads(1)
    benchmark.group = "actor-critic update"
    dense, _, _, actions, c = _batch()

    def mlp(out: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(OBS, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, out)
        )

    step = _torch_step(mlp(ACTIONS), mlp(1), dense, actions, c, lr=5e-3)
    benchmark.pedantic(step, rounds=50, iterations=1, warmup_rounds=5)
    _record(figures, TABLE, "torch", benchmark)


def _breakout_batch():
    """N breakout observations under random play (after 50 steps of 64 envs), as dense
    float32 rows and CSR, with random actions (of its 3) and loss coefficients."""
    from evozero.envs import MinAtarVecEnv

    env = MinAtarVecEnv("breakout", 64, seed=0, minimal_action_set=True)
    assert env.single_action_space.n == BREAKOUT_ACTIONS
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    rows = []
    for t in range(50 + N // 64):
        obs, *_ = env.step(rng.integers(0, env.single_action_space.n, 64))
        if t >= 50:
            rows.append(obs.reshape(64, -1).astype(np.float32))
    dense = np.concatenate(rows)
    active = dense != 0
    indptr = np.concatenate([[0], np.cumsum(active.sum(axis=1))]).astype(np.int64)
    indices = np.nonzero(active)[1].astype(np.int32)  # row-major: each row's cells in order
    actions = rng.integers(0, BREAKOUT_ACTIONS, N)
    c = [(rng.standard_normal(N) / N).astype(np.float32) for _ in range(3)]
    return dense, indptr, indices, actions, c


def test_native_conv_update(benchmark, figures) -> None:
    benchmark.group = "conv actor-critic update"
    dense, indptr, indices, actions, c = _breakout_batch()
    net = _core.testing.ActorCritic(
        dense.shape[1], BREAKOUT_ACTIONS, hidden=64, network="conv", seed=0, adam_eps=1e-5
    )
    step = lambda: net.step_sparse(indptr, indices, actions, *c, lr=1e-5, max_grad_norm=0.5)  # noqa: E731
    benchmark.pedantic(step, rounds=60, iterations=1, warmup_rounds=5)
    _record(figures, CONV_TABLE, "native", benchmark)


def test_torch_conv_update(benchmark, figures) -> None:
    torch = pytest.importorskip("torch")
    import torch_ppo  # benchmarks/ is on sys.path (rootdir-less test directory)

    torch.set_num_threads(1)
    benchmark.group = "conv actor-critic update"
    dense, _, _, actions, c = _breakout_batch()
    actor = torch_ppo.MinAtarConv(dense.shape[1], BREAKOUT_ACTIONS, 0.01)
    critic = torch_ppo.MinAtarConv(dense.shape[1], 1)
    step = _torch_step(actor, critic, dense, actions, c, lr=1e-5)
    benchmark.pedantic(step, rounds=30, iterations=1, warmup_rounds=3)
    _record(figures, CONV_TABLE, "torch", benchmark)


def test_native_conv_patch_index(benchmark, figures) -> None:
    benchmark.group = "conv actor-critic update"
    dense, indptr, indices, _, _ = _breakout_batch()
    benchmark.pedantic(
        lambda: _core.testing.patch_index_sparse(indptr, indices, dense.shape[1]),
        rounds=100,
        iterations=1,
        warmup_rounds=5,
    )
    if not benchmark.stats:  # --benchmark-disable
        return
    from conftest import _FIGURES

    figures(INDEX_TABLE, "minibatch 1024", "samples/s", N / benchmark.stats.stats.median)
    update = _FIGURES.get(CONV_TABLE, {}).get("minibatch 1024", {}).get("native")
    if update is not None:
        share = update / _FIGURES[INDEX_TABLE]["minibatch 1024"]["samples/s"]
        figures(INDEX_TABLE, "minibatch 1024", "share of the native update", share)
