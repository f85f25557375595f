"""Training throughput: evozero's native PPO vs a CleanRL-style PyTorch PPO.

The unit of work is an env step of training: PureJaxRL's MinAtar PPO
(``programs/ppo.evz``; 64 envs x 128 steps per update, 4 epochs x 8
minibatches, separate 64x64 ReLU actor and critic), rollout and learning
included. Figures are env steps/s of the median round.

- native, one core: one ``evozero.train`` call (GIL released) of ``UPDATES``
  updates on each game, timed as a whole (program compile included);
- native, whole machine: ``os.cpu_count()`` such calls at once on as many
  threads; aggregate steps/s and steps/s per core;
- torch: ``benchmarks/torch_ppo.py`` (the same algorithm, network and
  hyperparameters) on breakout, (a) on the native envs (``MinAtarVecEnv``, one
  C++ call per step) and (b) on the reference ``minatar`` gymnasium envs in a
  ``SyncVectorEnv``; one round = one update (8192 steps). Torch runs with
  ``torch.set_num_threads(os.cpu_count())`` as a user would write it, and with
  one thread; on a loaded machine OpenMP's spinning threads make the first
  much slower, so the ratios use whichever is faster (the harder baseline).
- ratios on breakout: native one core / torch (a) and / torch (b).

FLOPs per env step (multiply-add = 2 FLOPs; D = 100 * channels inputs, H = 64
hidden, A actions, O = A + 1 outputs of actor and critic together, E = 4 epochs;
biases, softmax, Adam and the GAE scan are left out, they are < 1%):

    forward  F = 2 * (2*D*H + 2*H*H + H*O)          actor + critic, one sample
    backward G = 2 * (2*D*H + 4*H*H + 2*H*O)        weight grads + input grads of layers 2, 3
    per step   F + E * (F + G)                      rollout forward + E epochs of fwd+bwd

That is the dense count (what torch computes): 1.14 MFLOP per step on breakout
(D = 400, A = 3). The native trainer's first layers touch only the k active
cells of an observation (MinAtar's bit planes) and add weight rows instead of
multiplying, so the ``4*D*H`` FLOPs of the first layers become ``2*k*H`` adds
in F (the active rows summed) and in G (the active rows' weight gradients); k
is measured as the mean active cells under random play. The fraction of peak
uses this executed count.

Peak FLOP/s of one core = FMA units x float32 lanes x 2 x clock, from
/proc/cpuinfo: 2 FMA units (every x86 server core since Haswell / Zen); lanes 16
with AVX-512 on Intel or on AMD from family 26 (Zen 5), 8 with AVX2/FMA
(AMD family 25, Zen 4, runs AVX-512 on 256-bit units); clock = the "cpu MHz"
field (nominal; boost clocks would lower the fraction).

Peak memory: max RSS of a fresh subprocess that imports evozero and trains
breakout for ``UPDATES`` updates, and of one that only imports it. It is read
from VmHWM in /proc/self/status, not from ``resource.getrusage``: on Linux
``ru_maxrss`` keeps the high-water mark of the process before ``exec``, and
``subprocess`` forks (vfork) from pytest, so it would report pytest's own
size (torch loaded, ~470 MiB) rather than the trainer's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from evozero.envs import GAMES, MinAtarVecEnv
from evozero.native.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
PPO = ROOT / "programs" / "ppo.evz"
UPDATES = 16  # per native round: 16 x 8192 = 131,072 env steps
CONFIG = TrainConfig(total_steps=UPDATES * 64 * 128)
CORES = os.cpu_count() or 1
TORCH_SECONDS = 15.0  # time budget per torch benchmark; rounds adapt to it (3..10)

SPEED = "trainer env steps/s (median)"
BREAKOUT = "PPO on breakout: env steps/s (median)"
RATIO = "PPO on breakout: native (1 core) / torch"
FLOPS = "trainer FLOPs (PPO, native, 1 core)"
MEMORY = "trainer peak memory (breakout)"


def _median(benchmark) -> float | None:
    """Median round in seconds, or None when benchmarks are disabled."""
    return benchmark.stats.stats.median if benchmark.stats else None


def native_steps_per_s(benchmark, game: str, config: TrainConfig) -> float | None:
    """Three rounds of one ``train`` call each (seeds 0, 1, 2); median env steps/s."""
    results = []

    def run() -> None:
        results.append(train(PPO, game, config, seed=len(results)))

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    assert all(r.status == "ok" for r in results)
    median = _median(benchmark)
    return None if median is None else config.num_updates * 64 * 128 / median


def torch_steps_per_s(benchmark, args) -> float | None:
    """Rounds of one ``torch_ppo`` update each (after a warm-up); median env steps/s."""
    import torch_ppo  # benchmarks/ is on sys.path (rootdir-less test directory)

    updates = torch_ppo.train(args)
    start = time.perf_counter()
    next(updates)  # warm-up update: first allocations, torch's thread pool
    first = time.perf_counter() - start
    rounds = int(np.clip(TORCH_SECONDS / first, 3, 10))
    benchmark.pedantic(lambda: next(updates), rounds=rounds, iterations=1, warmup_rounds=0)
    updates.close()
    median = _median(benchmark)
    return None if median is None else args.num_envs * args.num_steps / median


# ----------------------------------------------------------------------------- native


@pytest.mark.parametrize("game", GAMES)
def test_native_one_core(benchmark, figures, game: str) -> None:
    benchmark.group = "trainer: native one core"
    steps_per_s = native_steps_per_s(benchmark, game, CONFIG)
    if steps_per_s is None:
        return
    figures(SPEED, game, "native 1 core", steps_per_s)
    if game == "breakout":
        figures(BREAKOUT, "native evozero, 1 core", "steps/s", steps_per_s)
        _ratios(figures)
    _flops(figures, game, steps_per_s)


@pytest.mark.parametrize("game", GAMES)
def test_native_whole_machine(benchmark, figures, game: str) -> None:
    benchmark.group = "trainer: native whole machine"
    seeds = iter(range(10_000))

    def run() -> None:
        with ThreadPoolExecutor(CORES) as pool:
            results = list(
                pool.map(
                    lambda s: train(PPO, game, CONFIG, seed=s), [next(seeds) for _ in range(CORES)]
                )
            )
        assert all(r.status == "ok" for r in results)

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)
    median = _median(benchmark)
    if median is None:
        return
    aggregate = CORES * CONFIG.num_updates * 64 * 128 / median
    figures(SPEED, game, f"native {CORES} cores", aggregate)
    figures(SPEED, game, "native per core (all busy)", aggregate / CORES)
    if game == "breakout":
        figures(BREAKOUT, f"native evozero, {CORES} cores", "steps/s", aggregate)


# ----------------------------------------------------------------------------- torch


@pytest.mark.parametrize("threads", sorted({CORES, 1}, reverse=True), ids=lambda t: f"threads{t}")
@pytest.mark.parametrize("envs", ["native", "reference"])
def test_torch_ppo(benchmark, figures, envs: str, threads: int) -> None:
    pytest.importorskip("torch")
    if envs == "reference":
        pytest.importorskip("minatar")
    import torch_ppo  # benchmarks/ is on sys.path (rootdir-less test directory)

    benchmark.group = "trainer: PPO on breakout"
    args = torch_ppo.Args(game="breakout", envs=envs, total_steps=10**9, threads=threads)
    steps_per_s = torch_steps_per_s(benchmark, args)
    if steps_per_s is None:
        return
    label = "(a) native envs" if envs == "native" else "(b) reference envs"
    figures(BREAKOUT, f"torch {label}, {threads} thread(s)", "steps/s", steps_per_s)
    _ratios(figures)


def _ratios(figures) -> None:
    """native 1 core / the faster torch setting, for (a) and (b), once both are measured."""
    from conftest import _FIGURES

    rows = _FIGURES.get(BREAKOUT, {})
    native = rows.get("native evozero, 1 core", {}).get("steps/s")
    if native is None:
        return
    for label, column in (
        ("(a) native envs", "vs (a) torch + native envs"),
        ("(b) reference envs", "vs (b) torch + reference envs"),
    ):
        torch_rates = [r["steps/s"] for name, r in rows.items() if label in name]
        if torch_rates:
            figures(RATIO, "breakout", column, native / max(torch_rates))


# ----------------------------------------------------------------------------- FLOPs


def random_play_mean(
    game: str, per_env: Callable[[np.ndarray], np.ndarray], steps: int = 300, envs: int = 64
) -> float:
    """Mean of ``per_env(observations)`` (one value per env) over random play."""
    env = MinAtarVecEnv(game, envs, seed=0, minimal_action_set=True)
    obs, _ = env.reset()
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(steps):
        obs, *_ = env.step(rng.integers(0, env.single_action_space.n, envs))
        total += float(np.mean(per_env(obs)))
    return total / steps


def active_cells(game: str) -> float:
    """Mean number of active observation cells under random play."""
    return random_play_mean(game, lambda obs: obs.reshape(len(obs), -1).sum(axis=1))


def flops_per_step(
    obs_size: int, num_actions: int, active: float | None = None, hidden: int = 64, epochs: int = 4
) -> float:
    """FLOPs per env step (module docstring); ``active`` cells: the sparse first layer."""
    D, H, O = obs_size, hidden, num_actions + 1  # noqa: N806, E741
    # The first layers of both nets: 2*D*H multiply-adds dense, 2*k*H adds sparse.
    first = 4 * D * H if active is None else 2 * active * H
    forward = first + 2 * (2 * H * H + H * O)
    backward = first + 2 * (4 * H * H + 2 * H * O)
    return forward + epochs * (forward + backward)


def peak_flops_per_core() -> tuple[float, str]:
    """Peak float32 FLOP/s of one core and the assumption behind it (module docstring)."""
    info = Path("/proc/cpuinfo").read_text()
    fields = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    vendor, family = fields.get("vendor_id", ""), int(fields.get("cpu family", "0") or 0)
    mhz = float(fields.get("cpu MHz", "0") or 0)
    if "avx512f" in flags and (vendor == "GenuineIntel" or family >= 26):
        lanes = 16
    elif "fma" in flags:
        lanes = 8
    else:
        lanes = 4
    units = 2
    return units * lanes * 2 * mhz * 1e6, (
        f"{vendor} family {family}: {units} FMA units x {lanes} float32 lanes x 2 x {mhz:.0f} MHz"
    )


def _flops(figures, game: str, steps_per_s: float) -> None:
    env = MinAtarVecEnv(game, 1, seed=0, minimal_action_set=True)
    obs_size = int(np.prod(env.single_observation_space.shape))
    actions = int(env.single_action_space.n)
    k = active_cells(game)
    dense = flops_per_step(obs_size, actions)
    executed = flops_per_step(obs_size, actions, active=k)
    peak, _ = peak_flops_per_core()
    figures(FLOPS, game, "active cells", k)
    figures(FLOPS, game, "FLOPs/step dense", dense)
    figures(FLOPS, game, "FLOPs/step executed", executed)
    figures(FLOPS, game, "GFLOP/s executed", executed * steps_per_s / 1e9)
    figures(FLOPS, game, "% of core peak", 100 * executed * steps_per_s / peak)
    figures(FLOPS, game, "core peak GFLOP/s", peak / 1e9)


# ----------------------------------------------------------------------------- memory

_RSS = """
import sys
from evozero.native.train import TrainConfig, train
if sys.argv[1] == "train":
    r = train(sys.argv[2], "breakout", TrainConfig(total_steps=int(sys.argv[3])), seed=0)
    assert r.status == "ok", r.message
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(int(status["VmHWM"].split()[0]))  # peak RSS of this process image, KiB
"""


def test_peak_memory(figures) -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc")

    def max_rss_mib(*argv: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", _RSS, *argv],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return int(out.stdout.split()[-1]) / 1024

    baseline = max_rss_mib("import")
    peak = max_rss_mib("train", str(PPO), str(CONFIG.total_steps))
    figures(MEMORY, "breakout", "max RSS MiB, import only", baseline)
    figures(MEMORY, "breakout", "max RSS MiB, training", peak)
    figures(MEMORY, "breakout", "training - import MiB", peak - baseline)
