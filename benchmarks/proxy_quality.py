"""How good is a short training run as a proxy for a long one? Kendall's tau between rungs.

A search ranks candidates by how well an agent learns with them in a short run (a rung:
500k env steps) and hopes the ranking holds at the budgets researchers train for. This
script measures it: a fixed set of candidates (the seed programs in programs/, and mutants
of the two that learn on both games, ppo and dpo, one or two mild mutations deep, drawn
with a fixed seed) is trained at each rung on each game with several seeds, and for every
pair of rungs it reports Kendall's tau-b between the candidates' mean final returns, per
game, with a 95% bootstrap CI over candidates (percentile interval; scipy's kendalltau).
Rules that learn nothing rank trivially (broken stays broken), so the table also gives
tau over the candidates that learn: at least a quarter of ppo.evz's return at the lower
rung. (A first candidate set, mutants of every seed program up to three mutations deep
with every mutation kind, learned almost nothing: 22 of 24 scored under a fifth of ppo.evz
at 500k on both games, which made tau measure only that.)

Every training run is appended to a JSON-lines file as soon as it finishes, and the
candidate set is written once next to it, so an interrupted run resumes where it stopped
(runs take hours on two cores: 24 candidates x 3 rungs x 2 games x 3 seeds).

    python benchmarks/proxy_quality.py --workers 2            # the full measurement
    python benchmarks/proxy_quality.py --table                # the table of what is done
    python benchmarks/proxy_quality.py --candidates 6 --rungs 20000,40000 --seeds 1 \\
        --out /tmp/pq.jsonl                                   # a smoke test (a minute)
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from evozero.native.train import TrainConfig, train
from evozero.program import dsl
from evozero.program.canon import canonical_key
from evozero.program.mutate import mutate
from evozero.search.fitness import reference_program_text

SEED_PROGRAMS = ("ppo", "a2c", "reinforce", "dpo", "td_ac")
#: Mutants come from the seed programs that learn on both games with the default trainer.
PARENTS = ("ppo", "dpo")
#: Mutations that keep a rule's structure mostly intact (no random components, no rebinding).
MILD = ("perturb_constant", "replace_literal", "change_op", "rewire", "insert", "remove")
#: A candidate "learns" when its mean return is at least this share of ppo.evz's.
LEARNS = 0.25
GAMES = ("breakout", "space_invaders")
RUNGS = (500_000, 2_000_000, 5_000_000)
BOOTSTRAP = 2000


def candidates(n: int, seed: int) -> list[dict]:
    """``n`` distinct candidates: the seed programs, then mutants of :data:`PARENTS` in
    turn (1-2 :data:`MILD` mutations deep), distinct by canonical key. Deterministic in
    ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, str]] = []
    keys: set[str] = set()

    def add(name: str, program, moves: list[str]) -> None:
        key = canonical_key(program)
        if key not in keys and len(out) < n:
            keys.add(key)
            out.append({"name": name, "mutations": moves, "text": dsl.to_text(program)})

    parents = {p: dsl.parse(reference_program_text(p), f"{p}.evz") for p in SEED_PROGRAMS}
    for name, program in parents.items():
        add(name, program, [])
    tries = 0
    while len(out) < n and tries < 100 * n:
        tries += 1
        name = PARENTS[tries % len(PARENTS)]
        program, moves = parents[name], []
        for _ in range(int(rng.integers(1, 3))):
            program, mutation = mutate(program, rng, kinds=MILD)
            moves.append(str(mutation))
        add(f"{name}+{len(moves)}#{tries}", program, moves)
    return out


