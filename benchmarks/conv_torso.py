"""Shared or separate conv torsos for the actor and the critic: PPO final returns.

The MinAtar examples' actor-critic (``examples/AC_lambda.py``) shares one conv -> FC 128
torso between the policy and value heads; evozero's ``network="conv"`` gives each its
own. This trains the PyTorch PPO of ``benchmarks/torch_ppo.py`` (evozero's algorithm
and settings, one torch thread per run) with both, on the same seeds, and appends each
run's final return (mean over episodes ending in the last 10% of steps) to a JSON-lines
file as it finishes, so an interrupted measurement resumes. The table it prints backs
the README's design decision.

    python benchmarks/conv_torso.py --games asterix --steps 2000000 --seeds 2 --workers 2
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

NETWORKS = ("conv", "conv-shared")


def run(job: tuple[str, str, int, int]) -> dict:
    """One PyTorch PPO run: ``(game, network, seed, steps)`` -> a result row."""
    import torch_ppo

    from evozero.native.train import final_return

    game, network, seed, steps = job
    args = torch_ppo.Args(game=game, network=network, seed=seed, total_steps=steps, threads=1)
    p = torch_ppo.run(args)
    final = final_return(np.asarray(p.episode_returns), np.asarray(p.episode_end_steps), p.steps)
    return {
        "game": game,
        "network": network,
        "seed": seed,
        "steps": p.steps,
        "final_return": final,
        "steps_per_second": p.steps / p.seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", nargs="+", default=["asterix"])
    ap.add_argument("--steps", type=int, default=2_000_000)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/conv_torso.jsonl"))
    args = ap.parse_args()
    rows = [json.loads(x) for x in args.out.read_text().splitlines()] if args.out.exists() else []
    done = {(r["game"], r["network"], r["seed"], r["steps"]) for r in rows}
    rollout = 64 * 128  # torch_ppo's rollout; a run's steps are whole rollouts
    steps = args.steps // rollout * rollout
    jobs = [
        (g, n, s, args.steps)
        for g in args.games
        for s in range(args.seeds)
        for n in NETWORKS
        if (g, n, s, steps) not in done
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(args.workers) as pool:
        for row in pool.map(run, jobs):
            rows.append(row)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{row['game']:15s} {row['network']:12s} seed {row['seed']}: final "
                f"{row['final_return']:.2f} ({row['steps_per_second']:,.0f} steps/s)",
                flush=True,
            )
    print(f"\nPyTorch PPO, final return at {steps:,} steps (per seed; mean)\n")
    print("| game | " + " | ".join(NETWORKS) + " |")
    print("|---" * (len(NETWORKS) + 1) + "|")
    for g in args.games:
        cells = []
        for n in NETWORKS:
            f = [
                r["final_return"]
                for r in rows
                if (r["game"], r["network"], r["steps"]) == (g, n, steps)
            ]
            seeds = ", ".join(f"{x:.1f}" for x in f)
            cells.append(f"{np.mean(f):.1f} ({seeds})" if f else "")
        print(f"| {g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
