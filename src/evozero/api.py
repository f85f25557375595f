"""The Python API for the whole flow, as thin as the command line over the same code.

``evozero.evolve(budget=..., suite=...)`` runs a search (what ``evozero evolve`` does)
and returns a :class:`Run`; ``evozero.open_run(path)`` opens a finished (or running) one.
A :class:`Run` gives the hall of fame as a :class:`Table` (records that print as Markdown
and render as HTML in a notebook), the best rules, their explanations against the
reference programs, the HTML report and exported Python modules::

    run = evozero.open_run("runs/my-run")
    run.hall_of_fame()          # a Table: id, fitness, complexity, origin, explanation
    run.best(1)[0].program      # a Program
    run.explain()               # [Explanation] of the best rule
    run.report("report.html")   # the self-contained HTML report
    run.export("rule.py", backend="torch")

Each call opens the run store read-only for its own duration, so a :class:`Run` never
holds the run's lock.
"""

from __future__ import annotations

import html
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evozero.analysis.explain import Explanation
    from evozero.program.model import Program
    from evozero.search.store import Candidate, RunStore

__all__ = ["Rule", "Run", "Table", "evolve", "open_run"]


@dataclass(frozen=True)
class Rule:
    """One rule of a run: the candidate's id, scores and program."""

    id: int
    fitness: float | None
    complexity: int
    origin: str
    mutation: str | None
    program: Program

    @property
    def text(self) -> str:
        """The rule's live code as ``.evz`` text."""
        from evozero.export import pseudocode

        return pseudocode(self.program)

    def record(self) -> dict[str, Any]:
        """The rule as a table row (without the program)."""
        d = asdict(self)
        del d["program"]
        return d


class Table(list[dict[str, Any]]):
    """A list of records (dicts with the same keys) that prints as a Markdown table and
    renders as an HTML table in Jupyter (``_repr_html_``)."""

    def columns(self) -> list[str]:
        """The keys of the records, in the first record's order."""
        return list(self[0]) if self else []

    @staticmethod
    def _cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else "" if v is None else str(v)

    def to_markdown(self) -> str:
        """The table as GitHub Markdown."""
        cols = self.columns()
        if not cols:
            return "(no rows)"
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in self:
            cells = (self._cell(r.get(c)).replace("|", "\\|").replace("\n", " ") for c in cols)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cols = self.columns()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        rows = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(self._cell(r.get(c)))}</td>" for c in cols)
            + "</tr>"
            for r in self
        )
        return f"<table><tr>{head}</tr>{rows}</table>"

    def __str__(self) -> str:
        return self.to_markdown()


class Run:
    """A search run on disk (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from evozero.search.store import RunStore

        self.path = Path(path)
        with RunStore.open(self.path):  # a clear RunStoreError now if it is not a run
            pass

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _store(self) -> RunStore:
        from evozero.search.store import RunStore

        return RunStore.open(self.path)

    @staticmethod
    def _rule(c: Candidate, program: Program) -> Rule:
        return Rule(c.id, c.fitness, c.complexity, c.origin, c.mutation, program)

    @property
    def meta(self) -> dict[str, Any]:
        """The run's metadata: config, suite, versions, state, final report."""
        with self._store() as store:
            return store.meta()

    @property
    def verdict(self) -> str | None:
        """The final report's verdict in words (None before the report)."""
        report = self.meta.get("report") or {}
        return report.get("comparison", {}).get("text")

    def best(self, k: int = 1) -> list[Rule]:
        """The ``k`` fittest rules that passed the full suite, fittest first; a damaged one
        (its stored program does not parse) is passed over with a warning naming it."""
        with self._store() as store:
            readable, skipped = store.best_readable(k)
        for e in skipped:
            warnings.warn(f"{e}; passed over", stacklevel=2)
        return [self._rule(c, p) for c, p in readable]

    def hall_of_fame(self, explain: bool = True) -> Table:
        """The Pareto front of fitness against complexity, fittest first; with
        ``explain``, each row says how the rule differs from the nearest reference."""
        from evozero.analysis.explain import explain as explain_rule
        from evozero.search.report import hall_of_fame

        with self._store() as store:
            rules = [self._rule(c, store.program(c)) for c in hall_of_fame(store)]
        rows = Table()
        for r in rules:
            row = r.record()
            if explain:
                try:
                    row["explanation"] = explain_rule(r.program, f"#{r.id}").summary()
                except ValueError as e:  # too large or too slow for sympy
                    row["explanation"] = f"not explained: {e}"
            rows.append(row)
        return rows

    def explain(self, k: int = 1) -> list[Explanation]:
        """How each of the ``k`` best rules differs from the nearest reference program."""
        from evozero.analysis.explain import explain

        return [explain(r.program, f"#{r.id}") for r in self.best(k)]

    def report(self, path: str | os.PathLike[str] | None = None, top: int = 5) -> Path:
        """Write the self-contained HTML report (default: ``report.html`` in the run)."""
        from evozero.analysis.html_report import write_report

        with self._store() as store:
            return write_report(store, path or self.path / "report.html", top)

    def export(
        self, path: str | os.PathLike[str], backend: str = "numpy", k: int = 1
    ) -> list[Path]:
        """Write the ``k`` best rules as standalone Python modules (``path``, or
        ``path_1.py`` ... when ``k > 1``); the paths written."""
        from evozero.export import write_export

        out = Path(path)
        rules = self.best(k)
        if not rules:
            raise ValueError(f"{self.path} has no rule that passed the full suite yet")
        paths = (
            [out]
            if k == 1
            else [out.with_name(f"{out.stem}_{i}{out.suffix or '.py'}") for i in range(1, k + 1)]
        )
        for r, p in zip(rules, paths, strict=False):
            write_export(r.program, p, backend, source=f"{self.path} candidate {r.id}")
        return paths[: len(rules)]