def load_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def tau_with_ci(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[float, ...]:
    """Kendall's tau-b of paired scores and its 95% percentile bootstrap CI over pairs."""
    tau = kendalltau(a, b).statistic
    boot = []
    for _ in range(BOOTSTRAP):
        i = rng.integers(len(a), size=len(a))
        t = kendalltau(a[i], b[i]).statistic
        if np.isfinite(t):
            boot.append(t)
    lo, hi = np.percentile(boot, [2.5, 97.5]) if boot else (np.nan, np.nan)
    return float(tau), float(lo), float(hi)


def table(rows: list[dict], cands: list[dict[str, str]], games, rungs, seeds: int) -> str:
    """The markdown table: tau between every pair of rungs, per game (complete cells only:
    a candidate counts once all its seeds at both rungs are done)."""
    names = [c["name"] for c in cands]
    mean: dict[tuple[str, str, int], float] = {}
    for name in names:
        for g in games:
            for r in rungs:
                f = [
                    x["final_return"]
                    for x in rows
                    if x["candidate"] == name and x["env"] == g and x["total_steps"] == r
                ]
                if len(f) >= seeds:
                    # A diverged run learned nothing: it ranks last (its return is None).
                    mean[name, g, r] = float(np.mean([-1e9 if v is None else v for v in f]))
    rng = np.random.default_rng(0)
    lines = [
        "| game | rungs | candidates | Kendall τ [95% CI] | learning | τ among them [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for g in games:
        for lo, hi in combinations(rungs, 2):
            both = [n for n in names if (n, g, lo) in mean and (n, g, hi) in mean]
            if len(both) < 4 or "ppo" not in both:
                lines.append(f"| {g} | {lo:,} → {hi:,} | {len(both)} | not enough done | | |")
                continue
            learning = [n for n in both if mean[n, g, lo] >= LEARNS * mean["ppo", g, lo]]
            cells = []
            for names_ in (both, learning):
                a = np.array([mean[n, g, lo] for n in names_])
                b = np.array([mean[n, g, hi] for n in names_])
                if len(names_) < 4:
                    cells.append("too few")
                    continue
                tau, t_lo, t_hi = tau_with_ci(a, b, rng)
                cells.append(f"{tau:.2f} [{t_lo:.2f}, {t_hi:.2f}]")
            lines.append(
                f"| {g} | {lo:,} → {hi:,} | {len(both)} | {cells[0]} | {len(learning)} "
                f"| {cells[1]} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=24)
    ap.add_argument("--rungs", default=",".join(map(str, RUNGS)))
    ap.add_argument("--games", default=",".join(GAMES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="draws the candidate set")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/proxy_quality.jsonl"))
    ap.add_argument("--table", action="store_true", help="print the table of what is done")
    args = ap.parse_args()
    rungs = tuple(int(r) for r in args.rungs.split(","))
    games = tuple(args.games.split(","))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cand_path = args.out.with_suffix(".candidates.json")
    if cand_path.exists():  # resume with the same set, whatever the flags say
        cands = json.loads(cand_path.read_text())
    else:
        cands = candidates(args.candidates, args.seed)
        cand_path.write_text(json.dumps(cands, indent=1) + "\n")
    if not args.table:
        run_all(args, cands, games, rungs)
    print(f"\nKendall's tau between rungs ({len(cands)} candidates, {args.seeds} seeds)\n")
    print(table(load_rows(args.out), cands, games, rungs, args.seeds))


def run_all(args, cands, games, rungs) -> None:
    done = {(r["candidate"], r["env"], r["seed"], r["total_steps"]) for r in load_rows(args.out)}
    # Cheap rungs first: a partial run already answers "does 500k predict 2M?".
    jobs = [
        (c, g, s, r)
        for r in rungs
        for c in cands
        for g in games
        for s in range(args.seeds)
        if (c["name"], g, s, r) not in done
    ]
    programs = {c["name"]: dsl.parse(c["text"], c["name"]) for c in cands}

    def run(job) -> None:
        cand, game, seed, steps = job
        result = train(programs[cand["name"]], game, TrainConfig(total_steps=steps), seed)
        row = {"candidate": cand["name"], **result.summary(), "total_steps": steps}
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"{cand['name']:22s} {game:15s} {steps:>9,} seed {seed}: {result.status} "
            f"{result.final_return}",
            flush=True,
        )

    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(run, jobs))


if __name__ == "__main__":
    main()
