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
"""

from __future__ import annotations

import numpy as np
import pytest

from evozero import _core

N, OBS, ACTIONS, ACTIVE = 1024, 400, 6, 35
TABLE = "actor-critic update samples/s (median)"


def _batch():
    rng = np.random.default_rng(0)
    indices = np.sort(np.argsort(rng.random((N, OBS)), axis=1)[:, :ACTIVE], axis=1)
    dense = np.zeros((N, OBS), dtype=np.float32)
    np.put_along_axis(dense, indices, 1.0, axis=1)
    indptr = np.arange(0, N * ACTIVE + 1, ACTIVE, dtype=np.int64)
    actions = rng.integers(0, ACTIONS, N)
    c = [(rng.standard_normal(N) / N).astype(np.float32) for _ in range(3)]
    return dense, indptr, indices.reshape(-1).astype(np.int32), actions, c


def _record(figures, column: str, seconds: float) -> None:
    from conftest import _FIGURES

    figures(TABLE, "minibatch 1024", column, N / seconds)
    row = _FIGURES[TABLE]["minibatch 1024"]
    if "torch" in row:
        for native in ("native sparse", "native dense"):
            if native in row:
                figures(
                    TABLE,
                    "minibatch 1024",
                    f"ratio {native.split()[1]}",
                    row[native] / row["torch"],
                )


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
    _record(figures, f"native {form}", benchmark.stats.stats.median)


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

    actor, critic = mlp(ACTIONS), mlp(1)
    params = [*actor.parameters(), *critic.parameters()]
    optimizer = torch.optim.Adam(params, lr=5e-3, eps=1e-5)
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

    benchmark.pedantic(step, rounds=50, iterations=1, warmup_rounds=5)
    _record(figures, "torch", benchmark.stats.stats.median)
