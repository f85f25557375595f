"""Refinement benchmark: how much of a detuned PPO's gap to PPO each method recovers.

Start: ``programs/ppo.evz`` with ``gamma 0.99 -> 0.9`` and ``c_h 0.01 -> 0.1`` (a
short horizon and a policy pushed towards uniform). Each method (``metagrad``, ``es``)
refines the detuned rule with the same env-step budget; then PPO, the detuned rule and
each refined rule train on the same fresh seeds, and

    recovery = mean(refined - detuned) / mean(ppo - detuned)

per method, with a 95% bootstrap interval over seeds (seeds resampled jointly, so the
three rules stay paired). Also reported: the env steps and wall time each method spent,
and its refined constants. Writes benchmarks/results/refine_detuned.json.

    python benchmarks/refine_detuned.py   # 1M-step lifetimes, 8M steps per method, 10 seeds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from evozero.native.train import TrainConfig, train
from evozero.program import dsl
from evozero.refine.run import RefineSettings, refine

DETUNED = {"gamma": 0.9, "c_h": 0.1}
DETUNED_FILE = Path("benchmarks/results/ppo-detuned.evz")
EVAL_SEED0 = 2_000_000  # apart from refinement's and validation's seeds


def finals(program, env: str, config: TrainConfig, seeds: list[int], workers: int) -> list:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        runs = pool.map(lambda s: train(program, env, config, seed=s), seeds)
        return [r.final_return if r.status == "ok" else float("nan") for r in runs]


def recovery(ppo: np.ndarray, detuned: np.ndarray, refined: np.ndarray) -> dict:
    def ratio(idx: np.ndarray) -> float:
        gap = np.mean(ppo[idx] - detuned[idx])
        return float(np.mean(refined[idx] - detuned[idx]) / gap) if gap != 0 else float("nan")

    rng = np.random.default_rng(0)
    n = len(ppo)
    boots = [ratio(rng.integers(0, n, n)) for _ in range(2000)]
    lo, hi = np.nanquantile(boots, [0.025, 0.975])
    return {"mean": ratio(np.arange(n)), "lo": float(lo), "hi": float(hi)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="breakout")
    ap.add_argument("--train-steps", type=int, default=1_000_000)
    ap.add_argument("--budget", type=int, default=8_000_000, help="env steps per method")
    ap.add_argument("--seeds", type=int, default=10, help="fresh evaluation seeds")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default="metagrad,es")
    d = RefineSettings()  # refine's defaults
    ap.add_argument("--pairs", type=int, default=d.pairs, help="windows (metagrad) / pairs (es)")
    ap.add_argument("--meta-lr", type=float, default=d.meta_lr, help="Adam step in coordinates")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/refine_detuned.json"))
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows in a log file as it comes

    ppo = dsl.load("programs/ppo.evz")
    detuned = ppo.with_constants(DETUNED)
    # For the shell: evozero refine benchmarks/results/ppo-detuned.evz --method metagrad ...
    dsl.dump(detuned, DETUNED_FILE, header=f"ppo.evz detuned: {DETUNED}")
    config = TrainConfig(total_steps=args.train_steps)
    seeds = list(range(EVAL_SEED0, EVAL_SEED0 + args.seeds))
    out = {
        "env": args.env,
        "train_steps": args.train_steps,
        "budget": args.budget,
        "pairs": args.pairs,
        "meta_lr": args.meta_lr,
        "detuned": DETUNED,
        "seeds": seeds,
        "methods": {},
    }
    base = np.array(finals(ppo, args.env, config, seeds, args.workers))
    low = np.array(finals(detuned, args.env, config, seeds, args.workers))
    out["ppo"], out["detuned_returns"] = base.tolist(), low.tolist()
    print(f"ppo {np.mean(base):.2f}  detuned {np.mean(low):.2f}")
    for method in args.methods.split(","):
        settings = RefineSettings(
            method=method,
            env=args.env,
            config=config,
            budget_steps=args.budget,
            pairs=args.pairs,
            meta_lr=args.meta_lr,
            backend="process",
            workers=args.workers,
        )
        start = time.perf_counter()
        outcome = refine(detuned, settings, lambda e, m=method: print(m, e), validate_result=False)
        seconds = time.perf_counter() - start
        got = np.array(finals(outcome.refined, args.env, config, seeds, args.workers))
        rec = recovery(base, low, got)
        out["methods"][method] = {
            "constants": outcome.refined.constant_values,
            "returns": got.tolist(),
            "recovery": rec,
            "env_steps": outcome.steps,
            "seconds": seconds,
        }
        print(
            f"{method}: recovery {rec['mean']:.2f} [{rec['lo']:.2f}, {rec['hi']:.2f}], "
            f"{outcome.steps:,} env steps, {seconds:.0f} s, {outcome.refined.constant_values}"
        )
        args.out.write_text(json.dumps(out, indent=2) + "\n")  # each method as it ends


if __name__ == "__main__":
    main()
