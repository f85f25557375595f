"""Antithetic evolution strategies (OpenAI-ES, Salimans et al. 2017, arXiv:1703.03864)
over a rule's constants, with any black-box objective run on the search backends.

One iteration at the mean ``theta``: draw ``pairs`` Gaussian directions ``e_i``, evaluate
``f(theta + sigma e_i)`` and ``f(theta - sigma e_i)`` as jobs on a backend
(:func:`evozero.search.backends.make_backend`: serial, process or Ray), turn the 2n
fitnesses into centered ranks in [-0.5, 0.5] (fitness shaping, which makes the step
invariant to the objective's scale and robust to outliers and failed runs), and move
``theta`` by Adam (ascent) along ``g = sum_i (u+_i - u-_i) e_i / (2 n sigma)``.

The objective is a module-level job ``fn(payload) -> {"fitness": float, ...}``:
:func:`train_job` (the native trainer: mean final return over seeds) for refinement,
:func:`quadratic_job` (a known optimum) for tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evozero.search.backends import Backend
from evozero.status import Status

__all__ = ["ESConfig", "ESState", "centered_ranks", "es_step", "quadratic_job", "train_job"]


@dataclass(frozen=True)
class ESConfig:
    """Settings of the search (no defaults: ``RefineSettings`` holds refine's)."""

    pairs: int
    sigma: float
    lr: float

    def __post_init__(self) -> None:
        if self.pairs < 1 or not self.sigma > 0 or not self.lr > 0:
            raise ValueError("ES needs pairs >= 1, sigma > 0 and lr > 0")


@dataclass
class ESState:
    """The mean and the Adam moments of the search."""

    theta: np.ndarray
    m: np.ndarray = field(default=None)  # type: ignore[assignment]
    v: np.ndarray = field(default=None)  # type: ignore[assignment]
    t: int = 0

    def __post_init__(self) -> None:
        self.theta = np.asarray(self.theta, dtype=float).copy()
        self.m = np.zeros_like(self.theta) if self.m is None else self.m
        self.v = np.zeros_like(self.theta) if self.v is None else self.v

    def ascend(self, grad: np.ndarray, lr: float) -> None:
        """One Adam step up ``grad`` (b1 0.9, b2 0.999, eps 1e-8)."""
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad * grad
        mh = self.m / (1 - 0.9**self.t)
        vh = self.v / (1 - 0.999**self.t)
        self.theta = self.theta + lr * mh / (np.sqrt(vh) + 1e-8)


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` scaled to [-0.5, 0.5]; NaN (a failed run) ranks lowest."""
    x = np.where(np.isnan(x), -np.inf, np.asarray(x, dtype=float))
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    return ranks / max(len(x) - 1, 1) - 0.5


def evaluate_all(backend: Backend, payloads: list[dict]) -> list[dict | None]:
    """Runs every payload on ``backend``; each result, or None where the job failed."""
    results: list[dict | None] = [None] * len(payloads)
    pending = list(range(len(payloads)))
    while pending or backend.in_flight():
        while pending and backend.in_flight() < backend.slots:
            i = pending.pop(0)
            backend.submit(i, payloads[i])
        for out in backend.wait(timeout=1.0):
            results[out.job_id] = out.result
    return results


def fitness_of(result: dict | None) -> float:
    """A job's fitness; NaN for a failed job or run."""
    if result is None or result.get("fitness") is None:
        return math.nan
    return float(result["fitness"])


def es_step(
    state: ESState,
    config: ESConfig,
    rng: np.random.Generator,
    backend: Backend,
    payload: Callable[[np.ndarray], dict],
) -> list[dict | None]:
    """One iteration (see the module doc); returns the 2n job results (+ then -)."""
    eps = rng.standard_normal((config.pairs, state.theta.size))
    points = [state.theta + config.sigma * e for e in eps] + [
        state.theta - config.sigma * e for e in eps
    ]
    results = evaluate_all(backend, [payload(p) for p in points])
    fit = np.array([fitness_of(r) for r in results])
    u = centered_ranks(fit)
    n = config.pairs
    grad = ((u[:n] - u[n:])[:, None] * eps).sum(0) / (2 * n * config.sigma)
    state.ascend(grad, config.lr)
    return results


# ----------------------------------------------------------------------------- jobs


def quadratic_job(payload: dict) -> dict:
    """``-|x - optimum|^2``: a toy objective whose maximum is known (tests, demos)."""
    x = np.asarray(payload["x"], float)
    return {"fitness": -float(((x - np.asarray(payload["optimum"], float)) ** 2).sum())}


def train_job(payload: dict) -> dict:
    """Mean final return of the native trainer over seeds (failed runs count as NaN).

    ``payload``: ``program`` (.evz text), ``env``, ``config`` (TrainConfig fields),
    ``seeds``. Returns ``fitness``, ``steps`` and the per-seed ``returns``.
    """
    from evozero.native.train import TrainConfig, train
    from evozero.program import dsl

    program = dsl.parse(payload["program"])
    config = TrainConfig(**payload["config"])
    returns, steps = [], 0
    for seed in payload["seeds"]:
        r = train(program, payload["env"], config, seed=int(seed))
        steps += r.steps
        returns.append(r.final_return if r.status is Status.OK else math.nan)
    fit = float(np.mean(returns)) if returns and not np.isnan(returns).all() else math.nan
    return {"fitness": None if math.isnan(fit) else fit, "steps": steps, "returns": _json(returns)}


def _json(xs: list[float]) -> list[Any]:
    return [None if math.isnan(x) else x for x in xs]
