"""Learning quality of the reference rules: final returns at a fixed budget.

Runs ``evozero.train`` for each (program, game, seed) and appends every result
to a JSON-lines file as soon as it finishes, so an interrupted run resumes
where it stopped. Prints the table of final returns (mean ± std over seeds)
next to the reference returns of ../shared/reference/minatar.md. ``--network conv``
trains the MinAtar paper's conv networks instead of the MLPs (rows record the
network; a row without one is an MLP run); ``--programs`` and ``--games`` narrow
the plan.

    python benchmarks/learning_quality.py --steps 10000000 --seeds 3 --workers 2
    # conv next to mlp, PPO on the five games (the table of issue 17):
    python benchmarks/learning_quality.py --network conv --programs ppo --steps 10000000 --seeds 3
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from evozero.native.train import NETWORKS, TrainConfig, train

GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
# (program, games): PPO everywhere, the other reference rules on two games.
PLAN = [("ppo", GAMES)] + [
    (p, ("breakout", "space_invaders")) for p in ("a2c", "reinforce", "dpo", "td_ac")
]
# PureJaxRL-style PPO MLP at 10M steps (reference/minatar.md); goals of the issue.
REFERENCE = {
    "asterix": "15–18",
    "breakout": "28–43",
    "freeway": "56–58",
    "seaquest": "—",
    "space_invaders": "128–170",
}
GOAL = {"asterix": 12, "breakout": 25, "freeway": 50, "seaquest": 10, "space_invaders": 110}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/learning_quality.jsonl"))
    ap.add_argument("--network", choices=NETWORKS, default="mlp")
    ap.add_argument("--programs", nargs="+", default=None, help="only these programs of the plan")
    ap.add_argument("--games", nargs="+", default=None, help="only these games of the plan")
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["program"], r["env"], r["seed"], r["total_steps"], _network(r)))
    jobs = [
        (p, g, s)
        for p, games in PLAN
        if args.programs is None or p in args.programs
        for g in games
        if args.games is None or g in args.games
        for s in range(args.seeds)
        if (p, g, s, args.steps, args.network) not in done
    ]
    config = TrainConfig(total_steps=args.steps, network=args.network)

    def run(job: tuple[str, str, int]) -> None:
        program, game, seed = job
        r = train(Path("programs") / f"{program}.evz", game, config, seed)
        row = {"program": program, **r.summary(), "total_steps": args.steps}
        row["network"] = args.network
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"{program:10s} {args.network:4s} {game:15s} seed {seed}: {r.status} "
            f"final {r.final_return:.2f} ({r.steps_per_second:,.0f} steps/s)",
            flush=True,
        )

    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(run, jobs))
    print_table(args.out, args.steps)


def print_table(path: Path, steps: int) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = [r for r in rows if r["total_steps"] == steps]
    print(f"\nfinal return at {steps:,} steps (mean ± std over seeds)\n")
    print("| program | " + " | ".join(GAMES) + " |")
    print("|---" * (len(GAMES) + 1) + "|")
    for program, _ in PLAN:
        for network in NETWORKS:
            mine = [r for r in rows if r["program"] == program and _network(r) == network]
            if not mine:
                continue
            cells = []
            for g in GAMES:
                f = [r["final_return"] for r in mine if r["env"] == g]
                cells.append(f"{np.mean(f):.1f} ± {np.std(f):.1f} (n={len(f)})" if f else "")
            print(f"| {program} ({network}) | " + " | ".join(cells) + " |")
    print("| PureJaxRL PPO (reference) | " + " | ".join(REFERENCE[g] for g in GAMES) + " |")
    print("| goal (issue) | " + " | ".join(str(GOAL[g]) for g in GAMES) + " |")


def _network(row: dict) -> str:
    return row.get("network", "mlp")  # rows from before the conv network are MLP runs


if __name__ == "__main__":
    main()
