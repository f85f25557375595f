"""Training throughput with the conv network: native PPO vs the PyTorch conv PPO.

The same measurement as ``test_trainer.py`` (env steps/s of training, rollout and
learning included, median round) with ``TrainConfig(network="conv")``: separate
actor and critic, each Conv2d(C, 16, 3x3) -> ReLU -> Linear(1024, 128) -> ReLU
-> head (the MinAtar paper's network), against ``torch_ppo.py --network conv``
(the same algorithm and networks, CleanRL style) on breakout in the same run.
Both on one core: the native trainer is one thread, torch runs with 1 thread
(with 2 it measured 131 steps/s against 2,210 on this loaded 2-core machine).

FLOPs per env step (multiply-add = 2 FLOPs; C channels, A actions, O = A + 1
outputs of actor and critic together, E = 4 epochs; both nets):

    conv  dense: 2 * (2 * 64 * 16 * 9C)    executed: 2 * (k * 9 * 16) (k active cells,
                                           each adds its filter column at <= 9 positions)
    fc    dense: 1024 * 128                executed: a * 1024 * 128 (a: the fraction of
                                           the 64 conv positions with an active cell in
                                           their 3x3 patch; the others output the same
                                           features in every sample, folded into one
                                           vector per batch, conv.hpp)
    forward  F = conv + 2 * (2 * fc) + 2 * 128 * O
    backward G = conv + 2 * (4 * fc) + 4 * 128 * O   (FC weight + input grads;
                                                      conv weight grads only)
    per step   F + E * (F + G)

The dense count is what torch computes (8.2 MFLOP per step on breakout); the
fraction of one core's peak (test_trainer.peak_flops_per_core) uses the executed
count, the work the native trainer does.

    pytest benchmarks/test_conv_trainer.py --benchmark-enable
"""

from __future__ import annotations

import numpy as np
import pytest
from test_trainer import (
    active_cells,
    native_steps_per_s,
    peak_flops_per_core,
    random_play_mean,
    torch_steps_per_s,
)

from evozero.envs import MinAtarVecEnv
from evozero.native.train import TrainConfig

UPDATES = 4  # per native round: 4 x 8192 = 32,768 env steps
CONFIG = TrainConfig(total_steps=UPDATES * 64 * 128, network="conv")
GAMES = ("breakout", "asterix")

SPEED = "conv PPO: env steps/s (median, one core)"
RATIO = "conv PPO on breakout: native (1 core) / torch"
FLOPS = "conv PPO FLOPs (native, 1 core)"


def conv_flops_per_step(
    channels: int,
    num_actions: int,
    active: float | None = None,
    positions: float = 1.0,
    epochs: int = 4,
) -> float:
    """FLOPs per env step (module docstring); ``active`` cells: the sparse conv;
    ``positions``: the fraction of conv positions the hidden layer works on."""
    O = num_actions + 1  # noqa: N806, E741
    conv = 2 * (2 * 64 * 16 * 9 * channels) if active is None else 2 * active * 9 * 16
    fc = positions * 1024 * 128
    forward = conv + 2 * (2 * fc) + 2 * 128 * O
    backward = conv + 2 * (4 * fc) + 4 * 128 * O
    return forward + epochs * (forward + backward)


def active_positions(game: str) -> float:
    """Mean fraction of the 64 conv positions (3x3 patches of the 10x10 grid) that hold
    an active cell, under random play."""

    def fraction(obs: np.ndarray) -> np.ndarray:
        cells = obs.reshape(len(obs), 10, 10, -1).any(axis=-1)
        patches = np.zeros((len(obs), 8, 8), dtype=bool)
        for dy in range(3):
            for dx in range(3):
                patches |= cells[:, dy : dy + 8, dx : dx + 8]
        return patches.mean(axis=(1, 2))

    return random_play_mean(game, fraction)


@pytest.mark.parametrize("game", GAMES)
def test_conv_native_one_core(benchmark, figures, game: str) -> None:
    benchmark.group = "conv trainer: native one core"
    steps_per_s = native_steps_per_s(benchmark, game, CONFIG)
    if steps_per_s is None:
        return
    figures(SPEED, game, "native evozero", steps_per_s)
    env = MinAtarVecEnv(game, 1, seed=0, minimal_action_set=True)
    channels = int(env.single_observation_space.shape[-1])
    actions = int(env.single_action_space.n)
    k, a = active_cells(game), active_positions(game)
    executed = conv_flops_per_step(channels, actions, active=k, positions=a)
    peak, _ = peak_flops_per_core()
    figures(FLOPS, game, "active positions", a)
    figures(FLOPS, game, "FLOPs/step dense", conv_flops_per_step(channels, actions))
    figures(FLOPS, game, "FLOPs/step executed", executed)
    figures(FLOPS, game, "GFLOP/s executed", executed * steps_per_s / 1e9)
    figures(FLOPS, game, "% of core peak", 100 * executed * steps_per_s / peak)
    _ratio(figures)


def test_conv_torch_ppo(benchmark, figures) -> None:
    pytest.importorskip("torch")
    import torch_ppo  # benchmarks/ is on sys.path (rootdir-less test directory)

    threads = 1  # on a shared machine more threads were ~17x slower (OpenMP spinning)
    benchmark.group = "conv trainer: torch PPO on breakout"
    args = torch_ppo.Args(
        game="breakout", envs="native", total_steps=10**9, threads=threads, network="conv"
    )
    steps_per_s = torch_steps_per_s(benchmark, args)
    if steps_per_s is None:
        return
    figures(SPEED, "breakout", f"torch, {threads} thread(s)", steps_per_s)
    _ratio(figures)


def _ratio(figures) -> None:
    """native / the faster torch setting on breakout, once both are measured."""
    from conftest import _FIGURES

    row = _FIGURES.get(SPEED, {}).get("breakout", {})
    native = row.get("native evozero")
    torch_rates = [v for name, v in row.items() if name.startswith("torch")]
    if native is not None and torch_rates:
        figures(RATIO, "breakout", "native / faster torch", native / max(torch_rates))
