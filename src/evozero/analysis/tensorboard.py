"""TensorBoard logs of training runs (``eval --tensorboard``) and searches
(``evolve --tensorboard``).

The writer is ``tensorboardX``'s ``SummaryWriter`` (the optional extra
``evozero[tensorboard]``: it needs only numpy and protobuf), or PyTorch's
``torch.utils.tensorboard`` where the ``tensorboard`` package is installed; without
either, :func:`summary_writer` raises :class:`TensorBoardMissing` saying how to install it.

What is logged is what evozero records. The native trainer returns every episode's return
and the step it ended at, and per update the statistics of its learning phase
(:data:`evozero.native.train.UPDATE_STATS`, over all its epochs' minibatches). So a
training run logs CleanRL's ``charts/episodic_return`` per episode and its mean per
update; per update ``losses/entropy``, ``losses/loss`` (the program's objective) and
``losses/approx_kl``, and ``coefficients/<name>_mean`` and ``_std`` of the objective's
per-sample derivatives w.r.t. logp, v and entropy (``d_logp``, ``d_v``, ``d_entropy``),
at the env step that ends the update; and the run's summary. A
search logs its curve (fitness and best fitness against trained candidates, per rung
when candidates have one) and its counts by status. Logs are written when the run or
search ends, from what it returned or stored.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from evozero.native.train import UPDATE_STATS

if TYPE_CHECKING:
    from evozero.native.train import TrainConfig, TrainResult
    from evozero.search.store import RunStore

__all__ = [
    "INSTALL",
    "TensorBoardMissing",
    "check_available",
    "log_search",
    "log_training",
    "stat_tag",
    "summary_writer",
]

#: How to get a writer, for the one-line error.
INSTALL = "pip install 'evozero[tensorboard]' (tensorboardX)"


class TensorBoardMissing(ImportError):
    """No TensorBoard writer library is installed."""


def _writer_class() -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs `tensorboard`
        except ImportError:
            raise TensorBoardMissing(f"TensorBoard logs need tensorboardX: {INSTALL}") from None
    return SummaryWriter


def check_available() -> None:
    """Raise :class:`TensorBoardMissing` now, before any work, if no writer is installed."""
    _writer_class()


def summary_writer(logdir: str | os.PathLike[str]) -> Any:
    """A ``SummaryWriter`` that writes event files into ``logdir``."""
    return _writer_class()(str(logdir))


def stat_tag(name: str) -> str:
    """The chart of one of :data:`~evozero.native.train.UPDATE_STATS`: CleanRL's
    ``losses/`` for entropy, loss and approx KL, ``coefficients/`` for the derivatives."""
    return f"coefficients/{name}" if name.startswith("d_") else f"losses/{name}"


def log_training(writer: Any, result: TrainResult, config: TrainConfig) -> None:
    """One training run: each episode's return at the env step it ended, the mean return
    of the episodes that ended in each update, each update's learning statistics, and
    the run's summary."""
    steps = np.asarray(result.episode_end_steps, dtype=np.int64)
    returns = np.asarray(result.episode_returns, dtype=float)
    for step, ret in zip(steps, returns, strict=True):
        writer.add_scalar("charts/episodic_return", float(ret), int(step))
    per_update = config.num_envs * config.num_steps
    update = (
        steps - 1
    ) // per_update  # an episode ending at step k (1-based) ends in update (k-1)//n
    for u in np.unique(update):
        mean = float(returns[update == u].mean())
        writer.add_scalar("charts/mean_episodic_return_per_update", mean, int((u + 1) * per_update))
    for u, row in enumerate(result.update_stats):
        step = (u + 1) * per_update
        for name, value in zip(UPDATE_STATS, row, strict=True):
            writer.add_scalar(stat_tag(name), float(value), step)
    writer.add_scalar("summary/final_return", result.final_return, result.steps)
    writer.add_scalar("summary/auc", result.auc, result.steps)
    writer.add_scalar("summary/steps_per_second", result.steps_per_second, result.steps)
    writer.add_text("summary/status", f"{result.status}: {result.message}".rstrip(": "))


def log_search(writer: Any, store: RunStore) -> None:
    """A search: fitness and best fitness so far against trained candidates (one series
    per rung when candidates have one), and the count of candidates by status."""
    from evozero.analysis.curve import search_points

    best: dict[int | None, float] = {}
    n = 0
    for n, fitness, rung in search_points(store):
        prefix = "search" if rung is None else f"search/rung_{rung}"
        best[rung] = max(best.get(rung, fitness), fitness)
        writer.add_scalar(f"{prefix}/fitness", fitness, n)
        writer.add_scalar(f"{prefix}/best_fitness", best[rung], n)
    counts = store.count_by_status()
    for status, count in sorted(counts.items()):
        writer.add_scalar(f"counts/{status.value}", count, n)
    rungs = Counter(getattr(c, "rung", None) for c in store.finished())
    for rung, count in rungs.items():
        if rung is not None:
            writer.add_scalar(f"counts/rung_{rung}", count, n)
