"""A run directory is safe from concurrent writers, damage, edited programs, read-only
storage and interrupted sessions: every command either works or ends with one line that
names the run and what to do, and no finished result ever changes.

Tiny runs on the serial backend keep this fast; the fuzz test damages copies of one small
run store and calls the commands in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from evozero import open_run
from evozero.cli import app
from evozero.search import store as store_module
from evozero.search.config import SearchConfig
from evozero.search.driver import Search
from evozero.search.store import (
    DB_NAME,
    RunStore,
    RunStoreDamaged,
    RunStoreError,
    RunStoreInUse,
    RunStoreReadOnly,
)
from evozero.status import TRAINED, Status

runner = CliRunner()


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EVOZERO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def tiny(**changes) -> SearchConfig:
    return SearchConfig(
        **{
            "budget": 6,
            "suite": "tiny",
            "backend": "serial",
            "workers": 1,
            "population": 4,
            "tournament": 2,
            **changes,
        }
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished tiny run whose best rule passed the suite (resuming a copy of it trains
    in this process)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVOZERO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        search = Search.create(tmp_path_factory.mktemp("runs") / "finished", tiny())
        search.run()
        search.store.close()
    with RunStore.open(search.store.directory) as store:
        assert store.best(1) and store.meta()["state"] == "finished"
    return search.store.directory


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    shutil.copyfile(src / DB_NAME, dst / DB_NAME)
    return dst


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def finished_rows(db: Path, ids: range | None = None) -> dict[int, tuple]:
    """The finished candidate rows that can be read, one query per id (a damaged page
    fails only the rows on it)."""
    rows = {}
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        conn.text_factory = bytes
        if ids is None:
            ids = range(conn.execute("SELECT MAX(id) FROM candidates").fetchone()[0] + 1)
        for i in ids:
            try:
                row = conn.execute(
                    "SELECT * FROM candidates WHERE id = ? AND done_seq IS NOT NULL", (i,)
                ).fetchone()
            except (sqlite3.DatabaseError, UnicodeDecodeError):  # a damaged page or schema
                continue
            if row is not None:
                rows[i] = tuple(row)
    return rows


def one_line_error(result: Result, *names: object) -> str:
    """The command ended with exit code 2 and a single error line naming ``names``."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    for name in names:
        assert str(name) in errors[0], errors[0]
    return errors[0]


# ----------------------------------------------------------------------------- one writer


def test_a_run_has_one_writer_and_readers_need_no_lock(tmp_path: Path) -> None:
    writer = RunStore.create(tmp_path / "run", {"kind": "test"})  # locked from creation
    with pytest.raises(RunStoreInUse, match=rf"in use by process {os.getpid()} \(host "):
        RunStore.open(tmp_path / "run", writer="resume")
    with pytest.raises(RunStoreError, match="already holds a run"):
        RunStore.create(tmp_path / "run", {})
    with RunStore.open(tmp_path / "run") as reader:  # while the writer is live
        assert reader.meta()["state"] == "running"
        with pytest.raises(RuntimeError, match="opened for reading"):
            reader.set_meta({"state": "finished"})
    writer.close()
    with RunStore.open(tmp_path / "run") as reader:  # nobody writes it: it stopped
        assert reader.meta()["state"] == "stopped"
    RunStore.open(tmp_path / "run", writer="resume").close()


def try_to_write(
    run: Path, start: threading.Barrier, done: threading.Barrier, outcomes: list[object]
) -> None:
    """Opens ``run`` for resume when ``start`` lets it, holds it until ``done``."""
    start.wait()
    store = None
    try:
        store = RunStore.open(run, writer="resume")
        outcomes.append("writer")
    except RunStoreInUse as e:
        outcomes.append(e)
    done.wait()  # both have tried while the winner still holds the run
    if store is not None:
        store.close()


def test_two_writers_opened_at_once_never_both_write(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store_module, "LOCK_PATIENCE", 0.05)
    RunStore.create(tmp_path / "run", {"kind": "test"}).close()
    for _ in range(40):
        barriers = (threading.Barrier(2), threading.Barrier(2))
        outcomes: list[object] = []
        threads = [
            threading.Thread(target=try_to_write, args=(tmp_path / "run", *barriers, outcomes))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes.count("writer") == 1, outcomes


def test_a_lock_dies_with_its_process(tmp_path: Path) -> None:
    RunStore.create(tmp_path / "run", {"kind": "test"}).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom evozero.search.store import RunStore\n"
            "store = RunStore.open(sys.argv[1], writer='resume')\nprint('locked', flush=True)\n"
            "time.sleep(120)\n",
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunStoreInUse, match=f"in use by process {holder.pid} "):
            RunStore.open(tmp_path / "run", writer="resume")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    RunStore.open(tmp_path / "run", writer="resume").close()  # kill -9 freed it


