"""Terminal views of searches and runs (rich), and their JSON counterparts."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from evozero.native.train import TrainConfig
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


def _networks(row: dict[str, Any]) -> str:
    """The networks a suite selects on, and its hurdle's where that differs:
    ``conv (hurdle mlp)``."""

    def network(task: dict[str, Any]) -> str:
        return task["config"].get("network", TrainConfig.network)

    rungs = sorted({network(t) for rung in row["rungs"] for t in rung["tasks"]})
    hurdle = network(row["hurdle"]) if row.get("hurdle") else None
    return ", ".join(rungs) + (f" (hurdle {hurdle})" if hurdle and [hurdle] != rungs else "")


def suites_view(rows: Sequence[dict[str, Any]]) -> RenderableType:
    """The table of ``evozero suites``."""
    table = Table(
        title="task suites (cost: estimated seconds of one worker per candidate on this "
        "machine; expected includes promotions)",
        title_justify="left",
    )
    cols = ("suite", "rungs (promote)", "tasks", "network", "target", "held out", "rung 0")
    for col in (*cols, "expected"):
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
            _networks(r),
            f"{steps_label(r['target_steps'])}, {r['report_seeds']} seeds",
            ", ".join(t["env"] for t in r["heldout"]) or "-",
            f"{rung0:,.0f} s",
            f"{r['cost']['expected_seconds']:,.0f} s",
        )
    return Group(table, Text("descriptions: evozero suites --json", style="dim"))


def report_view(report: dict[str, Any]) -> RenderableType:
    """The final report: per task returns and differences from ppo.evz, the aggregates
    with 95% intervals, each program's verdict, and the budget and seeds behind them."""

    def ci(iv: dict[str, Any] | None, signed: bool = False) -> str:
        if not iv:
            return "-"
        f = "{:+.3g}" if signed else "{:.3g}"
        return f"{f.format(iv['mean'])} [{f.format(iv['lo'])}, {f.format(iv['hi'])}]"

    def est(e: dict[str, Any] | None) -> str:
        return "-" if not e else f"{e['estimate']:.2f} [{e['lo']:.2f}, {e['hi']:.2f}]"

    held = set(report["heldout_tasks"])
    tasks = Table(
        title=f"final report, {report['measured']} (mean [95% CI]; normalized: random 0, "
        f"{report['baseline']} 1; Δ: paired difference in return from {report['baseline']})",
        title_justify="left",
    )
    for col in ("program", "task", "return", "normalized", "Δ return"):
        tasks.add_column(col, justify="left" if col in ("program", "task") else "right")
    for label, iv in report["ppo"].items():
        name = f"{label} (held out)" if label in held else label
        tasks.add_row(report["baseline"], name, ci(iv), "1", "")
    for subj in report["subjects"]:
        for label, row in subj["tasks"].items():
            name = f"{label} (held out)" if label in held else label
            diff = Text(ci(row["difference"], signed=True), style="red" if row["loss"] else "")
            tasks.add_row(
                f"{subj['role']} #{subj['id']}",
                name,
                ci(row["return"]),
                fmt(row["normalized"]),
                diff,
            )
    summary = Table(
        title="over tasks: IQM of normalized scores, probability of improvement over "
        f"{report['baseline']} (stratified bootstrap)",
        title_justify="left",
    )
    for col in ("program", "IQM train", "P(improve) train", "IQM held out", "P(improve) held out"):
        summary.add_column(col, justify="left" if col == "program" else "right")
    for subj in report["subjects"]:
        train, heldout = subj["train"] or {}, subj["heldout"] or {}
        summary.add_row(
            f"{subj['role']} #{subj['id']} ({subj['origin']})",
            est(train.get("iqm")),
            est(train.get("improvement")),
            est(heldout.get("iqm")),
            est(heldout.get("improvement")),
        )
    parts: list[RenderableType] = [tasks, summary]
    styles = {"improved": "bold green", "lost": "bold red"}
    for subj in report["subjects"]:
        v = subj["verdict"]
        parts.append(
            Text(
                f"{subj['role']} #{subj['id']}: {v['text']}", style=styles.get(v["verdict"], "bold")
            )
        )
        for failure in subj["failures"]:
            parts.append(Text(f"{subj['role']}: {failure}", style="yellow"))
    return Group(*parts)


def _stored_suite(meta: Mapping[str, Any]) -> Suite | None:
    """The suite a run stored, or None where it does not decode (the run store reports
    damage itself)."""
    try:
        return Suite.from_json(meta["suite"])
    except (KeyError, TypeError, ValueError):
        return None


def run_overview(store: RunStore) -> dict[str, Any]:
    """One run's headline figures (``evozero runs``)."""
    meta = store.meta()
    config = meta.get("config", {})
    best = store.best(1)
    suite = _stored_suite(meta)
    rungs = store.rung_summary()
    if suite is not None:  # each rung's step budget, as the live display shows it
        for r in rungs:
            if r["rung"] < len(suite.rungs):
                r["steps"] = max(t.steps for t in suite.rungs[r["rung"]])
    name = config.get("suite")
    if suite is not None and name != suite.name:  # a suite file: its name, then the file
        name = f"{suite.name} ({name})"
    return {
        "run": str(store.directory),
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(meta.get("created_at", 0))),
        "state": meta.get("state"),
        "suite": name,
        "budget": config.get("budget"),
        "trained": store.count(*TRAINED),  # the search's: what its budget counts
        "refined": store.count(*TRAINED, children=True),  # refined children, outside it
        "duplicates": store.count(Status.DUPLICATE),
        "best_fitness": best[0].fitness if best else None,
        "best_id": best[0].id if best else None,
        "best_rung": best[0].rung if best else None,
        "rungs": rungs,
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


def refined_lines(refined: object) -> list[str]:
    """What ``evolve --refine-top`` did to each rule (the run's meta ``refined``: run
    data, so read defensively), one line each, after a blank line; none if nothing."""
    if not isinstance(refined, dict) or not refined:
        return []
    lines = [""]
    for rule, r in refined.items():
        r = r if isinstance(r, dict) else {}
        child = r.get("child")
        lines.append(
            f"refined candidate {rule} by {r.get('method', '?')}: {r.get('verdict', '?')}"
            + (f"; stored as candidate {child}" if isinstance(child, int) else "")
        )
    return lines
