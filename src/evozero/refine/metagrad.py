"""Meta-gradients of a rule's constants through unrolled updates (design: docs/REFINE.md).

From a native training run with the current constants, the trainer records pairs of
consecutive updates spread over the lifetime (checkpoints ``u .. u + K``). The first K
are replayed in torch (:func:`evozero.refine.twin.replay_update`, ``create_graph``) from
the recorded networks and Adam state, with the constants as functions of the
coordinates ``theta`` (:class:`~evozero.refine.constants.ConstantSpace`); the last one
is fresh on-policy data of the agent the native trainer reached after those K updates.
The meta-objective is the policy-gradient surrogate of the updated agent's return on
that data (as LPG, Oh et al. 2020, and MetaGrad, Xu et al. 2018):

    J(theta) = mean_i  exp(log pi_theta'(a_i | s_i) - log mu(a_i | s_i)) * A_i

with theta' the replayed parameters, mu the recorded behaviour policy and A the
normalized GAE(0.99, 1) advantages of the recorded rewards: discounted returns to the
rollout's end (bootstrapped there by the recorded critic) minus the recorded critic's
values. A fixed reference, not the rule's own, so the rule cannot move its target; and
lambda' = 1 leans on the critic only as a baseline, because the critic learned the
rule's own discount (with lambda' = 0.95, a detuned gamma 0.9 critic pulled gamma
further down: benchmarks/refine_detuned.py, README).
At the constants that produced the data, theta' equals the native parameters and the
ratio is 1, so dJ/dtheta' is the on-policy policy gradient of the return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from evozero.refine.constants import ConstantSpace
from evozero.refine.schedule import checkpoint_updates
from evozero.refine.twin import Checkpoint, TorchRule, forward, replay_update

__all__ = ["META_GAMMA", "META_LAMBDA", "MetaProblem", "checkpoint_updates", "reference_advantages"]

#: The reference discount and trace of the meta-objective's advantages.
META_GAMMA = 0.99
META_LAMBDA = 1.0


def reference_advantages(cp: Checkpoint) -> torch.Tensor:
    """Normalized GAE(META_GAMMA, META_LAMBDA) of a recorded rollout, (T * B,)."""
    ro = cp.rollout
    T = ro["r"].shape[0]
    delta = ro["r"] + META_GAMMA * (1 - ro["term"]) * ro["v_next"] - ro["v"]
    adv = torch.zeros_like(delta)
    g = torch.zeros_like(delta[0])
    for t in range(T - 1, -1, -1):
        g = delta[t] + META_GAMMA * META_LAMBDA * (1 - ro["reset"][t]) * g
        adv[t] = g
    adv = adv.reshape(-1)
    return (adv - adv.mean()) / (adv.std(unbiased=False) + 1e-8)


@dataclass
class MetaProblem:
    """The meta-objective of one set of recorded checkpoints (see the module doc)."""

    rule: TorchRule
    space: ConstantSpace
    windows: Sequence[Sequence[Checkpoint]]  # each: K inner updates + 1 validation
    num_minibatches: int
    max_grad_norm: float
    adam_eps: float

    def objective(self, theta: torch.Tensor, differentiable: bool = True) -> torch.Tensor:
        """J(theta), the mean over windows; differentiable in theta unless told not."""
        constants = self.space.torch_values(theta)
        total = theta.new_zeros(())
        for window in self.windows:
            *inner, val = window
            params, adam = None, None
            for cp in inner:
                params, adam = replay_update(
                    self.rule,
                    cp,
                    constants,
                    num_minibatches=self.num_minibatches,
                    max_grad_norm=self.max_grad_norm,
                    adam_eps=self.adam_eps,
                    params=params,
                    adam=adam,
                    create_graph=differentiable,
                )
            T, B = val.actions.shape
            logp, _, _, _ = forward(params, val.obs[:T].reshape(T * B, -1), val.actions.reshape(-1))
            ratio = torch.exp(logp - val.rollout["logp"].reshape(-1))
            total = total + (ratio * reference_advantages(val).to(logp.dtype)).mean()
        return total / len(self.windows)

    def value(self, theta: np.ndarray) -> float:
        """J at ``theta`` (no gradient)."""
        with torch.no_grad():
            t = torch.tensor(theta, dtype=self._dtype())
            return float(self.objective(t, differentiable=False))

    def _dtype(self) -> torch.dtype:
        return next(iter(self.windows[0][0].params_before.values())).dtype

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """J and dJ/dtheta at ``theta`` (numpy, float64)."""
        t = torch.tensor(theta, dtype=self._dtype(), requires_grad=True)
        value = self.objective(t)
        (grad,) = torch.autograd.grad(value, t)
        return float(value.detach()), grad.detach().double().numpy()


def windows_of(checkpoints: Sequence[Checkpoint], k: int) -> list[list[Checkpoint]]:
    """The runs of K + 1 consecutive updates among recorded checkpoints."""
    by_update = {cp.update: cp for cp in checkpoints}
    out = []
    for u in sorted(by_update):
        run = [by_update.get(u + i) for i in range(k + 1)]
        if all(run) and not any(u - 1 == w[0].update for w in out[-1:]):
            out.append(run)
    return out