def lock_record(run: Path) -> str:
    try:
        return (run / "run.lock").read_text()
    except FileNotFoundError:
        return ""


def test_a_second_evolve_resume_refuses_while_the_first_runs(
    tmp_path: Path, finished_run: Path
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    before = finished_rows(run / DB_NAME)
    for _ in range(2):
        # The process backend: Ctrl-C reaches the driver only (a serial run may abort
        # in the native trainer on Ctrl-C, which is not what this test is about).
        first = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evozero",
                "evolve",
                "--resume",
                str(run),
                "--budget",
                "1000000",
                "--backend",
                "process",
                "--workers",
                "1",
                "--json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while f'"pid": {first.pid},' not in lock_record(run):  # it holds the run
                assert first.poll() is None, first.stderr.read().decode()
                assert time.monotonic() < deadline, "the first resume never locked the run"
                time.sleep(0.05)
            second = runner.invoke(app, ["evolve", "--resume", str(run), "--budget", "9"])
            one_line_error(second, run, f"in use by process {first.pid} (host ")
            shown = runner.invoke(app, ["show", str(run)])  # readers need no lock
            assert shown.exit_code == 0 and "state running" in shown.stdout, shown.output
        finally:
            first.send_signal(signal.SIGINT)  # the first stops gracefully
            _, err = first.communicate(timeout=120)
        assert first.returncode == 130, err.decode()
        with RunStore.open(run) as store:
            assert store.meta()["state"] == "stopped"
            assert store.count(Status.RUNNING) == 0
    after = finished_rows(run / DB_NAME)
    assert {k: after[k] for k in before} == before


# ----------------------------------------------------------------------------- damage


def candidates_page(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'candidates'"
        ).fetchone()[0]


def overwrite(db: Path, page: int, offset: int, data: bytes) -> None:
    with open(db, "r+b") as f:
        f.seek((page - 1) * 4096 + offset)
        f.write(data)


def test_a_damaged_store_is_one_line_everywhere_and_a_resume_writes_nothing(
    tmp_path: Path, finished_run: Path
) -> None:
    bad = copy_run(finished_run, tmp_path / "runs" / "bad")
    copy_run(finished_run, tmp_path / "runs" / "good")
    db = bad / DB_NAME
    overwrite(db, candidates_page(db), 0, np.random.default_rng(0).bytes(4096))
    before = digest(db)
    for args in (
        ["show", str(bad)],
        ["show", str(bad), "--json"],
        ["export", str(bad), "-o", str(tmp_path / "rule.py")],
        ["evolve", "--resume", str(bad)],
    ):
        line = one_line_error(runner.invoke(app, args), db, "is damaged", ".dump")
        assert "Traceback" not in line
    assert digest(db) == before  # the resume refused before writing anything
    assert not (bad / f"{DB_NAME}-wal").exists() or (bad / f"{DB_NAME}-wal").stat().st_size == 0
    listed = runner.invoke(app, ["runs", str(tmp_path / "runs"), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {Path(r["run"]).name: r for r in json.loads(listed.stdout)}
    assert rows["bad"]["state"].startswith("unreadable: damaged")
    assert str(db) in rows["bad"]["error"]
    assert rows["good"]["state"] == "finished" and rows["good"]["trained"] == 6


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 shell")
def test_the_recovery_line_saves_what_is_readable(tmp_path: Path, finished_run: Path) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    db = run / DB_NAME
    with sqlite3.connect(db) as conn:
        runs_page = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'runs'"
        ).fetchone()[0]
    overwrite(db, runs_page, 0, b"\xff" * 4096)
    with pytest.raises(RunStoreDamaged) as damaged:
        RunStore.open(run, writer="resume")
    command = str(damaged.value).split("with: ", 1)[1]
    subprocess.run(command, shell=True, check=True, capture_output=True)
    with RunStore.open(tmp_path / "run-recovered") as recovered:
        assert recovered.count(*TRAINED) == 6  # every candidate, only the runs are lost
        assert recovered.best(1) and not recovered.damaged
    with RunStore.open(tmp_path / "run-recovered", writer="resume") as writer:
        assert writer.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def fuzz_damage(db: Path, rng: np.random.Generator) -> str:
    """Random bytes over a whole page, a stretch of one, or one byte."""
    pages = db.stat().st_size // 4096
    page = int(rng.integers(1, pages + 1))
    kind = rng.integers(3)
    if kind == 0:
        offset, data = 0, rng.bytes(4096)
    elif kind == 1:
        offset = int(rng.integers(0, 4096))
        data = rng.bytes(int(rng.integers(1, min(64, 4096 - offset) + 1)))
    else:
        offset, data = int(rng.integers(0, 4096)), bytes([int(rng.integers(256))])
    overwrite(db, page, offset, data)
    return f"page {page} offset {offset} length {len(data)}"


def test_fuzz_damaged_stores_never_give_a_traceback_or_change_a_finished_row(
    tmp_path: Path, finished_run: Path
) -> None:
    rng = np.random.default_rng(2024)
    ids = range(max(finished_rows(finished_run / DB_NAME)) + 1)
    copy_run(finished_run, tmp_path / "runs" / "good")
    outcomes = {"refused": 0, "resumed": 0}
    for trial in range(200):
        run = copy_run(finished_run, tmp_path / "runs" / f"t{trial}")
        db = run / DB_NAME
        where = fuzz_damage(db, rng)
        readable = finished_rows(db, ids)
        show = ["show", str(run), "--top", "1"] + (["--json"] if trial % 2 else [])
        for args in (
            show,
            ["export", str(run), "-o", str(tmp_path / "rule.py")],
            ["evolve", "--resume", str(run), "--json"],
        ):
            result = runner.invoke(app, args)
            context = f"trial {trial} ({where}): {' '.join(args[:1])}"
            assert result.exit_code in (0, 2), f"{context}: {result.output}"
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                f"{context}: {result.exception!r}"
            )
            if result.exit_code == 2:
                one_line_error(result, run)
            if args[0] == "evolve":
                outcomes["resumed" if result.exit_code == 0 else "refused"] += 1
        after = finished_rows(db, ids)
        assert {k: after.get(k) for k in readable} == readable, f"trial {trial} ({where})"
        listed = runner.invoke(app, ["runs", str(tmp_path / "runs"), "--json"])
        assert listed.exit_code == 0 and f'"{tmp_path / "runs" / "good"}"' in listed.stdout
        shutil.rmtree(run)
    assert min(outcomes.values()) >= 20, outcomes  # both paths were taken


# ----------------------------------------------------------------------------- edited rows


def best_id(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT id FROM candidates WHERE status = 'ok' AND fitness IS NOT "
            "NULL ORDER BY fitness DESC, complexity, id LIMIT 1"
        ).fetchone()[0]


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("text", "import os\nos.system('echo hi')\n", "its program does not parse: candidate"),
        ("scores", "{'breakout': 1", "scores is not valid JSON"),
        ("status", "great", "status 'great' is unknown"),
        ("fitness", "high", "fitness is str"),
    ],
)
def test_a_damaged_candidate_is_named_and_the_rest_is_shown(
    tmp_path: Path, finished_run: Path, column: str, value: str, why: str
) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    db = run / DB_NAME
    bad = best_id(db)
    with sqlite3.connect(db) as conn:
        conn.execute(f"UPDATE candidates SET {column} = ? WHERE id = ?", (value, bad))
        conn.execute("UPDATE meta SET value = '\"stopped\"' WHERE key = 'state'")
    before = digest(db)
    named = (run, f"candidate {bad} is damaged", why)

    shown = runner.invoke(app, ["show", str(run), "--top", "3"])
    assert shown.exit_code == 0, shown.output
    assert "hall of fame" in shown.stdout and "state stopped" in shown.stdout
    assert "#2: candidate" in shown.stdout and "objective:" in shown.stdout  # the rest
    assert all(str(n) in shown.stderr.replace("\n", "") for n in named), shown.stderr
    one_line_error(
        runner.invoke(app, ["export", str(run), "-o", str(tmp_path / "r.py")]),
        *named,
        "nothing was exported",
    )
    assert not (tmp_path / "r.py").exists()
    one_line_error(runner.invoke(app, ["evolve", "--resume", str(run)]), *named, "is not resumed")
    assert digest(db) == before  # the state is still "stopped": nothing was written


