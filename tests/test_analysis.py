"""The run report, `evozero explain RUN` and the Python API, on one tiny finished run made
through the API (``evozero.evolve``) and one cut short before its final report."""

from __future__ import annotations

import ast
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

import evozero
from evozero.analysis.explain import explain
from evozero.cli import app
from evozero.program import dsl

runner = CliRunner()
TINY = {"suite": "tiny", "population": 6, "tournament": 3, "workers": 2}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> evozero.Run:
    """A finished tiny run, made through the Python API."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EVOZERO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    try:
        return evozero.evolve(8, out=tmp_path_factory.mktemp("runs") / "tiny", **TINY)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def unreported(tmp_path_factory: pytest.TempPathFactory) -> evozero.Run:
    """A run stopped before its final report."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EVOZERO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    try:
        out = tmp_path_factory.mktemp("runs") / "cut"
        return evozero.evolve(2, out=out, report=False, **TINY)
    finally:
        mp.undo()


class _Page(HTMLParser):
    """Every tag's attributes and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _page(path: Path) -> tuple[_Page, str]:
    source = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(source)
    page.close()
    return page, source


def test_report_is_one_self_contained_html_file(run: evozero.Run, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(run.path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page, source = _page(out)
    imgs = [a for t, a in page.tags if t == "img"]
    assert len(imgs) >= 4  # search curve, Pareto front, learning curves, formulas
    assert all((a.get("src") or "").startswith("data:image/png;base64,") for a in imgs)
    assert "http://" not in source and "https://" not in source
    assert not [t for t, a in page.tags if t in ("script", "link", "iframe") or a.get("href")]
    text = " ".join(page.text)
    for section in (
        "Versions",
        "Search curve",
        "Pareto front",
        "Lineage of the best rule",
        "Learning curves on the report tasks",
        "Final report",
        "Verdict:",
        "vs ppo.evz (paired)",
        "train P(improvement)",
        "Hall of fame",
    ):
        assert section in text, section
    assert run.verdict and run.verdict in text
    assert run.meta["environment"]["evozero"] in text


def test_report_explains_every_rule_it_shows(run: evozero.Run) -> None:
    path = run.report()
    assert path == run.path / "report.html"
    page, _ = _page(path)
    text = " ".join(page.text)
    for rule in run.best(5):
        assert explain(rule.program, f"#{rule.id}").summary() in text


def test_report_of_a_run_without_final_report_says_so(unreported: evozero.Run) -> None:
    page, _ = _page(unreported.report())
    text = " ".join(page.text)
    assert "This run has no final report" in text
    assert "no report-task curves were recorded" in text
    assert unreported.verdict is None


def test_explain_a_run_names_its_best_rules(run: evozero.Run) -> None:
    result = runner.invoke(app, ["explain", str(run.path), "--top", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    best = run.best(2)
    assert [d["name"].split()[1] for d in data] == [str(r.id) for r in best]
    for d, r in zip(data, best, strict=True):
        assert d == explain(r.program, d["name"]).to_dict()
    plain = runner.invoke(app, ["explain", str(run.path)])
    assert plain.exit_code == 0 and f"candidate {best[0].id}" in plain.output


def test_explain_a_program_file(tmp_path: Path) -> None:
    program = evozero.load(Path(__file__).resolve().parents[1] / "programs" / "ppo.evz")
    edited = tmp_path / "wide.evz"
    edited.write_text(dsl.to_text(program.with_constants({"eps": 0.3, "lam": 0.725})))
    result = runner.invoke(app, ["explain", str(edited)])
    assert result.exit_code == 0, result.output
    assert "wide.evz vs ppo.evz: 2 differences" in result.output
    assert "eps 0.2 → 0.3" in result.output and "lam 0.95 → 0.725" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "{tmp}/nope.evz"], "does not exist"),
        (["explain", "{tmp}"], "is not an evozero run"),
        (["report", "{tmp}"], "is not an evozero run"),
        (["report", "{tmp}/nope"], "is not a directory"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_hall_of_fame_is_a_table_of_records(run: evozero.Run) -> None:
    hof = run.hall_of_fame()
    assert hof and {"id", "fitness", "complexity", "origin", "explanation"} <= set(hof[0])
    assert [r["fitness"] for r in hof] == sorted((r["fitness"] for r in hof), reverse=True)
    md = hof.to_markdown().splitlines()
    assert len(md) == len(hof) + 2 and md[0].startswith("| id | fitness")
    page = _Page()
    page.feed(hof._repr_html_())
    assert sum(t == "tr" for t, _ in page.tags) == len(hof) + 1


def test_best_explain_and_export(run: evozero.Run, tmp_path: Path) -> None:
    best = run.best(2)
    assert len(best) == 2 and best[0].fitness >= best[1].fitness
    assert dsl.parse(best[0].text) == best[0].program.live()
    assert run.explain(2)[1].name == f"#{best[1].id}"
    paths = run.export(tmp_path / "rule.py", backend="torch", k=2)
    assert paths == [tmp_path / "rule_1.py", tmp_path / "rule_2.py"]
    for p in paths:
        ast.parse(p.read_text())
    assert repr(evozero.open_run(run.path)) == f"Run({str(run.path)!r})"


def test_search_curve_draws_one_line_per_rung() -> None:
    """Runs without rungs give one line; a rung column, when candidates have one, gives a
    line per rung (the figure is generic over it)."""
    from evozero.analysis import figures

    plt = figures._pyplot()
    drawn: list[str] = []
    real = plt.Axes.step

    def step(ax, x, y, *args, **kwargs):  # type: ignore[no-untyped-def]
        drawn.append(kwargs.get("label"))
        return real(ax, x, y, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(plt.Axes, "step", step)
    try:
        assert figures.search_curve([(1, 0.2, None), (2, 0.5, None)]).startswith("data:image/png")
        figures.search_curve([(1, 0.2, "0"), (2, 0.1, "1"), (3, 0.6, "0")])
    finally:
        mp.undo()
    assert drawn == ["best so far", "rung 0", "rung 1"]
