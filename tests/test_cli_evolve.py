"""``evozero evolve``, ``runs``, ``show RUN`` and ``export RUN`` end to end (tiny suite),
and a run surviving ``kill -9`` and a killed worker."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from ctrl_c import ctrl_c  # noqa: E402

from evozero.cli import app  # noqa: E402
from evozero.search.config import SearchConfig  # noqa: E402
from evozero.search.driver import Search  # noqa: E402
from evozero.search.store import RunStore  # noqa: E402
from evozero.status import TRAINED, Status  # noqa: E402

runner = CliRunner()
TINY = ["--suite", "tiny", "--population", "6", "--tournament", "3"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EVOZERO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One finished run made through the CLI with the default (process) backend."""
    os.environ.setdefault("EVOZERO_CACHE_DIR",
                          str(tmp_path_factory.getbasetemp() / "cache"))
    out = tmp_path_factory.mktemp("runs") / "first"
    result = runner.invoke(app, ["evolve", "--budget", "8", *TINY, "--workers", "2",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"run stored in {out}" in result.output.replace("\n", "")
    assert "re-evaluated on 3 fresh seeds" in result.output
    assert result.output.count("hall of fame") == 1  # the live view's last frame goes
    return out


def test_evolve_reports_and_stores_a_finished_run(run_dir: Path) -> None:
    with RunStore.open(run_dir) as store:
        meta = store.meta()
        assert meta["state"] == "finished" and meta["config"]["backend"] == "process"
        assert store.count(*TRAINED) == 8
        assert store.count(Status.RUNNING) == 0
        report = meta["report"]
    assert report["comparison"]["verdict"] in {"improved", "not significant", "worse",
                                               "same program", "undecided"}
    assert report["subjects"][0]["train"]["n"] == 3


def test_runs_lists_the_run(run_dir: Path) -> None:
    result = runner.invoke(app, ["runs", str(run_dir.parent), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["run"] for r in rows] == [str(run_dir)]
    assert rows[0]["trained"] == 8 and rows[0]["state"] == "finished"
    table = runner.invoke(app, ["runs", str(run_dir.parent)])
    assert table.exit_code == 0 and "finished" in table.output


def test_show_run_prints_hall_of_fame_rules_and_report(run_dir: Path) -> None:
    result = runner.invoke(app, ["show", str(run_dir), "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "hall of fame" in result.output and "#1: candidate" in result.output
    assert "objective:" in result.output and "fresh seeds" in result.output
    data = json.loads(runner.invoke(app, ["show", str(run_dir), "--json"]).output)
    assert data["top"][0]["fitness"] == max(c["fitness"] for c in data["top"])
    assert data["normalizers"] and data["environment"]["evozero"]


def test_export_run_writes_runnable_rules(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rule.py"
    result = runner.invoke(app, ["export", str(run_dir), "--top", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)  # our own generated module
    T, B = 4, 3
    z = np.zeros((T, B), np.float32)
    adv, vtarget = namespace["scan"](r=z + 1, term=z, reset=z, v=z, v_next=z, logp=z,
                                     entropy=z, progress=z)[:2]
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
        (["evolve", "--budget", "2", "--init", "nothing.evz"],
         "--init: nothing.evz does not exist"),
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
        conn.execute("UPDATE meta SET value = ? WHERE key = 'environment'",
                     (json.dumps({**old, "evozero": "0.0.1"}),))
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
            return {row[0]: row[1:] for row in conn.execute(
                "SELECT id, text, status, fitness, finished_at FROM candidates "
                "WHERE done_seq IS NOT NULL")}
    except sqlite3.OperationalError:  # not created yet
        return {}


def test_resume_after_kill_9_loses_nothing_that_finished(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "evozero", "evolve", "--budget", "14", *TINY,
           "--workers", "2", "--out", str(out), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env=os.environ.copy())
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
    assert len(before) >= 4
    # Fewer workers than jobs that were in flight: they queue.
    result = runner.invoke(app, ["evolve", "--resume", str(out), "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    after = finished(db)
    assert {k: after[k] for k in before} == before  # finished results are kept as they were
    with RunStore.open(out) as store:
        assert store.count(*TRAINED) == 14
        assert store.count(Status.RUNNING) == 0
        assert store.meta()["state"] == "finished"


def test_a_worker_killed_mid_evaluation_fails_one_candidate(tmp_path: Path) -> None:
    config = SearchConfig(budget=10, suite="tiny", backend="process", workers=2,
                          population=6, tournament=3)
    search = Search.create(tmp_path / "run", config)
    killed: dict[int, int] = {}  # job (candidate id) -> pid

    def kill_a_busy_worker(status) -> None:
        # A job may finish just before the kill lands; then try another (at most 3).
        if status.phase != "search" or status.trained < 3 or len(killed) >= 3:
            return
        if any(c.status == Status.ERROR for c in map(search.store.candidate, killed)):
            return
        busy = {job: pid for pid, job in search.backend.worker_jobs().items()
                if job is not None and job not in killed}
        if busy:
            job = min(busy)
            os.kill(busy[job], signal.SIGKILL)
            killed[job] = busy[job]

    search.on_status = kill_a_busy_worker
    search.run()
    assert killed
    store = search.store
    errors = store.candidates(Status.ERROR)
    assert len(errors) == 1, [(c.id, c.message) for c in errors]
    assert errors[0].id in killed
    assert errors[0].message == "worker died (signal SIGKILL) during the job"
    assert store.count(*TRAINED) == 10
    assert store.meta()["state"] == "finished"


def test_ray_backend_runs_a_search(tmp_path: Path) -> None:
    config = SearchConfig(budget=4, suite="tiny", backend="ray", workers=2, population=4,
                          tournament=2)
    search = Search.create(tmp_path / "run", config)
    search.run()
    store = search.store
    assert store.count(*TRAINED) == 4
    assert store.count(Status.ERROR) == 0
    assert store.meta()["state"] == "finished"


def test_ctrl_c_stops_gracefully_and_the_run_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "evozero", "evolve", "--budget", "12", *TINY,
           "--workers", "2", "--out", str(out), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=os.environ.copy())
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
    with RunStore.open(out) as store:
        assert store.meta()["state"] == "finished"
        assert store.count(*TRAINED) == 12


@pytest.mark.parametrize("phase", ["normalizers", "report"])
def test_ctrl_c_stops_promptly_while_measuring_normalizers_and_reporting(
        phase: str, tmp_path: Path) -> None:
    """Ctrl-C outside the evolution proper, too: within a generous 10 s of the signal
    (an uninterrupted run has minutes left), exit code 130, the run resumable."""
    out = tmp_path / "run"
    # A fresh cache: the normalizers are measured, not read.
    env = {"EVOZERO_CACHE_DIR": str(tmp_path / "cache")} if phase == "normalizers" else {}
    run = ctrl_c(f"phase:{phase}", ["evolve", "--budget", "1", *TINY, "--workers", "2",
                                    "--out", str(out), "--json"], env=env)
    assert run.returncode == 130, run.stderr
    assert run.seconds is not None and run.seconds < 10
    assert f"resume with: evozero evolve --resume {out}" in run.stderr.replace("\n", "")
    with RunStore.open(out) as store:
        meta = store.meta()
        assert meta["state"] == "stopped" and not meta.get("report")
        if phase == "normalizers":
            assert not store.normalizers()
