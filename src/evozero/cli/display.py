"""Terminal views of searches and runs (rich), and their JSON counterparts."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from evozero.search.driver import SearchStatus
from evozero.search.report import hall_of_fame
from evozero.search.store import Candidate, RunStore
from evozero.search.tasks import Suite
from evozero.status import TRAINED, Status


def fmt(x: float | None, digits: int = 3) -> str:
    """A number for a table cell ('-' for missing)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


def candidates_table(cands: Sequence[Candidate], title: str) -> Table:
    """Rank, id, rung (of a multi-fidelity run), fitness (at that rung), complexity,
    per-task scores and origin of candidates."""
    labels = sorted({k for c in cands for k in c.scores})
    rungs = any(c.rung for c in cands)
    table = Table(title=title, title_justify="left")
    for col in ("#", "id", *(("rung",) if rungs else ()), "fitness", "ops", *labels, "from"):
        table.add_column(col, justify="left" if col == "from" else "right")
    for rank, c in enumerate(cands, 1):
        # The mutation's kind only: its full description is in `show --json`.
        origin = (
            c.origin if c.parent is None else f"{c.parent} → {(c.mutation or '').split(' ')[0]}"
        )
        table.add_row(
            str(rank),
            str(c.id),
            *((str(c.rung),) if rungs else ()),
            fmt(c.fitness),
            str(c.complexity),
            *(fmt(c.scores.get(k)) for k in labels),
            Text(origin, overflow="fold"),
        )
    return table


def status_view(s: SearchStatus) -> RenderableType:
    """The live display of a running search."""
    elapsed = time.time() - s.started
    at = f"rung {s.best.rung}, " if s.best and len(s.rungs) > 1 else ""
    best = (
        f"{s.best.fitness:.3f} (candidate {s.best.id}, {at}{s.best.complexity} ops)"
        if s.best and s.best.fitness is not None
        else "-"
    )
    head = Table.grid(padding=(0, 2))
    head.add_row(
        ProgressBar(total=max(s.budget, 1), completed=s.trained, width=40),
        f"trained {s.trained}/{s.budget}",
        f"[bold]{s.phase}[/]",
        f"{elapsed:,.0f} s",
    )
    stats = Table.grid(padding=(0, 2))
    stats.add_row(
        f"{s.evals_per_hour:,.0f} evals/h",
        f"in flight {s.in_flight}",
        f"duplicates skipped {s.duplicates}",
        f"culled {s.culled}",
        f"failed {s.failed}",
    )
    parts: list[RenderableType] = [head, stats, Text(f"best fitness {best}")]
    if len(s.rungs) > 1:
        parts.append(rungs_table(s.rungs))
    if s.message:
        parts.append(Text(s.message, style="italic"))
    if s.hall_of_fame:
        parts.append(candidates_table(s.hall_of_fame[:6], "hall of fame (best per complexity)"))
    return Panel(Group(*parts), title="evozero evolve", title_align="left")


def rungs_table(rungs: Sequence[dict[str, Any]]) -> Table:
    """Per rung of a multi-fidelity search: its budget, candidates evaluated there and in
    flight, and the best fitness there."""
    table = Table(title="rungs", title_justify="left")
    for col in ("rung", "steps", "evaluated", "in flight", "best"):
        table.add_column(col, justify="right")
    for r in rungs:
        table.add_row(
            str(r["rung"]),
            steps_label(r["steps"]) if r.get("steps") else "-",
            str(r["evaluated"]),
            str(r["in_flight"]),
            fmt(r["best"]),
        )
    return table


def steps_label(steps: int) -> str:
    """``500k``, ``2M``, ``10M``, or the number."""
    for unit, name in ((1_000_000, "M"), (1_000, "k")):
        if steps % unit == 0:
            return f"{steps // unit}{name}"
    return str(steps)


def suite_json(suite: Suite, cost: dict[str, Any]) -> dict[str, Any]:
    """A suite as ``evozero suites --json`` prints it: its definition and its cost."""
    return {
        **suite.to_json(),
        "rungs": [
            {"steps": max(t.steps for t in tasks), "tasks": [t.to_json() for t in tasks]}
            for tasks in suite.rungs
        ],
        "target_steps": suite.target_steps,
        "cost": cost,
    }


