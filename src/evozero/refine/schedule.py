"""Where the meta-gradient method records its checkpoints (torch-free, so a refinement's
cost in env steps is known before torch or a trainer is touched:
:func:`evozero.refine.run.iteration_steps`)."""

from __future__ import annotations

__all__ = ["checkpoint_updates"]


def checkpoint_updates(num_updates: int, pairs: int, k: int, offset: float = 0.0) -> list[int]:
    """``pairs`` runs of K + 1 consecutive updates spread over a lifetime of
    ``num_updates`` (``offset`` in [0, 1) shifts them, so successive meta-steps see
    different points)."""
    last = num_updates - k - 1
    if last < 0:
        raise ValueError(
            f"a lifetime of {num_updates} updates is too short for K = {k}; "
            f"train for at least {k + 1} updates (more env steps per lifetime)"
        )
    starts = sorted({int((last + 1) * ((i + offset) / pairs)) % (last + 1) for i in range(pairs)})
    out: list[int] = []
    for s in starts:
        out.extend(u for u in range(s, s + k + 1) if u not in out and (not out or u > out[-1]))
    return out
