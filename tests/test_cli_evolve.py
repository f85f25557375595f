"""``evozero evolve``, ``runs``, ``show RUN`` and ``export RUN`` end to end (tiny suite),
and a run surviving ``kill -9`` and a killed worker."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_checks import DIVERGES, LONG_PROGRAMS, TERMINALS, as_terminal, plain, strict_json
from typer.testing import CliRunner

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from ctrl_c import ctrl_c  # noqa: E402

import evozero  # noqa: E402
from evozero.cli import app  # noqa: E402
from evozero.export.pseudocode import live_program  # noqa: E402
from evozero.program import dsl  # noqa: E402
from evozero.search.config import SearchConfig  # noqa: E402
from evozero.search.driver import RUNG_BITS, Search  # noqa: E402
from evozero.search.store import RunStore  # noqa: E402
from evozero.search.tasks import get_suite  # noqa: E402
from evozero.status import TRAINED, UNFINISHED, Status  # noqa: E402

runner = CliRunner()
TINY = ["--suite", "tiny", "--population", "6", "--tournament", "3"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EVOZERO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One finished run made through the CLI with the default (process) backend."""
    os.environ.setdefault("EVOZERO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    out = tmp_path_factory.mktemp("runs") / "first"
    result = runner.invoke(
        app, ["evolve", "--budget", "8", *TINY, "--workers", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"run stored in {out}" in result.output.replace("\n", "")
    assert "on 3 fresh seeds (1000-1002)" in " ".join(result.output.split())
    assert result.output.count("hall of fame") == 1  # the live view's last frame goes
    return out


def test_evolve_reports_and_stores_a_finished_run(run_dir: Path) -> None:
    with RunStore.open(run_dir) as store:
        meta = store.meta()
        assert meta["state"] == "finished" and meta["config"]["backend"] == "process"
        assert store.count(*TRAINED) == 8
        assert store.count(Status.RUNNING) == 0
        report = meta["report"]
    assert report["comparison"]["verdict"] in {"improved", "not improved", "lost", "undecided"}
    measured = "measured at 40,960 steps per task (CartPole-v1: 8,192) on 3 fresh seeds (1000-1002)"
    assert report["comparison"]["text"].endswith(measured)
    assert report["subjects"][0]["train"]["iqm"]["n"] == 3


def test_runs_lists_the_run(run_dir: Path) -> None:
    result = runner.invoke(app, ["runs", str(run_dir.parent), "--json"])
    assert result.exit_code == 0, result.output
    rows = strict_json(result.stdout)
    assert [r["run"] for r in rows] == [str(run_dir)]
    assert rows[0]["trained"] == 8 and rows[0]["state"] == "finished"
    table = runner.invoke(app, ["runs", str(run_dir.parent)])
    assert table.exit_code == 0 and "finished" in table.output


def test_show_run_prints_hall_of_fame_rules_and_report(run_dir: Path) -> None:
    result = runner.invoke(app, ["show", str(run_dir), "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "hall of fame" in result.output and "#1: candidate" in result.output
    assert "objective:" in result.output and "fresh seeds" in result.output
    data = strict_json(runner.invoke(app, ["show", str(run_dir), "--json"]).stdout)
    assert data["top"][0]["fitness"] == max(c["fitness"] for c in data["top"])
    assert data["normalizers"] and data["environment"]["evozero"]


@pytest.fixture(scope="module")
def long_evolve(tmp_path_factory) -> tuple[Path, str]:
    """A run (serial backend) seeded with a PPO written in long lines and a rule that
    diverges, and what ``evolve --json`` printed."""
    os.environ.setdefault("EVOZERO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    root = tmp_path_factory.mktemp("long")
    (root / "long_ppo.evz").write_text(LONG_PROGRAMS["long_ppo"])
    (root / "diverges.evz").write_text(DIVERGES)
    out = root / "runs" / "long"
    result = runner.invoke(
        app,
        [
            "evolve",
            "--budget",
            "2",
            "--suite",
            "tiny",
            "--population",
            "2",
            "--tournament",
            "2",
            "--backend",
            "serial",
            "--init",
            str(root / "long_ppo.evz"),
            "--init",
            str(root / "diverges.evz"),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return out, result.stdout


@pytest.fixture(scope="module")
def long_run(long_evolve: tuple[Path, str]) -> Path:
    return long_evolve[0]


def test_evolve_json_is_strict_json(long_evolve: tuple[Path, str]) -> None:
    out, printed = long_evolve
    data = strict_json(printed)
    assert data["run"] == str(out) and data["trained"] == 2
    assert dsl.parse(data["top"][0]["text"]) == dsl.parse(LONG_PROGRAMS["long_ppo"])
    with RunStore.open(out) as store:
        (diverged,) = store.candidates(Status.DIVERGED)
    assert diverged.fitness is None


def printed_rules(output: str) -> dict[int, str]:
    """Candidate id -> the program text printed under its ``#k: candidate ID`` heading."""
    rules: dict[int, list[str]] = {}
    current = None
    for line in plain(output).splitlines():
        if heading := re.match(r"#\d+: candidate (\d+),", line):
            current = int(heading[1])
            rules[current] = []
        elif current is not None and re.match(r"\s|$|const |\w+:$", line):
            rules[current].append(line)
        else:
            current = None
    return {cid: "\n".join(lines) for cid, lines in rules.items()}


@pytest.mark.parametrize(("width", "tty"), TERMINALS)
@pytest.mark.parametrize("run", ["run_dir", "long_run"])
def test_show_run_prints_rules_that_parse_back(
    run: str, width: int, tty: bool, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = request.getfixturevalue(run)
    as_terminal(monkeypatch, width, tty)
    result = runner.invoke(app, ["show", str(directory), "--top", "3"])
    assert result.exit_code == 0, result.output
    rules = printed_rules(result.stdout)
    with RunStore.open(directory) as store:
        best = store.best(3)
    assert list(rules) == [c.id for c in best]
    for c in best:
        assert dsl.parse(rules[c.id]) == live_program(evozero.parse(c.text))
    if run == "long_run":  # lines the terminal cannot hold
        assert max(len(ln) for text in rules.values() for ln in text.splitlines()) > width


def test_json_of_a_run_whose_report_has_nan_is_strict(long_run: Path, tmp_path: Path) -> None:
    # The best rule diverged in every held-out re-evaluation: the report has no held-out
    # aggregate (no seed to average). Resuming the finished run redoes the report.
    copy = tmp_path / "runs" / "copy"
    shutil.copytree(long_run, copy)
    _, heldout = get_suite("tiny").report_tasks()
    with sqlite3.connect(copy / "run.sqlite") as conn:
        changed = conn.execute(
            "UPDATE runs SET status = 'diverged', final_return = NULL, message = 'the "
            "program''s loss or its derivatives are not finite' WHERE phase = 'report' AND "
            "task = ?",
            (heldout[0].label,),
        ).rowcount
    assert changed == 3
    for args in (["evolve", "--resume", str(copy), "--json"], ["show", str(copy), "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        best = strict_json(result.stdout)["report"]["subjects"][0]
        assert best["heldout"] is None and best["tasks"][heldout[0].label]["return"] is None
        assert best["train"]["iqm"]["n"] == 3
        assert best["verdict"]["verdict"] in {"undecided", "lost"}
    listed = runner.invoke(app, ["runs", str(copy.parent), "--json"])
    assert strict_json(listed.stdout)[0]["run"] == str(copy)
    assert runner.invoke(app, ["show", str(copy)]).exit_code == 0


def test_export_run_writes_runnable_rules(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rule.py"
    result = runner.invoke(app, ["export", str(run_dir), "--top", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    doc = ast.get_docstring(ast.parse(out.read_text()))
    assert doc.startswith("rule: an RL update rule exported by evozero ")
    assert doc.splitlines()[0].endswith("(numpy).") and f"Source: {run_dir} candidate " in doc
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)  # our own generated module
    T, B = 4, 3
    z = np.zeros((T, B), np.float32)
    adv, vtarget = namespace["scan"](
        r=z + 1, term=z, reset=z, v=z, v_next=z, logp=z, entropy=z, progress=z
    )[:2]
    assert adv.shape == (T, B) and np.isfinite(adv).all()
    two = runner.invoke(app, ["export", str(run_dir), "--top", "2", "-o", str(out)])
    assert two.exit_code == 0, two.output
    assert (tmp_path / "rule_1.py").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evolve", "--budget", "0"], "--budget: 0 is out of range"),
        (["evolve"], "--budget is required"),
        (["evolve", "--budget", "2", "--suite", "huge"], "unknown suite 'huge'; choose one of"),
        (
            ["evolve", "--budget", "2", "--init", "nothing.evz"],
            "--init: nothing.evz does not exist",
        ),
        (["evolve", "--budget", "2", "--backend", "gpu"], "unknown --backend 'gpu'"),
        (["evolve", "--resume", "{tmp}"], "is not an evozero run"),
        (["evolve", "--resume", "{tmp}/nope"], "is not a directory"),
        (["show", "{tmp}"], "is not an evozero run"),
        (["export", "{tmp}", "-o", "{tmp}/r.py"], "is not an evozero run"),
        (["runs", "{tmp}/nope"], "is not a directory"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", "")
    assert "Traceback" not in result.output


def test_a_seed_file_that_does_not_parse_names_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.evz"
    bad.write_text("scan:\n  adv = r +* 2\n  vtarget = v\n\nobjective:\n  loss = 0\n")
    result = runner.invoke(app, ["evolve", "--budget", "2", "--init", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:2:" in result.output.replace("\n", "")


def test_resume_refuses_changed_search_settings_and_other_versions(run_dir: Path) -> None:
    result = runner.invoke(app, ["evolve", "--resume", str(run_dir), "--suite", "quick"])
    assert result.exit_code == 2 and "cannot change when resuming" in result.output
    db = run_dir / "run.sqlite"
    with sqlite3.connect(db) as conn:
        (env,) = conn.execute("SELECT value FROM meta WHERE key = 'environment'").fetchone()
        old = json.loads(env)
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'environment'",
            (json.dumps({**old, "evozero": "0.0.1"}),),
        )
    try:
        result = runner.invoke(app, ["evolve", "--resume", str(run_dir)])
        assert result.exit_code == 2
        assert "made by evozero 0.0.1" in result.output.replace("\n", "")
    finally:
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'environment'", (env,))


def finished(db: Path) -> dict[int, tuple]:
    """Finished candidates, read while the driver may still be creating the database."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return {
                row[0]: row[1:]
                for row in conn.execute(
                    "SELECT id, text, status, fitness, finished_at FROM candidates "
                    "WHERE done_seq IS NOT NULL"
                )
            }
    except sqlite3.OperationalError:  # not created yet
        return {}


def rung_results(db: Path) -> dict[tuple[int, int], tuple]:
    """Every recorded result per candidate and rung."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {
            (row[0], row[1]): row[2:]
            for row in conn.execute(
                "SELECT candidate, rung, status, fitness, scores, finished_at FROM rungs "
                "WHERE finished_at IS NOT NULL"
            )
        }


def test_resume_after_kill_9_loses_nothing_that_finished(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "evozero",
        "evolve",
        "--budget",
        "14",
        *TINY,
        "--workers",
        "2",
        "--out",
        str(out),
        "--json",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=os.environ.copy(),
    )
    db = out / "run.sqlite"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if db.exists() and sum(r[1] != Status.DUPLICATE for r in finished(db).values()) >= 4:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-flight
        proc.wait()
    before = finished(db)
    results_before = rung_results(db)
    assert len(before) >= 4
    # Fewer workers than jobs that were in flight: they queue.
    result = runner.invoke(app, ["evolve", "--resume", str(out), "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert strict_json(result.stdout)["state"] == "finished"
    # finished results, at every rung, are kept as they were (a promotion since then
    # raised some candidates' standing, not their earlier results)
    after = finished(db)
    assert {k: after[k][0] for k in before} == {k: v[0] for k, v in before.items()}
    results = rung_results(db)
    assert {k: results[k] for k in results_before} == results_before
    with RunStore.open(out) as store:
        assert store.count(*TRAINED) == 14
        assert store.count(Status.RUNNING) == 0
        assert store.meta()["state"] == "finished"


def test_a_worker_killed_mid_evaluation_fails_only_its_job(tmp_path: Path) -> None:
    config = SearchConfig(
        budget=10, suite="tiny", backend="process", workers=2, population=6, tournament=3
    )
    search = Search.create(tmp_path / "run", config)
    killed: dict[int, int] = {}  # candidate id -> pid

    def kill_a_busy_worker(status) -> None:
        # A job may finish just before the kill lands; then try another (at most 3).
        if status.phase != "search" or status.trained < 3 or len(killed) >= 3:
            return
        # One kill at a time: wait for its outcome; kill again only if the job had finished.
        if any(
            c.status in (Status.ERROR, *UNFINISHED) for c in map(search.store.candidate, killed)
        ):
            return
        busy = {  # candidate id -> pid (a job id carries the candidate and its rung)
            job >> RUNG_BITS: pid
            for pid, job in search.backend.worker_jobs().items()
            if job is not None and job >> RUNG_BITS not in killed
        }
        if busy:
            job = min(busy)
            os.kill(busy[job], signal.SIGKILL)
            killed[job] = busy[job]

    search.on_status = kill_a_busy_worker
    search.run()
    assert killed
    store = search.store
    errors = store.candidates(Status.ERROR)
    # Each kill fails at most one job: the one its worker ran, or, when that job had just
    # finished, the next one sent to the worker before its death was seen. No other job
    # fails, and the search goes on to its budget.
    assert 1 <= len(errors) <= len(killed), ([(c.id, c.message) for c in errors], killed)
    assert {c.message for c in errors} == {"worker died (signal SIGKILL) during the job"}
    assert any(c.id in killed for c in errors)
    assert store.count(*TRAINED) == 10
    assert store.meta()["state"] == "finished"


def test_ray_backend_runs_a_search(tmp_path: Path) -> None:
    config = SearchConfig(
        budget=4, suite="tiny", backend="ray", workers=2, population=4, tournament=2
    )
    search = Search.create(tmp_path / "run", config)
    search.run()
    store = search.store
    assert store.count(*TRAINED) == 4
    assert store.count(Status.ERROR) == 0
    assert store.meta()["state"] == "finished"


def test_ctrl_c_stops_gracefully_and_the_run_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "evozero",
        "evolve",
        "--budget",
        "12",
        *TINY,
        "--workers",
        "2",
        "--out",
        str(out),
        "--json",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy()
    )
    db = out / "run.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if db.exists() and len(finished(db)) >= 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)  # the driver only, as a terminal's Ctrl-C reaches it
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    assert f"evozero evolve --resume {out}" in err.decode().replace("\n", "")
    with RunStore.open(out) as store:
        assert store.meta()["state"] == "stopped"
    result = runner.invoke(app, ["evolve", "--resume", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert strict_json(result.stdout)["trained"] == 12
    with RunStore.open(out) as store:
        assert store.meta()["state"] == "finished"
        assert store.count(*TRAINED) == 12


@pytest.mark.parametrize("phase", ["normalizers", "report"])
def test_ctrl_c_stops_promptly_while_measuring_normalizers_and_reporting(
    phase: str, tmp_path: Path
) -> None:
    """Ctrl-C outside the evolution proper, too: within a generous 10 s of the signal
    (an uninterrupted run has minutes left), exit code 130, the run resumable."""
    out = tmp_path / "run"
    # A fresh cache: the normalizers are measured, not read.
    env = {"EVOZERO_CACHE_DIR": str(tmp_path / "cache")} if phase == "normalizers" else {}
    run = ctrl_c(
        f"phase:{phase}",
        ["evolve", "--budget", "1", *TINY, "--workers", "2", "--out", str(out), "--json"],
        env=env,
    )
    assert run.returncode == 130, run.stderr
    assert run.seconds is not None and run.seconds < 10
    assert f"resume with: evozero evolve --resume {out}" in run.stderr.replace("\n", "")
    with RunStore.open(out) as store:
        meta = store.meta()
        assert meta["state"] == "stopped" and not meta.get("report")
        if phase == "normalizers":
            assert not store.normalizers()