def suites_view(rows: Sequence[dict[str, Any]]) -> RenderableType:
    """The table of ``evozero suites``."""
    table = Table(
        title="task suites (cost: estimated seconds of one worker per candidate on this "
        "machine; expected includes promotions)",
        title_justify="left",
    )
    for col in ("suite", "rungs (promote)", "tasks", "target", "held out", "rung 0", "expected"):
        table.add_column(col, justify="right" if col in ("rung 0", "expected") else "left")
    for r in rows:
        rung0 = r["cost"]["hurdle_seconds"] + r["cost"]["rung_seconds"][0]
        table.add_row(
            r["name"],
            " → ".join(steps_label(x["steps"]) for x in r["rungs"])
            + (f" ({r['promote']:g})" if len(r["rungs"]) > 1 else ""),
            ", ".join(
                f"{t['env']}×{len(t['seeds'])}" if len(t["seeds"]) > 1 else t["env"]
                for t in r["rungs"][-1]["tasks"]
            ),
            f"{steps_label(r['target_steps'])}, {r['report_seeds']} seeds",
            ", ".join(t["env"] for t in r["heldout"]) or "-",
            f"{rung0:,.0f} s",
            f"{r['cost']['expected_seconds']:,.0f} s",
        )
    return Group(table, Text("descriptions: evozero suites --json", style="dim"))


def report_view(report: dict[str, Any]) -> RenderableType:
    """The final report: scores on fresh seeds with 95% intervals, and the verdict."""
    table = Table(
        title=f"re-evaluated on {len(report['seeds'])} fresh seeds "
        "(normalized: random 0, ppo.evz 1; mean [95% CI])",
        title_justify="left",
    )
    for col in ("program", "id", "train tasks", "held-out tasks", "gap"):
        table.add_column(col, justify="left" if col == "program" else "right")

    def ci(iv: dict[str, Any] | None) -> str:
        return (
            "-" if not iv or not iv["n"] else f"{iv['mean']:.3f} [{iv['lo']:.3f}, {iv['hi']:.3f}]"
        )

    for subj in report["subjects"]:
        table.add_row(
            f"{subj['role']} ({subj['origin']})",
            str(subj["id"]),
            ci(subj["train"]),
            ci(subj["heldout"]),
            ci(subj["gap"]),
        )
    parts: list[RenderableType] = [
        table,
        Text(
            f"train: {', '.join(report['train_tasks'])}; held out: "
            f"{', '.join(report['heldout_tasks']) or '-'}",
            style="dim",
        ),
    ]
    comp = report["comparison"]
    verdict = comp["text"]
    if "difference" in comp:
        verdict += f" (best − seed: {ci(comp['difference'])})"
    parts.append(Text(verdict, style="bold"))
    for subj in report["subjects"]:
        for failure in subj["failures"]:
            parts.append(Text(f"{subj['role']}: {failure}", style="yellow"))
    return Group(*parts)


def run_overview(store: RunStore) -> dict[str, Any]:
    """One run's headline figures (``evozero runs``)."""
    meta = store.meta()
    config = meta.get("config", {})
    best = store.best(1)
    return {
        "run": str(store.directory),
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(meta.get("created_at", 0))),
        "state": meta.get("state"),
        "suite": config.get("suite"),
        "budget": config.get("budget"),
        "trained": store.count(*TRAINED),
        "duplicates": store.count(Status.DUPLICATE),
        "best_fitness": best[0].fitness if best else None,
        "best_id": best[0].id if best else None,
        "best_rung": best[0].rung if best else None,
        "rungs": store.rung_summary(),
        "verdict": (meta.get("report") or {}).get("comparison", {}).get("verdict"),
        "evozero": meta.get("environment", {}).get("evozero"),
    }


def run_json(store: RunStore, top: int) -> dict[str, Any]:
    """Everything ``evozero show RUN_DIR --json`` prints."""
    meta = store.meta()
    return {
        **run_overview(store),
        "config": meta.get("config"),
        "suite": meta.get("suite"),
        "environment": meta.get("environment"),
        "normalizers": [
            {"task": t, "seed": s, "random": r, "ppo": p}
            for (t, s), (r, p) in sorted(store.normalizers().items())
        ],
        "top": [asdict(c) for c in store.best(top)],
        "hall_of_fame": [asdict(c) for c in hall_of_fame(store)],
        "report": meta.get("report"),
    }
