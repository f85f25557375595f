"""The PyTorch twin of the native trainer's learning phase (csrc/trainer/trainer.cpp).

Given what the native trainer recorded at an update (a checkpoint: the networks and Adam
moments before it, its rollout and each epoch's minibatch order; see the ``hooks`` of
:func:`evozero.native.train.train`), :func:`replay_update` redoes that update in torch:
the program's ``scan`` and ``post`` give advantages and value targets, then
``update_epochs`` passes over the same minibatches of the program's mean ``objective``,
backpropagated through the same actor and critic networks (the MLPs, or the conv
networks of ``network="conv"``; ReLU, categorical policy), the global gradient norm
clipped, one Adam step each with the update's annealed learning rate. It gives the
native parameters to float tolerance (tests/test_refine_twin.py), and it is
differentiable in the program's constants (``create_graph=True``), which is what
meta-gradients need (:mod:`evozero.refine.metagrad`).

The program runs through the op table's torch forms (:data:`evozero.program.ops.OPS`,
the definitions the torch export copies) with the constants as tensors; the batch ops
(mean, std, normalize) are written here in the input's dtype so they stay differentiable
and float64 works for finite-difference checks. Everything follows the dtype and device
of the tensors it is given (CPU or CUDA).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evozero.program import ops
from evozero.program.model import Component, Program
from evozero.program.vocabulary import INPUTS

__all__ = [
    "ADAM_B1",
    "ADAM_B2",
    "AdamState",
    "Checkpoint",
    "TorchRule",
    "adam_step",
    "forward",
    "replay_update",
]

#: Adam's betas as the native trainer holds them (float32; csrc/trainer/adam.hpp).
ADAM_B1 = float(np.float32(0.9))
ADAM_B2 = float(np.float32(0.999))

Params = dict[str, torch.Tensor]


# ----------------------------------------------------------------------------- program


def _batch_mean(x: torch.Tensor) -> torch.Tensor:
    return x.double().mean().to(x.dtype)


def _batch_std(x: torch.Tensor) -> torch.Tensor:
    d = x.double() - x.double().mean()
    return torch.sqrt((d * d).mean()).to(x.dtype)


_BATCH = {
    "mean": lambda x: _batch_mean(x).expand_as(x),
    "std": lambda x: _batch_std(x).expand_as(x),
    "normalize": lambda x: (x - _batch_mean(x)) / (_batch_std(x) + float(ops.NORM_EPS)),
}


class TorchRule:
    """A program's three components on torch tensors, constants given as tensors."""

    def __init__(self, program: Program) -> None:
        self.program = program

    def _run(
        self,
        comp: Component,
        env: dict[str, torch.Tensor],
        shape: tuple[int, ...],
        like: torch.Tensor,
    ) -> None:
        for ins in comp.instrs:
            args = [
                env[a]
                if isinstance(a, str)
                else torch.tensor(a, dtype=like.dtype, device=like.device)
                for a in ins.args
            ]
            if ins.op in _BATCH:
                env[ins.target] = _BATCH[ins.op](args[0].expand(shape))
            else:
                env[ins.target] = ops.OPS[ins.op].torch(*args)

    def _env(self, constants: Mapping[str, torch.Tensor], like: torch.Tensor, progress: float):
        env = {
            c.name: torch.as_tensor(c.value, dtype=like.dtype, device=like.device)
            for c in self.program.constants
        }
        env.update({k: v.to(like.dtype) for k, v in constants.items()})
        env["progress"] = torch.tensor(np.float32(progress), dtype=like.dtype, device=like.device)
        return env

    def scan(
        self,
        rollout: Mapping[str, torch.Tensor],
        progress: float,
        constants: Mapping[str, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(adv, vtarget)`` of a ``(T, B)`` rollout, scanning backwards as the trainer."""
        comp = self.program.scan
        r = rollout["r"]
        T, B = r.shape
        base = self._env(constants, r, progress)
        carry = {
            c.name: (
                torch.zeros(B, dtype=r.dtype, device=r.device)
                if c.init == "0"
                else rollout["v_next"][T - 1]
            )
            for c in comp.carries
        }
        adv: list[torch.Tensor] = [r[0]] * T
        vtarget: list[torch.Tensor] = [r[0]] * T
        for t in range(T - 1, -1, -1):
            env = dict(base)
            env.update({n: rollout[n][t] for n in INPUTS["scan"] if n != "progress"})
            env.update(carry)
            self._run(comp, env, (B,), r)
            adv[t] = env["adv"].expand(B)
            vtarget[t] = env["vtarget"].expand(B)
            carry = {c: env[c].expand(B) for c in comp.carry_names}
        return torch.stack(adv), torch.stack(vtarget)

    def post(
        self,
        adv: torch.Tensor,
        vtarget: torch.Tensor,
        v: torch.Tensor,
        r: torch.Tensor,
        progress: float,
        constants: Mapping[str, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(adv, vtarget)`` after ``post``, over the whole rollout."""
        env = self._env(constants, adv, progress)
        env.update({"adv": adv, "vtarget": vtarget, "v": v, "r": r})
        self._run(self.program.post, env, adv.shape, adv)
        return env["adv"].expand(adv.shape), env["vtarget"].expand(adv.shape)

    def objective(
        self,
        batch: Mapping[str, torch.Tensor],
        progress: float,
        constants: Mapping[str, torch.Tensor],
    ) -> torch.Tensor:
        """The per-sample loss of a minibatch (``logp, logp_old, adv, v, v_old, vtarget,
        entropy``); ``ratio = exp(logp - logp_old)`` as in the trainer."""
        logp = batch["logp"]
        env = self._env(constants, logp, progress)
        env.update(batch)
        env["ratio"] = torch.exp(logp - batch["logp_old"])
        self._run(self.program.objective, env, logp.shape, logp)
        return env["loss"].expand(logp.shape)


# ----------------------------------------------------------------------------- networks


def _mlp(params: Params, prefix: str, x: torch.Tensor) -> torch.Tensor:
    h = torch.relu(F.linear(x, params[f"{prefix}.0.weight"], params[f"{prefix}.0.bias"]))
    h = torch.relu(F.linear(h, params[f"{prefix}.2.weight"], params[f"{prefix}.2.bias"]))
    return F.linear(h, params[f"{prefix}.4.weight"], params[f"{prefix}.4.bias"])


def _conv(params: Params, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """The MinAtar paper's network (csrc/trainer/conv.hpp) on flat (n, 10 * 10 * C)
    bit planes in (y, x, c) order: Conv2d(C, 16, 3x3 valid) -> ReLU -> Linear(1024, 128)
    -> ReLU -> Linear(128, out)."""
    w = params[f"{prefix}.0.weight"]
    planes = x.reshape(len(x), 10, 10, w.shape[1]).permute(0, 3, 1, 2)
    h = torch.relu(F.conv2d(planes, w, params[f"{prefix}.0.bias"])).flatten(1)
    h = torch.relu(F.linear(h, params[f"{prefix}.3.weight"], params[f"{prefix}.3.bias"]))
    return F.linear(h, params[f"{prefix}.5.weight"], params[f"{prefix}.5.bias"])


def forward(
    params: Params, obs: torch.Tensor, actions: torch.Tensor | None = None
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logp of actions or None, value, entropy, log_probs)`` of the actor-critic: the
    MLPs or the conv networks, whichever the parameters are (a 4-d first weight: conv)."""
    net = _conv if params["actor.0.weight"].dim() == 4 else _mlp
    log_probs = torch.log_softmax(net(params, "actor", obs), dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    value = net(params, "critic", obs)[:, 0]
    logp = None if actions is None else log_probs.gather(1, actions[:, None])[:, 0]
    return logp, value, entropy, log_probs


# ----------------------------------------------------------------------------- Adam


@dataclass
class AdamState:
    """Adam's moments (named like the parameters) and its step count."""

    m: Params
    v: Params
    count: int


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with derivative 0 (not inf) at 0, where Adam's unused moments sit."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), 0.0)


def adam_step(
    params: Params, grads: Params, state: AdamState, lr: float, max_grad_norm: float, eps: float
) -> tuple[Params, AdamState]:
    """Clip the global gradient norm, then one Adam step, as csrc/trainer/adam.cpp."""
    names = list(params)
    norm = torch.sqrt(sum((grads[k].double() ** 2).sum() for k in names)).to(grads[names[0]].dtype)
    if max_grad_norm > 0 and np.isfinite(max_grad_norm):
        scale = torch.where(norm < max_grad_norm, torch.ones_like(norm), max_grad_norm / norm)
        grads = {k: grads[k] * scale for k in names}
    count = state.count + 1
    bc1 = float(np.float32(1.0 - ADAM_B1**count))
    bc2 = float(np.float32(1.0 - ADAM_B2**count))
    one_b1 = float(np.float32(1) - np.float32(ADAM_B1))
    one_b2 = float(np.float32(1) - np.float32(ADAM_B2))
    m, v, new = {}, {}, {}
    for k in names:
        g = grads[k]
        m[k] = one_b1 * g + ADAM_B1 * state.m[k]
        v[k] = one_b2 * (g * g) + ADAM_B2 * state.v[k]
        new[k] = params[k] + (-lr) * ((m[k] / bc1) / (_safe_sqrt(v[k] / bc2) + eps))
    return new, AdamState(m, v, count)


# ----------------------------------------------------------------------------- replay


@dataclass
class Checkpoint:
    """One update as the native trainer recorded it, as tensors (see the module doc)."""

    update: int
    progress: float
    lr: float
    params_before: Params
    params_after: Params
    adam: AdamState
    obs: torch.Tensor  # (T + 1, B, obs_size)
    rollout: dict[str, torch.Tensor]  # r, term, reset, v, v_next, logp, entropy: (T, B)
    adv: torch.Tensor  # the native scan + post
    vtarget: torch.Tensor
    actions: torch.Tensor  # (T, B) int64
    perms: torch.Tensor  # (E, T * B) int64

    @classmethod
    def from_native(
        cls, raw: Mapping[str, Any], dtype: torch.dtype = torch.float32, device: Any = "cpu"
    ) -> Checkpoint:
        """From one of ``TrainResult.checkpoints`` (numpy arrays)."""

        def t(a: Any) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a), device=device).to(dtype)

        def named(d: Mapping[str, Any]) -> Params:
            return {k: t(v) for k, v in d.items()}

        return cls(
            update=int(raw["update"]),
            progress=float(raw["progress"]),
            lr=float(raw["lr"]),
            params_before=named(raw["params_before"]),
            params_after=named(raw["params_after"]),
            adam=AdamState(named(raw["adam_m"]), named(raw["adam_v"]), int(raw["adam_count"])),
            obs=t(raw["obs"]),
            rollout={
                k: t(raw[k]) for k in ("r", "term", "reset", "v", "v_next", "logp", "entropy")
            },
            adv=t(raw["adv"]),
            vtarget=t(raw["vtarget"]),
            actions=torch.as_tensor(np.asarray(raw["actions"]), device=device),
            perms=torch.as_tensor(np.asarray(raw["perms"]), device=device),
        )


def replay_update(
    rule: TorchRule,
    cp: Checkpoint,
    constants: Mapping[str, torch.Tensor],
    *,
    num_minibatches: int,
    max_grad_norm: float,
    adam_eps: float,
    params: Params | None = None,
    adam: AdamState | None = None,
    create_graph: bool = False,
    on_minibatch: Callable[[Mapping[str, torch.Tensor]], None] | None = None,
) -> tuple[Params, AdamState]:
    """The update of ``cp`` redone in torch; returns the parameters and Adam state after it.

    Starts from ``params``/``adam`` (default: the checkpoint's) on the checkpoint's rollout
    and minibatch order. With ``create_graph`` the result is differentiable in
    ``constants`` and ``params`` (for meta-gradients); otherwise it is detached.
    ``on_minibatch``, if given, sees each minibatch's objective inputs and its per-sample
    ``loss`` (in the graph: derivatives need ``retain_graph=True``) before the step.
    """
    params = dict(cp.params_before if params is None else params)
    adam = cp.adam if adam is None else adam
    T, B = cp.actions.shape
    n = T * B // num_minibatches
    adv, vtarget = rule.scan({**cp.rollout}, cp.progress, constants)
    adv, vtarget = rule.post(adv, vtarget, cp.rollout["v"], cp.rollout["r"], cp.progress, constants)
    flat = {
        "adv": adv.reshape(-1),
        "vtarget": vtarget.reshape(-1),
        "logp_old": cp.rollout["logp"].reshape(-1),
        "v_old": cp.rollout["v"].reshape(-1),
    }
    obs = cp.obs[:T].reshape(T * B, -1)
    actions = cp.actions.reshape(-1)
    names = list(params)
    with torch.enable_grad():
        for epoch in cp.perms:
            for m in range(num_minibatches):
                rows = epoch[m * n : (m + 1) * n]
                leaves = {
                    k: (p if p.requires_grad else p.detach().requires_grad_(True))
                    for k, p in params.items()
                }
                logp, v, entropy, _ = forward(leaves, obs[rows], actions[rows])
                batch = {k: x[rows] for k, x in flat.items()}
                inputs = {"logp": logp, "v": v, "entropy": entropy, **batch}
                per_sample = rule.objective(inputs, cp.progress, constants)
                if on_minibatch is not None:
                    on_minibatch({**inputs, "loss": per_sample})
                loss = per_sample.mean()
                got = torch.autograd.grad(
                    loss, [leaves[k] for k in names], create_graph=create_graph, allow_unused=True
                )
                grads = {
                    k: torch.zeros_like(leaves[k]) if g is None else g
                    for k, g in zip(names, got, strict=True)
                }
                params, adam = adam_step(leaves, grads, adam, cp.lr, max_grad_norm, adam_eps)
                if not create_graph:
                    params = {k: p.detach() for k, p in params.items()}
                    adam = AdamState(
                        {k: x.detach() for k, x in adam.m.items()},
                        {k: x.detach() for k, x in adam.v.items()},
                        adam.count,
                    )
    return params, adam