def test_a_damaged_best_rule_does_not_hide_the_next(tmp_path: Path, finished_run: Path) -> None:
    """``explain`` and the Python API pass over a best rule whose program no longer parses,
    name it, and go on with the next readable rule; with none readable, they say so."""
    run = copy_run(finished_run, tmp_path / "run")
    db = run / DB_NAME
    bad = best_id(db)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE candidates SET text = 'import os' WHERE id = ?", (bad,))
    explained = runner.invoke(app, ["explain", str(run)])
    assert explained.exit_code == 0, explained.output
    warned = explained.stderr.replace("\n", "")
    assert f"candidate {bad} is damaged" in warned and "not explained" in warned, warned
    assert "nothing to explain" not in warned
    assert "candidate " in explained.stdout and f"candidate {bad} " not in explained.stdout

    with pytest.warns(UserWarning, match=f"candidate {bad} is damaged"):
        rules = open_run(run).best(1)
    assert len(rules) == 1 and rules[0].id != bad
    with pytest.warns(UserWarning, match=f"candidate {bad} is damaged"):
        assert len(open_run(run).explain(1)) == 1

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE candidates SET text = 'import os'")
    none = one_line_error(runner.invoke(app, ["explain", str(run)]), run, "is readable")
    assert "has passed the full suite yet" not in none


