"""Train an actor-critic agent with an update program: ``evozero.train``.

The loop is the trainer skeleton of ARCHITECTURE.md and runs in C++ in one
call (GIL released): roll out ``num_steps`` on ``num_envs`` envs, run the
program's ``scan`` and ``post`` to get advantages and value targets, then
``update_epochs`` passes of ``num_minibatches`` shuffled minibatches in which
the program's ``objective`` gives the loss and its derivatives w.r.t. logp, v
and entropy, which are backpropagated through separate actor and critic MLPs
(Adam, global grad-norm clipping, linearly annealed learning rate).
Defaults follow PureJaxRL's MinAtar PPO.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np

Status = Literal["ok", "diverged", "error"]

#: Fraction of the budget at the end whose episodes make up the final return.
FINAL_FRACTION = 0.1
#: Number of equal step bins of the learning curve behind the area under it.
CURVE_BINS = 20


@dataclass(frozen=True)
class TrainConfig:
    """The fixed skeleton around an update program (PureJaxRL MinAtar PPO defaults).

    Attributes:
        total_steps: env steps of the whole run (all envs together).
        num_envs: envs stepped in parallel (B).
        num_steps: rollout length per update (T).
        update_epochs: passes over each rollout (E).
        num_minibatches: shuffled minibatches per pass (M); must divide B*T.
        lr: Adam learning rate at the start.
        anneal_lr: decay the learning rate linearly to 0 over the run.
        adam_eps: Adam epsilon (added to sqrt of the second moment, as optax).
        max_grad_norm: global gradient-norm clip over actor and critic together.
        hidden: width of both hidden layers of the actor and of the critic.
        sticky_action_prob: MinAtar sticky-action probability.
        difficulty_ramping: MinAtar difficulty ramping.
        minimal_action_set: MinAtar minimal action set (the ``-v1`` games).
        max_episode_steps: truncate episodes at this length (None: never).
    """

    total_steps: int = 1_000_000
    num_envs: int = 64
    num_steps: int = 128
    update_epochs: int = 4
    num_minibatches: int = 8
    lr: float = 5e-3
    anneal_lr: bool = True
    adam_eps: float = 1e-5
    max_grad_norm: float = 0.5
    hidden: int = 64
    sticky_action_prob: float = 0.1
    difficulty_ramping: bool = True
    minimal_action_set: bool = True
    max_episode_steps: int | None = None

    def __post_init__(self) -> None:
        positive_ints = ("total_steps", "num_envs", "num_steps", "update_epochs",
                         "num_minibatches", "hidden")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        for name in ("lr", "adam_eps", "max_grad_norm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"TrainConfig.{name} must be a positive number, got {value!r}")
        if not 0.0 <= self.sticky_action_prob <= 1.0:
            raise ValueError(
                f"TrainConfig.sticky_action_prob must be in [0, 1], got {self.sticky_action_prob}"
            )
        batch = self.num_envs * self.num_steps
        if batch % self.num_minibatches:
            raise ValueError(
                f"TrainConfig.num_minibatches ({self.num_minibatches}) must divide "
                f"num_envs * num_steps ({batch}); e.g. use a power of two"
            )
        if self.total_steps < batch:
            raise ValueError(
                f"TrainConfig.total_steps ({self.total_steps}) is less than one rollout "
                f"(num_envs * num_steps = {batch}); raise it or shrink the rollout"
            )
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(
                f"TrainConfig.max_episode_steps must be >= 1 or None, got {self.max_episode_steps}"
            )

    @property
    def num_updates(self) -> int:
        """Updates in the run: whole rollouts that fit in ``total_steps``."""
        return self.total_steps // (self.num_envs * self.num_steps)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated); unknown names are an error."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; known: {sorted(known)}")
        return TrainConfig(**{**asdict(self), **changes})


def final_return(returns: np.ndarray, end_steps: np.ndarray, total_steps: int) -> float:
    """Mean return of the episodes that ended in the last 10% of the steps (NaN if none)."""
    late = end_steps >= total_steps * (1 - FINAL_FRACTION)
    return float(np.mean(returns[late])) if late.any() else float("nan")


def learning_curve(
    returns: np.ndarray, end_steps: np.ndarray, total_steps: int, bins: int = CURVE_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Mean episodic return per equal step bin: ``(bin_end_steps, mean_returns)``.

    A bin in which no episode ended repeats the previous bin's value (NaN before the first).
    """
    edges = np.linspace(0, total_steps, bins + 1)
    which = np.clip(np.searchsorted(edges, end_steps, side="right") - 1, 0, bins - 1)
    curve = np.full(bins, np.nan)
    for b in range(bins):
        in_bin = returns[which == b]
        if in_bin.size:
            curve[b] = in_bin.mean()
        elif b:
            curve[b] = curve[b - 1]
    return edges[1:], curve


def area_under_curve(returns: np.ndarray, end_steps: np.ndarray, total_steps: int) -> float:
    """Mean of the binned learning curve over the run (empty leading bins count as NaN-free 0)."""
    _, curve = learning_curve(returns, end_steps, total_steps)
    return float(np.mean(np.nan_to_num(curve, nan=0.0)))


@dataclass(frozen=True)
class TrainResult:
    """What one training run returns.

    Attributes:
        env: the task trained on.
        seed: the run's seed.
        status: ``ok``; ``diverged`` (a non-finite value appeared; the run stopped
            early, what was learned until then is kept); or ``error`` (see message).
        message: why the run did not finish ``ok`` ("" otherwise).
        episode_returns: return of every finished episode, in order of ending.
        episode_end_steps: global env step at which each of those episodes ended.
        steps: env steps actually taken.
        total_steps: env steps the run was configured for.
        seconds: wall time of the training call.
    """

    env: str
    seed: int
    status: Status
    message: str
    episode_returns: np.ndarray
    episode_end_steps: np.ndarray
    steps: int
    total_steps: int
    seconds: float

    @property
    def final_return(self) -> float:
        """Mean return of episodes ending in the last 10% of the configured steps."""
        return final_return(self.episode_returns, self.episode_end_steps, self.total_steps)

    @property
    def auc(self) -> float:
        """Area under the learning curve, as the mean of its binned values."""
        return area_under_curve(self.episode_returns, self.episode_end_steps, self.total_steps)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        """The run's figures as plain JSON-ready values."""
        return {
            "env": self.env,
            "seed": self.seed,
            "status": self.status,
            "message": self.message,
            "final_return": self.final_return,
            "auc": self.auc,
            "episodes": int(self.episode_returns.size),
            "steps": self.steps,
            "seconds": self.seconds,
            "steps_per_second": self.steps_per_second,
        }
