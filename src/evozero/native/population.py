"""Train many agents in one call: ``evozero.train_many``.

Each agent is a whole training run of one program with one seed (what
:func:`evozero.train` does), written once as block code (csrc/population/agent.hpp)
that runs on the host with one thread per agent (``device="cpu"``) or on an NVIDIA GPU
with one thread block per agent for its whole run (``device="cuda"``, the CUDA
extension). On the host the block code reproduces :func:`evozero.train` bit for bit
(tests/test_train_many.py); on the GPU, runs are deterministic for their seed and agree
with the host up to the device libm's last-bit differences (docs/CUDA.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evozero import _core
from evozero.native.compile import check_native_tables, compile_program
from evozero.native.envs import GAMES
from evozero.native.train import TrainConfig, TrainResult, _as_program
from evozero.program.model import Program
from evozero.status import Status

#: Info columns of the native results (csrc/population/spec.hpp, enum Info).
_STATUS, _REASON, _STEPS, _EPISODES, _UPDATES = range(5)
_STATUS_NAMES = ("ok", "diverged", "error")
DEVICES = ("cpu", "cuda")


def _pack(
    programs: Sequence[Program | str | Path],
    env: str,
    config: TrainConfig,
    seeds: Sequence[int],
    episode_capacity: int = 0,
) -> Any:
    if not isinstance(env, str) or env not in GAMES:
        raise ValueError(
            f"train_many trains on the native MinAtar games ({', '.join(GAMES)}) only, got "
            f"{env!r}; train on gymnasium envs with evozero.train"
        )
    if config.network != "mlp":
        raise ValueError(
            f"train_many supports network 'mlp' only, got {config.network!r}; "
            "train the conv network with evozero.train"
        )
    seeds = list(seeds)
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s < 2**64:
            raise ValueError(f"seeds must be non-negative integers below 2**64, got {s!r}")
    if not programs or not seeds:
        raise ValueError("train_many needs at least one program and one seed")
    check_native_tables()
    interpreters = [_core.Interpreter(**compile_program(_as_program(p)).arrays()) for p in programs]
    agent_program = [p for p in range(len(programs)) for _ in seeds]
    agent_seed = [int(s) for _ in programs for s in seeds]
    return _core.pack_population(
        *config.native_env_args(env),
        interpreters,
        agent_program,
        agent_seed,
        config.trainer_options(),
        episode_capacity,
    )


def _results(
    raw: dict[str, Any], env: str, config: TrainConfig, seeds: list[int], seconds: float
) -> list[TrainResult]:
    out = []
    for a, seed in enumerate(seeds):
        info = raw["info"][a]
        status = _STATUS_NAMES[int(info[_STATUS])]
        error = raw["errors"][a] if "errors" in raw else ""
        message = error or _core.population_reason(int(info[_REASON]))
        n, updates = int(info[_EPISODES]), int(info[_UPDATES])
        done = updates if status == "ok" else min(updates, raw["update_stats"].shape[1])
        out.append(
            TrainResult(
                env=env,
                seed=int(seed),
                status=Status(status),
                message=message,
                episode_returns=raw["episode_returns"][a][:n].astype(np.float64),
                episode_end_steps=raw["episode_end_steps"][a][:n].astype(np.int64),
                steps=int(info[_STEPS]),
                total_steps=config.run_steps,
                seconds=seconds,
                update_stats=np.array(raw["update_stats"][a][:done], dtype=np.float32),
            )
        )
    return out


def train_many(
    programs: Sequence[Program | str | Path] | Program | str | Path,
    env: str = "breakout",
    config: TrainConfig | None = None,
    seeds: Sequence[int] = (0,),
    *,
    device: str = "cpu",
    threads: int | None = None,
    parameters: bool = False,
) -> list[TrainResult] | tuple[list[TrainResult], list[dict[str, np.ndarray]]]:
    """Train every program with every seed: ``len(programs) * len(seeds)`` agents.

    Args:
        programs: :class:`~evozero.program.Program` objects or ``.evz`` paths (one alone is
            taken as a list of one; any iterable).
        env: a native MinAtar game (``breakout``, ...); gymnasium envs are not supported.
        config: the trainer's settings (default :class:`TrainConfig`); ``network`` must be
            ``mlp``.
        seeds: the seeds (one int alone: a list of one); agent ``(p, s)`` trains
            ``programs[p]`` with ``seeds[s]`` exactly as
            ``evozero.train(programs[p], env, config, seeds[s])`` does.
        device: ``cpu`` (the block code on host threads, GIL released) or ``cuda`` (one
            thread block per agent on the GPU; needs the CUDA extension, built with
            ``EVOZERO_CUDA=1``, and a GPU).
        threads: ``cpu``: host threads (default: every core); ``cuda``: threads per agent's
            block (a multiple of 32, default 256).
        parameters: also return each agent's final parameters, ``{torch name: float32
            array}`` as :func:`evozero.train`'s checkpoints name them.

    Returns:
        A list of :class:`TrainResult`, program-major (agent ``p * len(seeds) + s``), each
        as ``evozero.train`` returns it without checkpoints; ``seconds`` is the wall time
        of the whole call, and ``steps_per_second`` one agent's steps over it. With
        ``parameters``, ``(results, parameters)``.

    The host path is the GPU code's reference, not a speed-up: per agent it runs about 30×
    slower than :func:`evozero.train`. Ctrl-C takes effect when the call returns (the
    agents have no cancel point yet).

    Raises:
        ValueError: an env other than a native game, ``network`` other than ``mlp``, a bad
            seed, no program or no seed, a program that is not a Program or an existing
            ``.evz`` file or does not compile, a bad ``threads`` or a config that is not a
            TrainConfig.
        RuntimeError: ``device="cuda"`` without the CUDA extension or without a GPU (the
            message says which), or a CUDA error; an unknown device.

    Each agent keeps up to ``max(2**20, run_steps // 8)`` episode returns (all of them in
    runs of up to 2**20 steps); an agent with more ends with status ``error`` (its message
    says so), having trained to the end.
    """
    if device not in DEVICES:
        raise RuntimeError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ValueError(
            f"config must be a TrainConfig, got {type(config).__name__}; "
            "write e.g. TrainConfig(total_steps=1_000_000)"
        )
    if isinstance(programs, (Program, str, Path)) or not hasattr(programs, "__iter__"):
        programs = [programs]  # one program (_pack names what is not one)
    programs = list(programs)
    seeds = [seeds] if isinstance(seeds, (int, np.integer)) else list(seeds)
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 4096
    ):
        raise ValueError(f"threads must be an integer from 1 to 4096, got {threads!r}")
    if device == "cuda" and threads is not None and threads % 32:
        raise ValueError(f"threads on cuda must be a multiple of 32 (one warp), got {threads}")
    # Every agent's episode returns live in one preallocated buffer (device memory on
    # cuda): room for one episode per 8 env steps past 2**20 steps (more: status error).
    capacity = min(config.run_steps, max(2**20, config.run_steps // 8))
    population = _pack(programs, env, config, seeds, capacity)
    agent_seeds = [int(s) for _ in programs for s in seeds]
    start = time.perf_counter()
    if device == "cuda":
        from evozero.native.envs import _cuda_module

        raw = _cuda_module().train_many(population.arrays(), threads or 256)
    else:
        raw = _core.train_many_host(population, threads or os.cpu_count() or 1)
    seconds = time.perf_counter() - start
    results = _results(raw, env, config, agent_seeds, seconds)
    if not parameters:
        return results
    return results, [population.named_parameters(p) for p in raw["params"]]