def test_a_damaged_report_is_left_out(tmp_path: Path, finished_run: Path) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    with sqlite3.connect(run / DB_NAME) as conn:
        conn.execute(
            "UPDATE meta SET value = replace(value, '\"verdict\"', '\"vErdict\"') "
            "WHERE key = 'report'"
        )
    shown = runner.invoke(app, ["show", str(run)])
    assert shown.exit_code == 0, shown.output
    assert "fresh seeds" not in shown.stdout
    assert (
        "meta report is damaged (meta report.subjects[0] has no 'verdict')"
        in shown.stderr.replace("\n", "")
    )
    listed = runner.invoke(app, ["runs", str(tmp_path), "--json"])
    assert json.loads(listed.stdout)[0]["state"] == "finished, 1 part(s) damaged"


# ----------------------------------------------------------------------------- read-only


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """``paths`` read-only for this process: without write permission, or, for root
    (whom permission bits do not stop), immutable (``chattr +i``); the test is skipped
    where neither is possible."""
    root = os.geteuid() == 0
    done: list[Path] = []

    def undo() -> None:
        for p in reversed(done):
            if root:
                subprocess.run(["chattr", "-i", str(p)], check=True)
            else:
                p.chmod(p.stat().st_mode | 0o200)

    try:
        for p in paths:
            if not root:
                p.chmod(p.stat().st_mode & ~0o222)
            elif (
                shutil.which("chattr") is None
                or subprocess.run(["chattr", "+i", str(p)], capture_output=True).returncode
            ):
                pytest.skip("root ignores permissions, and chattr +i does not work here")
            done.append(p)
            if os.access(p, os.W_OK):
                pytest.skip(f"could not make {p} read-only here")
        yield
    finally:
        undo()


def test_a_read_only_run_is_read_but_not_resumed(tmp_path: Path, finished_run: Path) -> None:
    run = copy_run(finished_run, tmp_path / "runs" / "run")
    with read_only(run):
        shown = runner.invoke(app, ["show", str(run)])
        assert shown.exit_code == 0 and "state finished" in shown.stdout, shown.output
        listed = runner.invoke(app, ["runs", str(tmp_path / "runs"), "--json"])
        assert json.loads(listed.stdout)[0]["state"] == "finished", listed.output
        exported = runner.invoke(app, ["export", str(run), "-o", str(tmp_path / "r.py")])
        assert exported.exit_code == 0 and (tmp_path / "r.py").exists(), exported.output
        one_line_error(
            runner.invoke(app, ["evolve", "--resume", str(run)]),
            run,
            "is read-only (the directory is not writable)",
            "cp -r",
        )
    assert sorted(p.name for p in run.iterdir()) == [DB_NAME]  # nothing was written


def test_writing_to_a_read_only_run_names_the_fix_that_fits(
    tmp_path: Path, finished_run: Path
) -> None:
    """A command that writes into a read-only run (or a file next to it by default) says
    the fix for that command: the flag that writes elsewhere, or a copy to work on."""
    run = copy_run(finished_run, tmp_path / "run")
    with read_only(run):
        one_line_error(
            runner.invoke(app, ["report", str(run)]),
            run / "report.html",
            "pass --output FILE to write the report elsewhere",
        )
        refined = one_line_error(
            runner.invoke(app, ["refine", str(run)]), run, "is read-only", "&& evozero refine NEW"
        )
        assert "resume" not in refined
        rule = Path("programs/ppo.evz").resolve()
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(run)  # refine writes into the current directory by default
            one_line_error(
                runner.invoke(app, ["refine", str(rule)]),
                f"cannot write in {run}",
                "pass --output DIR to write the refined rules elsewhere",
            )
    assert sorted(p.name for p in run.iterdir()) == [DB_NAME]  # nothing was written


