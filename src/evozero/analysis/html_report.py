"""The HTML run report: one self-contained file a researcher can put in a slide deck.

It holds the run's metadata and versions, the search curve, the Pareto front of fitness
against complexity, the lineage of the best rule, the learning curves of the report's
rules on every report task (when the run recorded them), the per-task results and the
aggregate with confidence intervals from the final report, each hall-of-fame rule as
pseudocode, typeset formulas and an explanation against the nearest reference program,
and the verdict. Figures are embedded as ``data:`` URIs; nothing refers to the network.

The run is read only through :class:`~evozero.search.store.RunStore`'s public methods.
"""

from __future__ import annotations

import html
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evozero.analysis import figures
from evozero.analysis.curve import search_points
from evozero.analysis.explain import Explanation, explain
from evozero.export import latex_expr, live_program, pseudocode
from evozero.program.model import Program
from evozero.program.symbolic import component_exprs, input_symbol
from evozero.search.protocol import Phase
from evozero.search.report import hall_of_fame
from evozero.search.store import Candidate, DamagedCandidate, RunStore
from evozero.status import TRAINED

__all__ = ["report_html", "write_report"]

#: Reference rule the learning curves are compared with.
BASELINE = "ppo"

_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;
text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.85rem}
img{max-width:100%}.verdict{font-weight:bold;font-size:1.1rem}.note{color:#666}
.rule{border-left:3px solid #c33;padding-left:1rem;margin:1.5rem 0}
"""


def _e(x: object) -> str:
    return html.escape(str(x))


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], left: int = 1) -> str:
    def cell(tag: str, i: int, v: object) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{_e(v)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ci(iv: dict[str, Any] | None) -> str:
    if not iv or not iv.get("n"):
        return "-"
    return f"{iv['mean']:.3f} [{iv['lo']:.3f}, {iv['hi']:.3f}]"


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_e(alt)}">'


# ----------------------------------------------------------------------------- sections


def _metadata(store: RunStore, meta: dict[str, Any]) -> str:
    config = meta.get("config", {})
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(meta.get("created_at", 0)))
    rows = [
        ("run", store.directory),
        ("created", created),
        ("state", meta.get("state")),
        ("suite", config.get("suite")),
        ("budget", config.get("budget")),
        ("trained", store.count(*TRAINED)),
        ("search seconds", _fmt(meta.get("search_seconds"), 0)),
    ]
    rows += [(k, v) for k, v in config.items() if k not in ("suite", "budget", "init_texts")]
    env = meta.get("environment", {})
    return (
        "<h2>Run</h2>"
        + _table(("setting", "value"), rows, left=2)
        + "<h3>Versions</h3>"
        + _table(("component", "version"), sorted(env.items()), left=2)
    )


def _search_curve(store: RunStore) -> str:
    points = [(n, f, None if r is None else str(r)) for n, f, r in search_points(store)]
    if not points:
        return "<h2>Search curve</h2><p>no candidate has a fitness yet.</p>"
    return (
        "<h2>Search curve</h2><p>Best fitness so far against trained candidates "
        "(normalized: random 0, ppo.evz 1; duplicates skipped).</p>"
        + _img(figures.search_curve(points), "search curve")
    )


def _pareto(store: RunStore, hof: Sequence[Candidate]) -> str:
    passed = [(c.complexity, c.fitness) for c in store.passed_by_complexity()]
    if not passed:
        return "<h2>Pareto front</h2><p>no candidate has passed the full suite yet.</p>"
    front = [(c.complexity, c.fitness, f"#{c.id}") for c in hof]
    return (
        "<h2>Pareto front</h2><p>Fitness against complexity of every rule that passed the "
        "suite; the hall of fame is the front.</p>"
        + _img(figures.pareto_front(passed, front), "Pareto front")  # type: ignore[arg-type]
    )


def _lineage(store: RunStore, best: Candidate) -> str:
    chain = [best]
    while chain[-1].parent is not None and len(chain) < 10_000:
        chain.append(store.candidate(chain[-1].parent))
    rows = [
        (f"#{c.id}", c.origin, c.mutation or "-", _fmt(c.fitness), c.complexity)
        for c in reversed(chain)
    ]
    return f"<h2>Lineage of the best rule (#{best.id})</h2>" + _table(
        ("candidate", "origin", "mutation from its parent", "fitness", "ops"), rows, 3
    )


def _final_report(report: dict[str, Any] | None) -> str:
    """The stored final report (:func:`evozero.search.report.final_report`): per task the
    raw return, its normalized score and the paired difference from ppo.evz; over tasks
    the IQM and the probability of improvement; each rule's verdict."""
    if not report:
        return (
            "<h2>Final report</h2><p>This run has no final report (the search has not "
            "finished); no verdict.</p>"
        )
    tasks = [*report["train_tasks"], *report["heldout_tasks"]]
    per_task = [
        (
            f"{s['role']} #{s['id']}",
            task,
            _ci(t["return"]),
            _fmt(t["normalized"]),
            _ci(t["difference"]) + (" (loss)" if t["loss"] else ""),
        )
        for s in report["subjects"]
        for task in tasks
        if (t := s["tasks"].get(task))
    ]
    per_task += [
        (f"{report['baseline']}.evz", task, _ci(report["ppo"].get(task)), "1.000", "-")
        for task in tasks
    ]
    aggregate = [
        (
            f"{s['role']} #{s['id']} ({s['origin']})",
            *(_estimate(s[part].get(stat)) for part in ("train", "heldout") for stat in _STATS),
        )
        for s in report["subjects"]
    ]
    verdicts = [f"{s['role']} #{s['id']}: {s['verdict']['text']}" for s in report["subjects"]]
    failures = [f"{s['role']}: {f}" for s in report["subjects"] for f in s["failures"]]
    return (
        f"<h2>Final report</h2><p>{_e(report['measured'])}; scores normalized per task "
        f"(random 0, {report['baseline']}.evz 1); intervals are {report['level']:.0%} "
        f"stratified bootstrap intervals ({report['bootstrap_samples']} resamples). "
        f"Held-out tasks: {_e(', '.join(report['heldout_tasks']) or 'none')}.</p>"
        + _table(
            ("rule", "task", "return (mean [CI])", "normalized", "vs ppo.evz (paired)"),
            per_task,
            2,
        )
        + _table(
            (
                "rule",
                "train IQM",
                "train P(improvement)",
                "held-out IQM",
                "held-out P(improvement)",
            ),
            aggregate,
        )
        + f'<p class="verdict">Verdict: {_e(report["comparison"]["text"])}</p>'
        + "".join(f'<p class="note">{_e(v)}</p>' for v in verdicts)
        + "".join(f'<p class="note">{_e(f)}</p>' for f in failures)
    )


_STATS = ("iqm", "improvement")


def _estimate(e: dict[str, Any] | None) -> str:
    if not e or not e.get("n"):
        return "-"
    return f"{e['estimate']:.3f} [{e['lo']:.3f}, {e['hi']:.3f}]"


def _curves(store: RunStore, report: dict[str, Any] | None, baseline_key: str) -> str:
    """Learning curves of the report's rules, and of ppo.evz where the run trained it on
    the report's seeds; a plain note where the run recorded none."""
    head = "<h2>Learning curves on the report tasks</h2>"
    if not report:
        return head + "<p>No final report, so no report-task curves were recorded.</p>"
    by_task: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    labels = {s["id"]: f"{s['role']} #{s['id']}" for s in report["subjects"]}
    baseline = {c.id for c in store.candidates() if c.key == baseline_key}
    for cid in baseline:
        labels[cid] = f"{labels[cid]} (= {BASELINE}.evz)" if cid in labels else f"{BASELINE}.evz"
    for cid, label in labels.items():
        for r in store.runs(cid, Phase.REPORT):
            if r.curve:
                by_task[r.task][label].append([float("nan") if x is None else x for x in r.curve])
    if not by_task:
        return head + "<p>This run recorded no learning curves for its report runs.</p>"
    shown = {label for rules in by_task.values() for label in rules}
    has_baseline = any(labels[cid] in shown for cid in baseline)
    note = (
        ""
        if has_baseline
        else f'<p class="note">{BASELINE}.evz\'s learning curves were not recorded in this run '
        "(it enters the report only as the normalizer, whose final returns are stored); "
        "shown are the rules the final report trained.</p>"
    )
    imgs = "".join(
        _img(figures.learning_curves(t, rules), f"learning curves on {t}")
        for t, rules in sorted(by_task.items())
    )
    return head + note + imgs


def _formulas(program: Program) -> str:
    live = live_program(program)
    parts = []
    for kind in ("scan", "post", "objective"):
        for out, expr in component_exprs(live, kind).items():
            if kind == "post" and expr == input_symbol(out):
                continue  # passes its input through
            tex = f"{latex_expr(input_symbol(out))} = {latex_expr(expr)}"
            uri = figures.formula_uri(tex)
            shown = _img(uri, f"{kind} {out}") if uri else f"<pre>{_e(tex)}</pre>"
            parts.append(f"<div><b>{_e(kind)}</b> {shown}</div>")
    return "".join(parts)


def _rule(store: RunStore, c: Candidate, title: str) -> tuple[str, Explanation | None]:
    try:
        program = store.program(c)
    except DamagedCandidate as e:
        return f'<div class="rule"><h3>{_e(title)}</h3><p>{_e(e)}</p></div>', None
    name = f"#{c.id}"
    try:
        why = explain(program, name)
        explained = f"<p><b>Explanation:</b></p><pre>{_e(why.text())}</pre>"
    except ValueError as e:
        why, explained = None, f'<p class="note">not explained: {_e(e)}</p>'
    body = (
        f'<div class="rule"><h3>{_e(title)}</h3>'
        f"<p>fitness {_fmt(c.fitness)}, {c.complexity} ops, origin {_e(c.origin)}</p>"
        f"{explained}<p><b>Pseudocode</b> (live code):</p><pre>{_e(pseudocode(program))}</pre>"
        f"<p><b>Formulas</b> (typeset offline with matplotlib mathtext):</p>"
        f"{_formulas(program)}</div>"
    )
    return body, why


def report_html(store: RunStore, top: int = 5) -> str:
    """The HTML report of the run in ``store`` (its ``top`` best rules in the hall of
    fame section)."""
    from evozero.program.canon import canonical_key
    from evozero.search.fitness import reference_program

    meta = store.meta()
    report = meta.get("report")
    hof = hall_of_fame(store)
    best = store.best(top)
    rules = {c.id: c for c in [*best, *hof]}
    sections = [_metadata(store, meta), _search_curve(store), _pareto(store, hof)]
    if best:
        sections.append(_lineage(store, best[0]))
    sections.append(_curves(store, report, canonical_key(reference_program(BASELINE))))
    sections.append(_final_report(report))
    sections.append("<h2>Hall of fame and best rules</h2>")
    if not rules:
        sections.append("<p>no rule has passed the full suite yet.</p>")
    summaries = []
    for c in sorted(rules.values(), key=lambda c: (-(c.fitness or 0), c.complexity, c.id)):
        body, why = _rule(store, c, f"#{c.id}")
        sections.append(body)
        if why is not None:
            summaries.append((f"#{c.id}", _fmt(c.fitness), why.summary()))
    if summaries:
        sections.insert(-len(rules), _table(("rule", "fitness", "explanation"), summaries, 3))
    title = f"evozero run {store.directory.name}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
        + "".join(sections)
        + "</body></html>"
    )


def write_report(store: RunStore, output: str | Path, top: int = 5) -> Path:
    """Write the HTML report of ``store``'s run to ``output``; the path written."""
    path = Path(output)
    path.write_text(report_html(store, top), encoding="utf-8")
    return path
