"""The trainer's parameter gradients equal PyTorch autograd of the same loss.

The native path is the trainer's: the C++ interpreter gives dloss/dlogp,
dloss/dv and dloss/dentropy per sample, and the C++ actor-critic backpropagates
them. The torch path is independent: the program's torch export computes the
loss, the same networks in torch compute logp, v and entropy, and autograd
differentiates the minibatch mean.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from evozero import _core
from evozero.export import export_source
from evozero.native import interpreter
from evozero.program import dsl

OBS, ACTIONS, N = 400, 5, 256

BENCHMARKS = str(Path(__file__).resolve().parents[1] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
import torch_ppo  # noqa: E402  the torch twins of the native networks


def _torch_module(program, tmp_path: Path):
    path = tmp_path / "rule.py"
    path.write_text(export_source(program, "torch"))
    spec = importlib.util.spec_from_file_location(f"rule_{id(program)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # our own generated file, not user text
    return module


def _torch_nets(params: dict[str, np.ndarray], network: str) -> dict[str, torch.nn.Module]:
    nets = {}
    for name, out in (("actor", ACTIONS), ("critic", 1)):
        if network == "conv":
            net = torch_ppo.MinAtarConv(OBS, out)
        else:
            net = torch_ppo.mlp(OBS, 64, out, 1.0)
        with torch.no_grad():
            for key, p in net.named_parameters():
                p.copy_(torch.from_numpy(params[f"{name}.{key}"]))
        nets[name] = net
    return nets


@pytest.mark.parametrize("network", ["mlp", "conv"])
@pytest.mark.parametrize("name", ["ppo", "dpo", "a2c", "reinforce"])
def test_native_gradients_equal_torch_autograd(name: str, network: str, tmp_path: Path) -> None:
    program = dsl.load(f"programs/{name}.evz")
    rng = np.random.default_rng(0)
    net = _core.testing.ActorCritic(OBS, ACTIONS, 64, network, 7, adam_eps=1e-5)
    # A sparse binary minibatch, as MinAtar gives: about 35 active cells of 400.
    dense = (rng.random((N, OBS)) < 35 / OBS).astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum(dense.sum(1))]).astype(np.int64)
    indices = np.flatnonzero(dense.reshape(-1)).astype(np.int32) % OBS
    actions = rng.integers(0, ACTIONS, N).astype(np.int64)
    logp, v, entropy = net.forward_sparse(indptr, indices, actions)
    batch = {
        "logp_old": (logp + rng.normal(0, 0.3, N)).astype(np.float32),
        "adv": rng.normal(0, 1, N).astype(np.float32),
        "v_old": (v + rng.normal(0, 0.3, N)).astype(np.float32),
        "vtarget": rng.normal(0, 1, N).astype(np.float32),
    }
    progress = 0.3

    # Native: interpreter coefficients, then the C++ backward pass of the mean loss.
    out = interpreter.run_objective(
        program, {"logp": logp, "v": v, "entropy": entropy, **batch}, progress
    )
    native = net.gradients_sparse(
        indptr, indices, actions, out.dloss_dlogp / N, out.dloss_dv / N, out.dloss_dentropy / N
    )

    # Torch: the exported objective, differentiated by autograd through the same networks.
    rule = _torch_module(program, tmp_path)
    nets = _torch_nets(net.parameters(), network)
    x = torch.from_numpy(dense)
    log_probs = torch.log_softmax(nets["actor"](x), dim=-1)
    t_logp = log_probs.gather(1, torch.from_numpy(actions)[:, None])[:, 0]
    t_entropy = -(log_probs.exp() * log_probs).sum(-1)
    t_v = nets["critic"](x)[:, 0]
    tb = {k: torch.from_numpy(a) for k, a in batch.items()}
    loss = rule.objective(
        t_logp, tb["logp_old"], tb["adv"], t_v, tb["v_old"], tb["vtarget"], t_entropy, progress
    )
    loss.mean().backward()

    np.testing.assert_allclose(
        float(loss.detach().mean()), float(out.loss.mean()), rtol=1e-4, atol=1e-6
    )
    for key, g in native.items():
        net_name, param = key.split(".", 1)
        expected = dict(nets[net_name].named_parameters())[param].grad.numpy()
        scale = max(np.abs(expected).max(), 1e-8)
        np.testing.assert_allclose(g, expected, rtol=0, atol=1e-4 * scale, err_msg=key)