def test_a_read_only_database_is_read_but_not_resumed(tmp_path: Path, finished_run: Path) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    with read_only(run / DB_NAME):
        assert runner.invoke(app, ["show", str(run)]).exit_code == 0
        with pytest.raises(RunStoreReadOnly, match="run.sqlite is not writable"):
            RunStore.open(run, writer="resume")


def test_an_archive_of_a_live_run_is_read_with_its_log(tmp_path: Path) -> None:
    """A copy of a live run holds recent commits in ``run.sqlite-wal``; read-only and
    without the log's index (``-shm``), it is read from a scratch copy, log included."""
    live = RunStore.create(tmp_path / "live", {"kind": "test"})
    live.set_meta({"state": "finished"})
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in (DB_NAME, f"{DB_NAME}-wal"):
        shutil.copyfile(live.directory / name, archive / name)
    live.close()
    assert (archive / f"{DB_NAME}-wal").stat().st_size > 0
    with read_only(archive), RunStore.open(archive) as store:
        assert store.meta()["state"] == "finished"


# ----------------------------------------------------------------------------- interrupts


def test_in_flight_candidates_are_queued_and_the_budget_is_the_total(tmp_path: Path) -> None:
    search = Search.create(tmp_path / "run", tiny(budget=1000))

    def ctrl_c(status) -> None:
        if status.phase == "search" and status.trained >= 3 and status.in_flight:
            raise KeyboardInterrupt

    search.on_status = ctrl_c
    with pytest.raises(KeyboardInterrupt):
        search.run()
    queued = [c.id for c in search.store.candidates(Status.QUEUED)]
    trained = search.store.count(*TRAINED)
    assert queued and search.store.count(Status.RUNNING) == 0
    search.store.close()

    again = Search.resume(tmp_path / "run")
    assert again.change(budget=2) == (
        "--budget is the total number of trained candidates; "
        f"this run already has {trained}, so nothing more is "
        "trained"
    )
    again.run(report=False)
    again.store.close()
    with RunStore.open(tmp_path / "run") as store:
        assert store.meta()["config"]["budget"] == trained == store.count(*TRAINED)
        assert [c.id for c in store.candidates(Status.QUEUED)] == queued
        assert store.count(Status.RUNNING) == 0

    more = Search.resume(tmp_path / "run")
    assert more.change(budget=trained + 1).endswith(f"has {trained}, so 1 more will be trained")
    more.run(report=False)
    assert more.store.candidate(queued[0]).status in TRAINED  # the queued one went first
    assert more.store.count(*TRAINED) == trained + 1
    more.store.close()


def test_a_killed_run_reads_as_stopped_with_its_candidates_queued(tmp_path: Path) -> None:
    writer = RunStore.create(tmp_path / "run", {"kind": "test"})
    writer.add_candidate(
        id=0,
        origin="init:x",
        parent=None,
        mutation=None,
        text="t",
        key="k",
        fingerprint="f",
        complexity=1,
    )
    with RunStore.open(tmp_path / "run") as reader:  # the writer is live
        assert reader.candidate(0).status is Status.RUNNING
    writer.close()  # as kill -9 would: the state still says running
    with RunStore.open(tmp_path / "run") as reader:
        assert reader.meta()["state"] == "stopped"
        assert reader.candidate(0).status is Status.QUEUED
        assert reader.count_by_status() == {Status.QUEUED: 1}


def test_a_result_is_never_overwritten(tmp_path: Path) -> None:
    from evozero.search.protocol import CandidateResult

    with RunStore.create(tmp_path / "run", {"kind": "test"}) as store:
        store.add_candidate(
            id=0,
            origin="init:x",
            parent=None,
            mutation=None,
            text="t",
            key="k",
            fingerprint="f",
            complexity=1,
        )
        store.finish_candidate(0, CandidateResult(Status.OK, 0.5))
        first = store.candidate(0)
        with pytest.raises(RunStoreError, match="candidate 0 already has a result"):
            store.finish_candidate(0, CandidateResult(Status.OK, 0.9))
        assert store.candidate(0) == first
