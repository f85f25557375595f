"""The figures of the run report, drawn with matplotlib (Agg, no display) and returned as
``data:`` URIs, so a report is one file that needs no network.

Each function takes plain data (numbers and names), not a run store: what the run holds
is read in :mod:`evozero.analysis.html_report`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["formula_uri", "learning_curves", "mean_ci", "pareto_front", "search_curve"]

#: Dots per inch of every figure (sharp on a slide, small in the file).
DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display: the figures go into the file
    import matplotlib.pyplot as plt

    return plt


def _uri(fig: Any) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def search_curve(points: Sequence[tuple[int, float, str | None]]) -> str:
    """Best fitness so far against the number of trained candidates.

    ``points`` holds ``(trained, fitness, rung)`` in the order results came; ``rung`` is
    ``None`` for searches without rungs, otherwise one line is drawn per rung.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    rungs = sorted({r for _, _, r in points}, key=lambda r: (r is not None, str(r)))
    for rung in rungs:
        xs = [n for n, _, r in points if r == rung]
        ys = np.maximum.accumulate([f for _, f, r in points if r == rung])
        ax.step(xs, ys, where="post", label="best so far" if rung is None else f"rung {rung}")
    ax.scatter(
        [n for n, _, _ in points], [f for _, f, _ in points], s=8, color="0.6", label="candidate"
    )
    ax.set_xlabel("trained candidates")
    ax.set_ylabel("fitness (ppo.evz = 1)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _uri(fig)


def pareto_front(
    everyone: Sequence[tuple[int, float]], front: Sequence[tuple[int, float, str]]
) -> str:
    """Fitness against complexity: every candidate that passed the suite, and the front
    (the hall of fame), labelled."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.scatter(
        [c for c, _ in everyone], [f for _, f in everyone], s=10, color="0.6", label="passed"
    )
    pts = sorted(front)
    ax.step([c for c, _, _ in pts], [f for _, f, _ in pts], where="post", color="C3")
    ax.scatter([c for c, _, _ in pts], [f for _, f, _ in pts], color="C3", label="hall of fame")
    for c, f, label in pts:
        ax.annotate(label, (c, f), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("complexity (live ops)")
    ax.set_ylabel("fitness (ppo.evz = 1)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _uri(fig)


def mean_ci(curves: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and a normal 95% interval over seeds (curves cut to the shortest)."""
    n = min(len(c) for c in curves)
    a = np.array([c[:n] for c in curves], dtype=float)
    mean = np.nanmean(a, axis=0)
    half = 1.96 * np.nanstd(a, axis=0, ddof=1) / np.sqrt(len(a)) if len(a) > 1 else 0 * mean
    return mean, mean - half, mean + half


def learning_curves(task: str, by_rule: Mapping[str, Sequence[Sequence[float]]]) -> str:
    """Episodic return against training progress on ``task``: per rule, the mean over
    seeds with a 95% interval."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    for label, curves in by_rule.items():
        mean, lo, hi = mean_ci(curves)
        x = np.linspace(0, 1, len(mean))
        ax.plot(x, mean, label=f"{label} (n={len(curves)})")
        ax.fill_between(x, lo, hi, alpha=0.2)
    ax.set_title(task, fontsize=10)
    ax.set_xlabel("fraction of training")
    ax.set_ylabel("episodic return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _uri(fig)


def formula_uri(tex: str) -> str | None:
    """``tex`` typeset by matplotlib's mathtext as a PNG ``data:`` URI, or None where
    mathtext cannot typeset it (the report then shows the LaTeX source)."""
    from matplotlib.mathtext import math_to_image

    buf = io.BytesIO()
    try:
        math_to_image(f"${tex}$", buf, dpi=DPI, format="png")
    except Exception:  # mathtext covers a subset of LaTeX (no cases environment, say)
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
