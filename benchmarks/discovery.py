"""A discovery measured at 10M steps: search with rungs, then validate the best rule.

Four stages, each resuming where it stopped:

1. ``search``: ``evozero evolve --suite standard`` (breakout, space_invaders and asterix
   at 500k steps, the best quarter promoted to 2M steps with 2 seeds; the final report at
   2M on 5 fresh seeds, held out: freeway, seaquest, CartPole-v1, Acrobot-v1) into
   ``benchmarks/results/discovery/`` (a run directory: ``evozero show``, ``report`` and
   ``explain`` read it). ``--max-time`` bounds the search's wall-clock time over all its
   sessions; run it again to resume.
2. ``validate``: the best rule the search bred (the search's own ranking: highest rung,
   then fitness there, over candidates that are not seed programs; fixed before any
   validation run) and ``ppo.evz`` trained for 10M env steps on
   all five MinAtar games, seeds 2000-2004 (never used by the search: its rungs use 0 and
   1, its report 1000-1004). Every run is appended to
   ``benchmarks/results/discovery_validation.jsonl`` as it finishes.
3. ``refine``: ``evozero refine`` on the run's ``--top`` best rules, by each method
   (refined on breakout at 500k steps, validated at the suite's target, breakout at 2M,
   on 5 fresh seeds; a kept refinement is stored in the run as a child). Each method's
   ``--json`` outcome goes to ``benchmarks/results/discovery_refine-METHOD.json``; a
   method with a file is not run again.
4. ``table``: per game, mean final return with its 95% bootstrap interval, the paired
   per-seed difference from ppo.evz, normalized score (random 0, ppo.evz 1); over games,
   the IQM of normalized scores and the probability of improvement with stratified
   bootstrap intervals (rliable; Agarwal et al. 2021), separately for the search's
   training games and the held-out games; the verdict by the rule of
   :func:`evozero.search.report.verdict`; learning curves; what the search cost; and what
   the run says about the search (promotions, which mutations survived them, how the
   rung-0 ranking held at 2M). Markdown to stdout and
   ``benchmarks/results/discovery.md``, curves to ``benchmarks/results/discovery_curves.png``.

    python benchmarks/discovery.py search --max-time 2700 --workers 2
    python benchmarks/discovery.py validate --workers 2
    python benchmarks/discovery.py refine --top 2
    python benchmarks/discovery.py table
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from evozero.analysis.figures import mean_ci
from evozero.program import dsl
from evozero.search.fitness import random_return, reference_program, run_task
from evozero.search.protocol import RunRecord
from evozero.search.report import budget_text, mean_intervals, seeds_text, steps_text, summarize
from evozero.search.store import Candidate, RunStore
from evozero.search.tasks import SUITES, Task

RESULTS = Path("benchmarks/results")
RUN = RESULTS / "discovery"
VALIDATION = RESULTS / "discovery_validation.jsonl"
SUITE = "standard"
GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
STEPS = 10_000_000
SEEDS = tuple(range(2000, 2005))
#: The validated rules (keys of the results file) and how tables name them.
RULES = ("best", "ppo")
NAMES = {"best": "best rule", "ppo": "ppo.evz"}


def training_games() -> tuple[str, ...]:
    """The MinAtar games the suite trains on (the others stay held out)."""
    return tuple(sorted({t.env for rung in SUITES[SUITE].rungs for t in rung}))


def search(args: argparse.Namespace) -> None:
    """Start or resume the search (the CLI, as a user runs it)."""
    cli = [sys.executable, "-m", "evozero", "evolve", "--max-time", str(args.max_time)]
    if (RUN / "run.sqlite").exists():
        cmd = [*cli, "--resume", str(RUN), "--workers", str(args.workers)]
    else:
        cmd = [*cli, "--suite", SUITE, "--budget", str(args.budget), "--seed", "0"]
        cmd += ["--workers", str(args.workers), "--out", str(RUN)]
    print(" ".join(cmd[2:]), flush=True)
    sys.exit(subprocess.call(cmd))


def best_rule() -> tuple[int, str]:
    """The best rule the search discovered: (candidate id, program text). The search's
    own ranking (highest rung, then fitness there) over the rules it bred, so a seed
    program (ppo.evz itself, when nothing beat it) is never compared with itself."""
    with RunStore.open(RUN) as store:
        bred = [c for c in store.best(len(store.candidates())) if c.origin == "mutation"]
        if not bred:
            sys.exit(f"{RUN}: no bred rule passed the suite yet")
        return bred[0].id, bred[0].text


def refine_file(method: str) -> Path:
    return RESULTS / f"discovery_refine-{method}.json"


def refine(args: argparse.Namespace) -> None:
    """Refine the run's best rules' constants by each method (the CLI, as a user runs it)."""
    for method in args.methods:
        out = refine_file(method)
        if out.exists():
            print(f"{out} exists: {method} was run", flush=True)
            continue
        cmd = [sys.executable, "-m", "evozero", "refine", str(RUN), "--top", str(args.top)]
        cmd += ["--method", method, "--steps", str(args.steps), "--json"]
        print(" ".join(cmd[2:]), flush=True)
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if done.returncode:
            sys.exit(done.returncode)
        out.write_text(json.dumps(json.loads(done.stdout), indent=1) + "\n")


def _interval(values: list[float]) -> dict[str, Any] | None:
    return mean_intervals([values])[0]


def refine_lines() -> list[str]:
    """The refinement table: one row per refined rule and method."""
    rows = []
    for method in ("es", "metagrad"):
        if refine_file(method).exists():
            rows += [(method, r) for r in json.loads(refine_file(method).read_text())]
    if not rows:
        return ["", "Refinement: not run yet (`python benchmarks/discovery.py refine`)."]
    v0 = rows[0][1]["validation"]
    out = [
        "",
        f"Refinement of the search's best rules (refined on breakout at 500k steps; "
        f"validated on {v0['env']} at {steps_text(v0['steps'])} steps on "
        f"{seeds_text(v0['seeds'])}, paired):",
        "",
        "| rule | method | constants moved | original | refined | difference (paired) | "
        "kept | env steps | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, r in rows:
        v = r["validation"]
        moved = ", ".join(
            f"{k} {r['original'][k]:.3g} → {r['refined'][k]:.3g}"
            for k in r["original"]
            if f"{r['original'][k]:.3g}" != f"{r['refined'][k]:.3g}"
        )
        diff = np.subtract(v["refined"], v["original"])
        out.append(
            f"| {r['target']} | {method} | {moved or 'none'} | {_fmt(_interval(v['original']))} | "
            f"{_fmt(_interval(v['refined']))} | {np.mean(diff):+.2f} [{v['lo']:+.2f}, "
            f"{v['hi']:+.2f}] | {'yes' if r['kept'] else 'no'} | {r['steps'] / 1e6:.1f}M | "
            f"{r['seconds']:.0f} |"
        )
    return out


def _done() -> set[tuple[str, str, int]]:
    if not VALIDATION.exists():
        return set()
    return {(r["rule"], r["task"], r["seed"]) for r in map(json.loads, VALIDATION.open())}


def validate(args: argparse.Namespace) -> None:
    """Train the best rule and ppo.evz (``--rules``) at 10M steps on every game and seed
    not done yet (ppo.evz needs no finished search)."""
    programs = {RULES[1]: reference_program("ppo")}
    rule_id = None
    if RULES[0] in args.rules:
        rule_id, text = best_rule()
        programs[RULES[0]] = dsl.parse(text, filename=f"candidate {rule_id}")
    if VALIDATION.exists() and rule_id is not None:
        ids = {r["candidate"] for r in map(json.loads, VALIDATION.open()) if r["rule"] == "best"}
        if ids - {rule_id}:
            sys.exit(
                f"{VALIDATION} holds runs of candidate(s) {sorted(ids)}, but the run's "
                f"best rule is now candidate {rule_id}: move the file away to start over"
            )
    done = _done()
    jobs = [
        (rule, Task(game, STEPS, (seed,)))
        for seed in SEEDS
        for game in GAMES
        for rule in args.rules
        if (rule, Task(game, STEPS).label, seed) not in done
    ]
    print(f"best rule: candidate {rule_id}; {len(jobs)} runs to go", flush=True)

    def run(job: tuple[str, Task]) -> None:
        rule, task = job
        (record,) = run_task(programs[rule], task)
        row = {"rule": rule, "candidate": rule_id if rule == RULES[0] else None}
        row |= record.to_json()
        with VALIDATION.open(
            "a"
        ) as f:  # one line per run: a crash loses at most the runs in flight
            f.write(json.dumps(row) + "\n")
        print(
            f"{rule:9s} {task.env:15s} seed {record.seed}: {record.status} "
            f"{record.final_return} ({record.seconds:.0f} s)",
            flush=True,
        )

    with ThreadPoolExecutor(args.workers) as pool:  # train() releases the GIL
        list(pool.map(run, jobs))


def _records() -> dict[str, list[RunRecord]]:
    out: dict[str, list[RunRecord]] = {rule: [] for rule in RULES}
    for row in map(json.loads, VALIDATION.open()):
        rule = row.pop("rule")
        row.pop("candidate")
        out[rule].append(RunRecord.from_json(row))
    return out


def _fmt(iv: dict[str, Any] | None, signed: bool = False) -> str:
    if iv is None:
        return "—"
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"{f.format(iv['mean'])} [{f.format(iv['lo'])}, {f.format(iv['hi'])}]"


def _est(e: dict[str, Any] | None) -> str:
    return "—" if e is None else f"{e['estimate']:.2f} [{e['lo']:.2f}, {e['hi']:.2f}]"


def validation_report() -> tuple[dict[str, Any], dict[str, list[RunRecord]]]:
    """The summary (:func:`evozero.search.report.summarize`) of the validation runs."""
    if not VALIDATION.exists():
        sys.exit(f"no {VALIDATION} yet: run `python benchmarks/discovery.py validate` first")
    records = _records()
    ppo = {(r.task, r.seed): r.final_return for r in records[RULES[1]]}
    # Seeds on which ppo.evz finished (all of them, once the validation is done).
    tasks = {
        g: Task(g, STEPS, seeds)
        for g in GAMES
        if (seeds := [s for s in SEEDS if ppo.get((Task(g, STEPS).label, s)) is not None])
    }
    train = [t for g, t in tasks.items() if g in training_games()]
    heldout = [t for g, t in tasks.items() if g not in training_games()]
    normalizers = {
        (t.label, s): (random_return(t, s), ppo[(t.label, s)])
        for t in tasks.values()
        for s in t.seeds
    }
    subject = {"role": NAMES[RULES[0]], "id": 0}
    return summarize([subject], {0: records[RULES[0]]}, train, heldout, normalizers), records


def curves_png(records: dict[str, list[RunRecord]], path: Path) -> None:
    """Learning curves, one panel per game: mean over seeds with a 95% interval."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(GAMES), figsize=(3.2 * len(GAMES), 2.8))
    for ax, game in zip(axes, GAMES, strict=True):
        for rule in RULES:
            curves = [
                [np.nan if c is None else c for c in r.curve]
                for r in records[rule]
                if r.task == Task(game, STEPS).label and r.curve
            ]
            if not curves:
                continue
            mean, lo, hi = mean_ci(curves)
            x = np.linspace(0, STEPS / 1e6, len(mean))
            ax.plot(x, mean, label=f"{NAMES[rule]} (n={len(curves)})")
            ax.fill_between(x, lo, hi, alpha=0.2)
        ax.set_title(game + ("" if game in training_games() else " (held out)"), fontsize=10)
        ax.set_xlabel("env steps (M)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("episodic return")
    axes[0].legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _kind(c: Candidate) -> str:
    """A candidate's last mutation (``change_op``), or ``seed program``."""
    return c.mutation.split()[0] if c.mutation else "seed program"


def search_lessons(store: RunStore) -> list[str]:
    """What the run says about the search: promotions, mutations that survived them, and
    how the rung-0 ranking held at rung 1."""
    ladders = store.ladders()
    cands = {c.id: c for c in store.candidates()}
    trained = [cid for cid, ladder in ladders.items() if 0 in ladder]
    promoted = [cid for cid, ladder in ladders.items() if 1 in ladder]
    rungs = [steps_text(rung[0].steps) for rung in SUITES[SUITE].rungs]
    lines = [
        f"- {len(trained)} candidates trained at rung 0 ({rungs[0]}), {len(promoted)} promoted "
        f"to rung 1 ({rungs[1]})."
    ]
    pairs = [
        (ladders[c][0][1], ladders[c][1][1])
        for c in promoted
        if ladders[c][0][1] is not None and ladders[c][1][1] is not None
    ]
    if len(pairs) >= 3:
        a, b = np.array(pairs).T
        lines.append(
            f"- Among promoted candidates, Kendall's tau between fitness at {rungs[0]} and at "
            f"{rungs[1]}: "
            f"{kendalltau(a, b).statistic:.2f} (n={len(pairs)}); {int(np.sum(b < 1.0))} of "
            f"{len(pairs)} scored below ppo.evz (fitness 1) at {rungs[1]}, "
            f"{int(np.sum((a >= 1.0) & (b < 1.0)))} of them at or above it at {rungs[0]}."
        )
    kinds = Counter(_kind(cands[c]) for c in promoted if c in cands)
    all_kinds = Counter(_kind(cands[c]) for c in trained)
    rows = ", ".join(f"{k} {kinds[k]}/{n}" for k, n in all_kinds.most_common())
    lines.append(f"- Promoted / trained at rung 0, by the last mutation (or origin): {rows}.")
    steps = seconds = 0.0
    for c in cands.values():
        for r in store.runs(c.id):
            steps += r.steps
            seconds += r.seconds
    lines.append(
        f"- The search cost {steps / 1e9:.2f} billion env steps and {seconds / 3600:.1f} "
        "core-hours of training (hurdles, rungs and the final report)."
    )
    return lines


def table(_: argparse.Namespace) -> None:
    """Print and write the validation table."""
    report, records = validation_report()
    subject = report["subjects"][0]
    rule_id, text = best_rule()
    out = [
        f"Best rule of the search (candidate {rule_id}) against ppo.evz at "
        f"{budget_text([Task(g, STEPS) for g in GAMES])} on {seeds_text(list(SEEDS))}:",
        "",
        "| game | ppo.evz | best rule | difference (paired) | normalized |",
        "|---|---|---|---|---|",
    ]
    for game in GAMES:
        label = Task(game, STEPS).label
        if label not in subject["tasks"]:
            out.append(f"| {game} | not run yet | | | |")
            continue
        row = subject["tasks"][label]
        norm = "—" if row["normalized"] is None else f"{row['normalized']:.2f}"
        held = "" if game in training_games() else " (held out)"
        out.append(
            f"| {game}{held} | {_fmt(report['ppo'][label])} | {_fmt(row['return'])} | "
            f"{_fmt(row['difference'], signed=True)} | {norm} |"
        )
    out += [
        "",
        f"- Training games: IQM of normalized scores {_est((subject['train'] or {}).get('iqm'))}, "
        f"probability of improvement {_est((subject['train'] or {}).get('improvement'))}.",
        f"- Held-out games: IQM {_est((subject['heldout'] or {}).get('iqm'))}, "
        f"probability of improvement {_est((subject['heldout'] or {}).get('improvement'))}.",
        f"- Verdict: {subject['verdict']['text']}.",
        "",
        "The search:",
    ]
    with RunStore.open(RUN) as store:
        out += search_lessons(store)
        meta = store.meta()
    verdict_2m = (meta.get("report") or {}).get("comparison", {}).get("text")
    if verdict_2m:
        out.append(f"- The run's own final report: {verdict_2m}.")
    out += refine_lines()
    seconds = sum(r.seconds for rs in records.values() for r in rs)
    steps = sum(r.steps for rs in records.values() for r in rs)
    out.append(
        f"- The validation cost {steps / 1e9:.2f} billion env steps and "
        f"{seconds / 3600:.1f} core-hours."
    )
    text_md = "\n".join(out)
    print(text_md)
    (RESULTS / "discovery.md").write_text(text_md + "\n")
    curves_png(records, RESULTS / "discovery_curves.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    s = sub.add_parser("search", help="start or resume the search")
    s.add_argument("--max-time", type=int, default=2700, help="seconds, over all sessions")
    s.add_argument("--budget", type=int, default=5000, help="rung-0 candidates at most")
    s.add_argument("--workers", type=int, default=2)
    v = sub.add_parser("validate", help="10M-step runs of the best rule and ppo.evz")
    v.add_argument("--workers", type=int, default=2)
    v.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES), help="default: both")
    r = sub.add_parser("refine", help="refine the run's best rules' constants")
    r.add_argument("--top", type=int, default=2, help="best rules to refine")
    r.add_argument("--methods", nargs="+", choices=("es", "metagrad"), default=["es", "metagrad"])
    r.add_argument("--steps", type=int, default=8_000_000, help="env steps per rule")
    sub.add_parser("table", help="the validation table, curves and what the search teaches")
    args = ap.parse_args()
    stages = {"search": search, "validate": validate, "refine": refine, "table": table}
    stages[args.stage](args)


if __name__ == "__main__":
    main()