def open_run(path: str | os.PathLike[str]) -> Run:
    """Open the run in ``path`` (a directory ``evozero evolve`` wrote)."""
    return Run(path)


def evolve(
    budget: int,
    suite: str | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    init: str = "seeds",
    seeds: list[str | os.PathLike[str]] | None = None,
    population: int | None = None,
    tournament: int | None = None,
    workers: int | None = None,
    backend: str | None = None,
    device: str | None = None,
    seed: int | None = None,
    report: bool = True,
    refine_top: int | None = None,
    refine_method: str | None = None,
    refine_steps: int | None = None,
) -> Run:
    """Run a search, as ``evozero evolve`` does, and return the finished :class:`Run`.

    Args:
        budget: how many candidates to train.
        suite: ``tiny``, ``quick`` (the default), ``standard`` ... (:mod:`evozero.search.tasks`).
        out: the run directory (default: ``runs/<time>-<suite>-s<seed>``).
        init: ``seeds`` (the reference programs), ``noop`` or ``random``.
        seeds: ``.evz`` files to start from instead of ``init``.
        population, tournament, workers, backend, seed: as the command's flags (None:
            their defaults).
        device: as ``--device``: ``cuda`` trains the candidates in batches on the GPU
            (the ``batch`` backend, picked when ``backend`` is None); ``cpu`` (default)
            as today. Raises RuntimeError, before the run is made, if ``cuda`` lacks the
            CUDA extension or a GPU.
        report: run the final report (fresh seeds, held-out tasks, the verdict).
        refine_top, refine_method, refine_steps: as ``--refine-top`` ...: refine the
            constants of the best rules after the search (:mod:`evozero.refine.stage`).
    """
    from evozero.refine.stage import check_stage
    from evozero.refine.stage import refine_top as refine_stage
    from evozero.search.config import SearchConfig, default_run_dir
    from evozero.search.driver import Search
    from evozero.search.tasks import get_suite

    if device == "cuda":
        from evozero.search.batched import check_device

        check_device("cuda")  # before a run directory is made
        backend = backend or "batch"
    given = {
        k: v
        for k, v in (
            ("suite", suite),
            ("population", population),
            ("tournament", tournament),
            ("workers", workers),
            ("backend", backend),
            ("device", device),
            ("seed", seed),
            ("refine_top", refine_top),
            ("refine_method", refine_method),
            ("refine_steps", refine_steps),
        )
        if v is not None
    }
    texts = tuple((str(p), Path(p).read_text()) for p in seeds or ())
    config = SearchConfig(budget=budget, init=init, init_texts=texts, **given)
    check_stage(config, get_suite(config.suite))  # a ValueError before the search
    run_dir = Path(out) if out is not None else default_run_dir(config)
    search = Search.create(run_dir, config, after_search=refine_stage)
    try:
        search.run(report=report)
    finally:
        search.store.close()
    return Run(run_dir)
