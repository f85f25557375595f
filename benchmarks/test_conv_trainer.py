"""Training throughput with the conv network: native PPO vs the PyTorch conv PPO.

The same measurement as ``test_trainer.py`` (env steps/s of training, rollout and
learning included, median round) with ``TrainConfig(network="conv")``: separate
actor and critic, each Conv2d(C, 16, 3x3) -> ReLU -> Linear(1024, 128) -> ReLU
-> head (the MinAtar paper's network), against ``torch_ppo.py --network conv``
(the same algorithm and networks, CleanRL style) on breakout in the same run.
Both on one core: the native trainer is one thread, torch runs with 1 thread
(with 2 it measured 131 steps/s against 2,210 on this loaded 2-core machine).

FLOPs per env step (multiply-add = 2 FLOPs, an add 1; C channels, A actions, O = A + 1
outputs of actor and critic together, E = 4 epochs; each term below counts both
networks). Dense, what torch computes:

    conv 2 * 2 * (64 * 16 * 9C)     fc 2 * 2 * (1024 * 128)
    forward  F = conv + fc + 2 * 128 * O
    backward G = conv + 2 * fc + 4 * 128 * O      (no input gradient of the conv)

Executed by the native trainer (conv.hpp), per sample of a batch with R pairs
(sample, active position) and P distinct patches among them (patches.hpp), K
non-zero inputs per patch (binary: the forward conv adds filter rows):

    conv forward  2 * (P * K * 16)              conv backward  2 * 2 * (P * K * 16)
    fc   2 * 2 * (P * 16 * 128)                 (each patch's term; dW1 and dh1 alike)
    sums 2 * (R * 128)                          (each pair adds its patch's term;
                                                 backward: D, and its sum per position
                                                 2 * (P * 128))
    forward  F = conv forward + fc + sums + 2 * 128 * O
    backward G = conv backward + 2 * fc + sums + 2 * (P * 128) + 4 * 128 * O

Per env step: F of a rollout batch (the 64 envs' frames of one step) plus E * (F + G)
of 1024-frame minibatches; R, P and K are measured on random play (128 steps of 64
envs, as one rollout, shuffled into minibatches). Work per parameter rather than per
sample (Adam, the weights' per-step copies: about 20k FLOPs per env step) is left
out of both counts. The fraction of one core's peak
(test_trainer.peak_flops_per_core) uses the executed count; "dense-equivalent" is
the dense count per second, the rate a dense implementation would need.

    pytest benchmarks/test_conv_trainer.py --benchmark-enable
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from test_trainer import native_steps_per_s, peak_flops_per_core, torch_steps_per_s

from evozero import _core
from evozero.envs import MinAtarVecEnv
from evozero.native.train import TrainConfig

UPDATES = 4  # per native round: 4 x 8192 = 32,768 env steps
CONFIG = TrainConfig(total_steps=UPDATES * 64 * 128, network="conv")
GAMES = ("breakout", "asterix", "freeway", "seaquest", "space_invaders")

SPEED = "conv PPO: env steps/s (median, one core)"
RATIO = "conv PPO on breakout: native (1 core) / torch"
FLOPS = "conv PPO FLOPs (native, 1 core)"


@dataclass(frozen=True)
class PatchWork:
    """Per sample of a batch: (sample, active position) pairs, distinct patches, and the
    mean non-zero inputs of a patch (module docstring)."""

    pairs: float
    patches: float
    inputs: float


def patch_work(game: str, batch: int, shuffle: bool) -> PatchWork:
    """PatchWork of random play cut into batches of ``batch`` frames."""
    env = MinAtarVecEnv(game, 64, seed=0, minimal_action_set=True)
    obs, _ = env.reset()
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(128):
        obs, *_ = env.step(rng.integers(0, env.single_action_space.n, 64))
        frames.append(obs.reshape(64, -1).astype(np.float32))
    x = np.concatenate(frames)
    if shuffle:
        x = x[rng.permutation(len(x))]
    pairs = patches = inputs = 0
    for b in np.split(x, len(x) // batch):
        indptr = np.concatenate([[0], np.cumsum((b != 0).sum(1))]).astype(np.int64)
        indices = np.nonzero(b)[1].astype(np.int32)
        first, rows, numbers = _core.testing.patch_index_sparse(indptr, indices, b.shape[1])
        # each patch's inputs, read at its first pair (a sample and a position)
        _, at = np.unique(numbers, return_index=True)
        sample = np.searchsorted(rows, at, side="right") - 1
        position = np.searchsorted(first, numbers[at], side="right") - 1
        cells = (b != 0).reshape(len(b), 10, 10, -1).sum(-1)
        window = sum(cells[:, dy : dy + 8, dx : dx + 8] for dy in range(3) for dx in range(3))
        inputs += window.reshape(len(b), 64)[sample, position].sum()
        pairs, patches = pairs + len(numbers), patches + first[-1]
    return PatchWork(pairs / len(x), patches / len(x), inputs / max(patches, 1))


def conv_flops_per_step(
    channels: int,
    num_actions: int,
    rollout: PatchWork | None = None,
    minibatch: PatchWork | None = None,
    epochs: int = 4,
) -> float:
    """FLOPs per env step (module docstring): dense, or executed given the PatchWork of
    the rollout's and the minibatches' batches."""
    O = num_actions + 1  # noqa: N806, E741

    def passes(work: PatchWork | None) -> tuple[float, float]:
        """(F, F + G) per sample."""
        if work is None:
            conv = 2 * 2 * (64 * 16 * 9 * channels)
            forward = conv + 2 * 2 * (1024 * 128) + 2 * 128 * O
            return forward, forward + conv + 2 * 2 * 2 * (1024 * 128) + 4 * 128 * O
        conv = 2 * (work.patches * work.inputs * 16)
        fc = 2 * 2 * (work.patches * 16 * 128)
        sums = 2 * (work.pairs * 128)
        forward = conv + fc + sums + 2 * 128 * O
        backward = 2 * conv + 2 * fc + sums + 2 * (work.patches * 128) + 4 * 128 * O
        return forward, forward + backward

    return passes(rollout)[0] + epochs * passes(minibatch)[1]


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
    rollout, minibatch = patch_work(game, 64, False), patch_work(game, 1024, True)
    dense = conv_flops_per_step(channels, actions)
    executed = conv_flops_per_step(channels, actions, rollout, minibatch)
    peak, _ = peak_flops_per_core()
    figures(FLOPS, game, "pairs / sample", minibatch.pairs)
    figures(FLOPS, game, "patches / sample (minibatch)", minibatch.patches)
    figures(FLOPS, game, "patches / sample (rollout)", rollout.patches)
    figures(FLOPS, game, "FLOPs/step dense", dense)
    figures(FLOPS, game, "FLOPs/step executed", executed)
    figures(FLOPS, game, "GFLOP/s executed", executed * steps_per_s / 1e9)
    figures(FLOPS, game, "GFLOP/s dense-equivalent", dense * steps_per_s / 1e9)
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
