"""The run store: one directory per search run, holding a SQLite database.

Only the driver writes to it, and it commits every change as it happens (WAL journal), so
a run killed at any moment, ``kill -9`` included, keeps everything that had finished.
Values are plain SQL and JSON text; nothing is pickled. Readers ask named questions
(:meth:`RunStore.best`, :meth:`RunStore.finished`, :meth:`RunStore.count` ...): SQL stays
in this module.

One writer at a time. A run's writer (``evolve``, from the run's creation, or
``evolve --resume``) holds an exclusive advisory lock (:func:`fcntl.flock`) on the
directory's ``run.lock`` until it closes the store or its process ends: the kernel drops
the lock of a dead process, ``kill -9`` included, so a lock never outlives its holder. The
file records the holder's pid and host for the message a second writer gets. Readers
(``show``, ``export``, ``runs``) take no lock and open the database read-only, so they work
while the run is live and on a read-only directory (an archive, a read-only mount).

Damage. Every SQLite error becomes a :class:`RunStoreError` whose message names the file
and what to do. Each row and metadata value is checked as it is decoded: a reader leaves
out what does not decode and lists it in :attr:`RunStore.damaged`; a writer opened for a
resume checks the whole file (``PRAGMA integrity_check``) and decodes every row before it
writes anything, and refuses on the first damage.

Tables:

``meta``
    key/value (JSON): schema and evozero versions, the search config and suite, the
    platform and library versions, the run's state and its final report.
``candidates``
    every proposed program in proposal order: origin (``init:NAME``, ``mutation``, or
    ``refine:METHOD`` for a rule whose constants ``evozero refine`` tuned),
    text, canonical key, fingerprint, parent, mutation, status (an
    :class:`evozero.status.Status`: ``running`` or ``queued`` until its result comes,
    then ``ok``, ``culled``, ``diverged``, ``error`` or ``duplicate``), fitness, per-task
    scores, seconds, and ``done_seq``, the order in which results entered the population
    (regularized evolution's age).
``rungs``
    every result of a trained candidate at each rung of a multi-fidelity search (rung 0
    is its first result; a promotion adds the next): status (``running`` or ``queued``
    while a promotion trains), fitness, per-task scores, message, seconds. A candidate's
    own ``rung``, status, fitness and scores are those of its highest rung.
``runs``
    every training run: candidate, phase (``hurdle``, ``search``, ``report``), rung,
    task, seed, status, final return, area under the curve, steps, seconds, learning
    curve.

Schema 1 (before rungs) is read as schema 2 with every result at rung 0: a writer
migrates the file when it opens it, a reader migrates an in-memory copy.
``normalizers``
    ``R_random`` and ``R_ppo`` per task and seed as used by this run.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import json
import os
import platform
import shlex
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Concatenate, ParamSpec, TypeVar

import numpy as np

import evozero
from evozero.program import dsl
from evozero.program.errors import ProgramError
from evozero.program.model import Program
from evozero.search.protocol import CandidateResult, Phase, RunRecord, finite_or_none
from evozero.status import UNFINISHED, Status

#: 2: rungs; the final report judges rules against ppo.evz (rliable statistics, per-task
#: losses).
SCHEMA_VERSION = 2
DB_NAME = "run.sqlite"
#: The writer's lock file in a run directory (see the module's docstring).
LOCK_NAME = "run.lock"
#: Seconds a writer retries a taken lock: a reader probing whether the run is live
#: (:func:`_is_live`) holds it for microseconds, a writer for the whole run.
LOCK_PATIENCE = 0.5

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE candidates (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    parent INTEGER REFERENCES candidates(id),
    mutation TEXT,
    text TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    complexity INTEGER NOT NULL,
    status TEXT NOT NULL,
    duplicate_of INTEGER REFERENCES candidates(id),
    fitness REAL,
    hurdle_score REAL,
    scores TEXT,
    message TEXT NOT NULL DEFAULT '',
    seconds REAL,
    proposed_at REAL NOT NULL,
    finished_at REAL,
    done_seq INTEGER UNIQUE,
    rung INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX candidates_key ON candidates(key);
CREATE INDEX candidates_fingerprint ON candidates(fingerprint);
{runs}
{rungs}CREATE TABLE normalizers (
    task TEXT NOT NULL,
    seed INTEGER NOT NULL,
    random REAL NOT NULL,
    ppo REAL NOT NULL,
    PRIMARY KEY (task, seed)
);
"""
_RUNS_TABLE = """CREATE TABLE {name} (
    candidate INTEGER NOT NULL REFERENCES candidates(id),
    phase TEXT NOT NULL,
    rung INTEGER NOT NULL DEFAULT 0,
    task TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    final_return REAL,
    auc REAL,
    steps INTEGER,
    seconds REAL,
    curve TEXT,
    PRIMARY KEY (candidate, phase, rung, task, seed)
);"""
_RUNGS_TABLE = """CREATE TABLE rungs (
    candidate INTEGER NOT NULL REFERENCES candidates(id),
    rung INTEGER NOT NULL,
    status TEXT NOT NULL,
    fitness REAL,
    scores TEXT,
    message TEXT NOT NULL DEFAULT '',
    seconds REAL,
    finished_at REAL,
    PRIMARY KEY (candidate, rung)
);"""
_SCHEMA = _SCHEMA.format(runs=_RUNS_TABLE.format(name="runs"), rungs=_RUNGS_TABLE)
#: Schema 1 -> 2: a ``rung`` for candidates and runs (0), and the ``rungs`` table holding
#: each trained candidate's result as its rung-0 result. A schema-1 final report (a mean
#: of normalized scores) is dropped: the run is back to ``searched``, and a resume makes
#: the report anew with today's verdict.
_MIGRATE_1 = f"""
ALTER TABLE candidates ADD COLUMN rung INTEGER NOT NULL DEFAULT 0;
{_RUNS_TABLE.format(name="runs_2")}
INSERT INTO runs_2 (candidate, phase, rung, task, seed, status, message, final_return, auc,
    steps, seconds, curve)
    SELECT candidate, phase, 0, task, seed, status, message, final_return, auc, steps,
    seconds, curve FROM runs;
DROP TABLE runs;
ALTER TABLE runs_2 RENAME TO runs;
{_RUNGS_TABLE}
INSERT INTO rungs (candidate, rung, status, fitness, scores, message, seconds, finished_at)
    SELECT id, 0, status, fitness, scores, message, seconds, finished_at FROM candidates
    WHERE done_seq IS NOT NULL AND status != 'duplicate';
DELETE FROM meta WHERE key = 'report';
UPDATE meta SET value = '"searched"' WHERE key = 'state' AND value = '"finished"';
UPDATE meta SET value = '2' WHERE key = 'schema';
"""


#: The origin of an initial program starts with this (``init:ppo``, ``init:rule.evz``);
#: a mutant's origin is ``mutation``.
INIT_ORIGIN = "init:"
#: The origin of a refined child starts with this (``refine:es``, ``refine:metagrad``): it
#: was made after the search, outside the evolution, and does not count against its budget.
REFINE_ORIGIN = "refine:"
#: The condition of a candidate that passed the full suite (its fitness is its mean score).
_PASSED = f"status = '{Status.OK.value}' AND fitness IS NOT NULL"
#: The condition of a candidate proposed but without a result.
_UNFINISHED = f"status IN ({', '.join(repr(s.value) for s in UNFINISHED)})"
#: The run's state (meta ``state``, not a :class:`Status`) while a session writes it.
_LIVE_STATE = "running"
#: What ``PRAGMA integrity_check`` answers for an intact database.
_INTACT = ["ok"]


# -- errors


class RunStoreError(ValueError):
    """A directory that cannot be used as a run (the message says why and what to do)."""

    @property
    def summary(self) -> str:
        """What is wrong, in few enough words for a list of runs."""
        return str(self)


class RunStoreDamaged(RunStoreError):
    """The database, or a value in it, cannot be read back."""

    @property
    def summary(self) -> str:
        return "damaged (`evozero show` says what to do)"


class RunStoreReadOnly(RunStoreError):
    """A writer was asked for on a run that cannot be written."""


class RunStoreInUse(RunStoreError):
    """Another process writes the run."""


class DamagedCandidate(RunStoreDamaged):
    """A candidate row whose values, or whose program text, do not decode."""

    def __init__(self, run: Path, id: object, why: str) -> None:
        self.run, self.id = run, id
        super().__init__(f"{run}: candidate {id} is damaged ({why})")


def damaged(db: Path, why: str) -> RunStoreDamaged:
    """The error of a database SQLite cannot read back, with the way to save what is
    readable (``.dump`` works with every sqlite3 build, unlike ``.recover``; it ends a
    damaged dump with ROLLBACK, which sed turns into COMMIT)."""
    new = shlex.quote(f"{db.parent}-recovered")
    return RunStoreDamaged(
        f"{db} is damaged ({why}); copy what is readable into a new run directory with: "
        f"mkdir {new} && sqlite3 {shlex.quote(str(db))} .dump | "
        f"sed 's/^ROLLBACK; -- due to errors$/COMMIT;/' | sqlite3 {new}/{DB_NAME}"
    )


def _read_only(directory: Path, why: str, todo: str) -> RunStoreReadOnly:
    return RunStoreReadOnly(f"{directory} is read-only ({why}); {todo}")


#: The commands that write to an existing run (``RunStore.open``'s ``writer``): what
#: they do to it, and the command that does it to a copy.
WRITERS: dict[str, tuple[str, str]] = {
    "resume": ("resume it", "evozero evolve --resume"),
    "refine": ("refine its rules", "evozero refine"),
}


def _copy_to_write(directory: Path, writer: str) -> str:
    """What to do with a read-only run that ``writer`` (a key of :data:`WRITERS`) was to
    write to: work on a writable copy."""
    what, command = WRITERS[writer]
    return (
        f"show, export and runs read it as it is; to {what}, copy it somewhere "
        f"writable: cp -r {directory} NEW && chmod -R u+w NEW && {command} NEW"
    )


# SQLite's primary result codes (https://sqlite.org/rescode.html) that the store tells apart.
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _CONSTRAINT, _NOTADB = (
    5,
    6,
    8,
    10,
    11,
    13,
    14,
    19,
    26,
)
#: Python < 3.11 has no ``sqlite_errorcode``: the code from SQLite's message instead.
_CODE_OF_MESSAGE = (
    ("malformed", _CORRUPT),
    ("not a database", _NOTADB),
    ("readonly", _READONLY),
    ("locked", _BUSY),
    ("full", _FULL),
    ("unable to open", _CANTOPEN),
    ("disk i/o", _IOERR),
    ("constraint", _CONSTRAINT),
)


def _sqlite_code(e: sqlite3.Error) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF  # the primary code of an extended one
    text = str(e).lower()
    return next((c for part, c in _CODE_OF_MESSAGE if part in text), None)


#: How SQLite fails on a database: its errors, and UnicodeDecodeError where a damaged
#: schema makes a column name, or SQLite's own message, invalid UTF-8.
_FAILURES = (sqlite3.DatabaseError, UnicodeDecodeError)


def _store_error(e: Exception, db: Path, writer: str = "resume") -> RunStoreError:
    """The :class:`RunStoreError` of a SQLite failure (one of :data:`_FAILURES`) on ``db``,
    met by ``writer`` (a key of :data:`WRITERS`) where the database is read-only."""
    if not isinstance(e, sqlite3.Error):
        return damaged(db, "its schema holds text that is not UTF-8")
    code = _sqlite_code(e)
    if code == _NOTADB:
        return RunStoreDamaged(
            f"{db} is not a readable run database ({e}): it was not "
            "written by evozero, or its header is damaged; restore it from "
            "a backup"
        )
    if code in (_CORRUPT, _CONSTRAINT):
        # A constraint fails only on rows the single writer did not put there.
        return damaged(db, str(e))
    if code == _READONLY:
        return _read_only(db.parent, str(e), _copy_to_write(db.parent, writer))
    if code in (_BUSY, _LOCKED):
        return RunStoreError(
            f"{db} is locked by another program ({e}); close it (an open "
            "sqlite3 shell?) and try again"
        )
    if code == _FULL:
        return RunStoreError(
            f"cannot write {db}: the disk is full; free some space, then resume the run"
        )
    return RunStoreError(f"cannot use {db}: {e}")


P = ParamSpec("P")
T = TypeVar("T")


def _guarded(
    method: Callable[Concatenate[RunStore, P], T],
) -> Callable[Concatenate[RunStore, P], T]:
    """Turns the SQLite errors of a :class:`RunStore` method into :class:`RunStoreError`
    (a programming error, :class:`sqlite3.ProgrammingError`, stays what it is)."""

    @functools.wraps(method)
    def wrapper(self: RunStore, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.ProgrammingError:
            raise
        except _FAILURES as e:
            raise _store_error(e, self.db, self._writer) from None

    return wrapper


# -- decoding and checking stored values


class _Either(tuple):  # type: ignore[type-arg]
    """Alternative shapes (see :func:`_mismatch`)."""


_NULL = type(None)
_NUM = (int, float)
_OPT_NUM = (int, float, _NULL)
_OPT_INT = (int, _NULL)
_OPT_STR = (str, _NULL)
_INTERVAL = {"mean": _NUM, "lo": _NUM, "hi": _NUM, "n": int, "values": [_NUM]}
_OPT_INTERVAL = _Either((_NULL, _INTERVAL))
_ESTIMATE = {"estimate": _NUM, "lo": _NUM, "hi": _NUM, "n": int}
_AGGREGATE = _Either((_NULL, {"iqm": _ESTIMATE, "improvement": _ESTIMATE}))
_VERDICT = {"verdict": str, "text": str, "lost_on": [str]}
#: The final report (written by :func:`evozero.search.report.summarize`).
_REPORT = {
    "baseline": str,
    "train_tasks": [str],
    "heldout_tasks": [str],
    "steps": {str: int},
    "seeds": [int],
    "budget": str,
    "measured": str,
    "level": _NUM,
    "ppo": {str: _OPT_INTERVAL},
    "subjects": [
        {
            "role": str,
            "id": int,
            "origin": str,
            "fitness": _OPT_NUM,
            "complexity": int,
            "tasks": {
                str: {
                    "return": _OPT_INTERVAL,
                    "normalized": _OPT_NUM,
                    "difference": _OPT_INTERVAL,
                    "loss": bool,
                }
            },
            "train": _AGGREGATE,
            "heldout": _AGGREGATE,
            "failures": [str],
            "verdict": _VERDICT,
        }
    ],
    "comparison": _VERDICT,
}
#: The shape of each metadata value that readers use (see :func:`_mismatch`); the search
#: config and suite are checked in full by the driver when it resumes a run.
_META = {
    "schema": int,
    "created_at": _NUM,
    "environment": {str: str},
    "state": str,
    "kind": str,
    "search_seconds": _NUM,
    "config": dict,
    "suite": dict,
    "report": _Either((_NULL, _REPORT)),
}
_CANDIDATE = {
    "id": int,
    "origin": str,
    "parent": _OPT_INT,
    "mutation": _OPT_STR,
    "text": str,
    "key": str,
    "fingerprint": str,
    "complexity": int,
    "status": str,
    "duplicate_of": _OPT_INT,
    "fitness": _OPT_NUM,
    "hurdle_score": _OPT_NUM,
    "scores": _OPT_STR,
    "message": str,
    "seconds": _OPT_NUM,
    "proposed_at": _NUM,
    "finished_at": _OPT_NUM,
    "done_seq": _OPT_INT,
    "rung": int,
}
_RUN = {
    "candidate": int,
    "phase": str,
    "rung": int,
    "task": str,
    "seed": int,
    "status": str,
    "message": str,
    "final_return": _OPT_NUM,
    "auc": _OPT_NUM,
    "steps": _OPT_INT,
    "seconds": _OPT_NUM,
    "curve": _OPT_STR,
}
_NORMALIZER = {"task": str, "seed": int, "random": _NUM, "ppo": _NUM}
_RUNG = {"candidate": int, "rung": int, "status": str, "fitness": _OPT_NUM}


def _mismatch(value: Any, shape: Any, where: str = "") -> str | None:
    """Where ``value`` departs from ``shape``, or None. A shape is a type or a tuple of
    types (``type(None)`` is null), ``_Either`` of shapes, ``[item]`` (a list),
    ``{key: shape}`` (a dict with these keys, more allowed; a key written ``?key`` may be
    missing) or ``{str: shape}`` (any keys)."""
    if isinstance(shape, _Either):
        found = [_mismatch(value, alternative, where) for alternative in shape]
        return None if None in found else found[-1]
    if isinstance(shape, (type, tuple)):
        if isinstance(value, shape):
            return None
        names = " or ".join(
            "null" if t is _NULL else t.__name__
            for t in (shape if isinstance(shape, tuple) else (shape,))
        )
        return f"{where or 'the value'} is {type(value).__name__}, not {names}"
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where or 'the value'} is {type(value).__name__}, not a list"
        return next(
            (
                m
                for i, item in enumerate(value)
                if (m := _mismatch(item, shape[0], f"{where}[{i}]"))
            ),
            None,
        )
    if not isinstance(value, dict):
        return f"{where or 'the value'} is {type(value).__name__}, not an object"
    prefix = f"{where}." if where else ""
    if str in shape:
        return next(
            (m for k, item in value.items() if (m := _mismatch(item, shape[str], f"{prefix}{k}"))),
            None,
        )
    for key, sub in shape.items():
        name = key.lstrip("?")
        if name not in value:
            if key.startswith("?"):
                continue
            return f"{where or 'the row'} has no {name!r}"
        if m := _mismatch(value[name], sub, f"{prefix}{name}"):
            return m
    return None


def _checked(value: Any, shape: Any, where: str) -> Any:
    """``value``, if it has ``shape``; else ValueError saying where it does not."""
    if m := _mismatch(value, shape, where):
        raise ValueError(m)
    return value


def _json(text: Any, shape: Any, where: str) -> Any:
    """Decoded JSON ``text`` of ``shape`` (ValueError naming ``where`` if it is not)."""
    if not isinstance(text, str):
        raise ValueError(f"{where} is {type(text).__name__}, not JSON text")
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"{where} is not valid JSON") from None
    return _checked(value, shape, where)


def _enum(kind: type[Status] | type[Phase], value: str, where: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{where} {value!r} is unknown") from None


def _text(raw: bytes) -> str:
    """SQLite text as str: damaged UTF-8 decodes (with U+FFFD) instead of failing the
    whole query; the checks after it then reject the value."""
    return raw.decode("utf-8", "replace")


@dataclass(frozen=True)
class Candidate:
    """One row of ``candidates``."""

    id: int
    origin: str
    parent: int | None
    mutation: str | None
    text: str
    key: str
    fingerprint: str
    complexity: int
    status: Status
    duplicate_of: int | None
    fitness: float | None
    hurdle_score: float | None
    scores: dict[str, float | None]
    message: str
    seconds: float | None
    proposed_at: float
    finished_at: float | None
    done_seq: int | None
    rung: int = 0

    @property
    def rank(self) -> tuple[int, float]:
        """How the search ranks it: the highest rung it reached, then its fitness there
        (no fitness: last)."""
        f = self.fitness
        return (self.rung, f) if f is not None else (-1, float("-inf"))

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Candidate:
        """The candidate of a row; ValueError saying which value does not decode."""
        data = _checked(dict(row), _CANDIDATE, "")
        data["scores"] = _json(data["scores"], {str: _OPT_NUM}, "scores") if data["scores"] else {}
        data["status"] = _enum(Status, data["status"], "status")
        if set(data) != set(_CANDIDATE):
            raise ValueError(f"columns {sorted(data)} are not the store's")
        return cls(**data)


def _run_record(row: sqlite3.Row) -> tuple[Phase, RunRecord]:
    """The phase and record of a ``runs`` row; ValueError saying which value does not
    decode."""
    r = _checked(dict(row), _RUN, "")
    curve = _json(r["curve"], [_OPT_NUM], "curve") if r["curve"] else []
    return _enum(Phase, r["phase"], "phase"), RunRecord(
        task=r["task"],
        seed=r["seed"],
        status=_enum(Status, r["status"], "status"),
        message=r["message"],
        final_return=r["final_return"],
        auc=r["auc"],
        steps=r["steps"],
        seconds=r["seconds"],
        curve=tuple(curve),
    )


def environment() -> dict[str, str]:
    """Versions of evozero, its libraries, the compiler and the platform."""
    import gymnasium
    import sympy

    from evozero import _core

    return {
        "evozero": evozero.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "sympy": sympy.__version__,
        "gymnasium": gymnasium.__version__,
        "compiler": getattr(_core, "COMPILER", "unknown"),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


# -- the writer's lock


class _RunLock:
    """The exclusive lock on a run directory's :data:`LOCK_NAME`, held while open."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    @classmethod
    def acquire(cls, directory: Path, todo: str) -> _RunLock:
        """Takes the lock (RunStoreInUse naming the holder if another process has it);
        ``todo`` says what to do when the directory is read-only."""
        path = directory / LOCK_NAME
        try:
            file = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+b")
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise _read_only(
                    directory, f"cannot create {LOCK_NAME}: {e.strerror}", todo
                ) from None
            raise RunStoreError(f"cannot open {path}: {e.strerror}") from None
        deadline = time.monotonic() + LOCK_PATIENCE
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                holder = _holder(file)
                file.close()
                raise RunStoreInUse(
                    f"{directory} is in use by {holder}; one process at a "
                    "time writes a run: wait for it to end, or stop it "
                    "(Ctrl-C), then try again"
                ) from None
            except OSError as e:
                file.close()
                raise RunStoreError(
                    f"cannot lock {path} ({e.strerror}): this file system has no locks "
                    "(NFS without a lock service?); copy the run to a local disk"
                ) from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        file.truncate(0)
        file.write(json.dumps(record).encode())
        file.flush()
        return cls(file)

    def release(self) -> None:
        self._file.close()  # closing the file drops the lock


def _holder(file: IO[bytes]) -> str:
    """Who holds the lock, as its record says: "process N (host H, since T)"."""
    file.seek(0)
    try:
        record = json.loads(file.read(4096))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["since"]))
        return f"process {record['pid']} (host {record['host']}, since {since})"
    except (ValueError, TypeError, KeyError, OverflowError, OSError):
        return "another process"  # it has the lock but has not written its record yet


def _is_live(directory: Path) -> bool:
    """Whether a writer holds the run's lock now (a shared lock cannot be had)."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False  # never locked (or unreadable: then nobody can write it either)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # no locks here: no writer could have taken one
    finally:
        os.close(fd)  # drops the shared lock
    return False


# -- the store


def _connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(target, uri=uri, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.text_factory = _text
    return conn


def _reader(db: Path) -> tuple[sqlite3.Connection, tempfile.TemporaryDirectory[str] | None]:
    """A read-only connection to ``db`` (and the scratch directory it reads from, if any).

    Reading a WAL database needs its index file (``-shm``) next to it; a directory that
    cannot hold one is read as immutable when its log (``-wal``) is empty, else from a
    copy of the database and its log in a scratch directory.
    """
    uri = db.resolve().as_uri()
    conn = _connect(f"{uri}?mode=ro", uri=True)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn, None
    except BaseException as e:
        conn.close()
        if not (isinstance(e, sqlite3.OperationalError) and _sqlite_code(e) == _CANTOPEN):
            raise
    wal = db.with_name(f"{db.name}-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        return _connect(f"{uri}?immutable=1", uri=True), None
    scratch = tempfile.TemporaryDirectory(prefix="evozero-run-")
    for path in (db, wal):
        shutil.copyfile(path, Path(scratch.name, path.name))
    return _connect(f"{Path(scratch.name, db.name).as_uri()}?mode=ro", uri=True), scratch


def _writer(db: Path) -> sqlite3.Connection:
    """A writer's connection (call :func:`_use_wal` on it before writing)."""
    conn = _connect(str(db))
    try:
        conn.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")  # fails here, before any write, if read-only
        conn.execute("ROLLBACK")
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """The WAL journal (a write, where the database is not in WAL mode yet)."""
    conn.execute("PRAGMA journal_mode=WAL")


def _check_writable(directory: Path, todo: str) -> None:
    """RunStoreReadOnly unless the directory and the database's files are writable."""
    for path in (directory, *(directory / f"{DB_NAME}{s}" for s in ("", "-wal", "-shm"))):
        if path.exists() and not os.access(path, os.W_OK):
            what = "the directory" if path == directory else path.name
            raise _read_only(directory, f"{what} is not writable", todo)


class RunStore:
    """A run directory's database. Create with :meth:`create`, reopen with :meth:`open`.

    A store from :meth:`create` or ``open(..., writer=...)`` is the run's writer: it
    holds the run's lock until :meth:`close` (or its process ends), and any damage it reads
    raises :class:`RunStoreDamaged`. Any other is a reader: read-only, and what does not
    decode is left out of its answers and listed in :attr:`damaged`.
    """

    def __init__(
        self,
        directory: Path,
        conn: sqlite3.Connection,
        *,
        lock: _RunLock | None = None,
        live: bool = False,
        scratch: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        self.directory = directory
        self.db = directory / DB_NAME
        self.conn = conn
        #: What a reader left out because it does not decode: where -> why.
        self.damaged: dict[str, str] = {}
        self._lock = lock
        self._live = live  # a reader's view: another process writes the run
        self._scratch = scratch
        self._writer = "resume"  # what a writer does to the run: a key of WRITERS

    @property
    def writable(self) -> bool:
        """Whether this store is the run's writer."""
        return self._lock is not None

    # -- opening

    @classmethod
    def create(cls, directory: str | Path, meta: Mapping[str, Any]) -> RunStore:
        """A new run in ``directory`` (created and locked; it must not hold a run already)."""
        directory = Path(directory)
        db = directory / DB_NAME
        holds_a_run = RunStoreError(
            f"{directory} already holds a run; resume it with "
            f"--resume {directory} or choose another --out"
        )
        if db.exists():
            raise holds_a_run
        if directory.exists() and not directory.is_dir():
            raise RunStoreError(f"{directory} is a file, not a directory; choose another --out")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunStoreError(
                f"cannot create the run directory {directory}: {e.strerror}; choose another --out"
            ) from None
        lock = _RunLock.acquire(directory, "choose another --out")
        try:
            if db.exists():  # another process created it meanwhile
                raise holds_a_run
            try:
                conn = _writer(db)
                _use_wal(conn)
                conn.executescript(f"BEGIN;\n{_SCHEMA}\nCOMMIT;")
            except _FAILURES as e:
                raise _store_error(e, db) from None
        except BaseException:
            lock.release()
            raise
        store = cls(directory, conn, lock=lock)
        store.set_meta(
            {
                "schema": SCHEMA_VERSION,
                "created_at": time.time(),
                "environment": environment(),
                "state": "running",
                **meta,
            }
        )
        return store

    @classmethod
    def open(cls, directory: str | Path, *, writer: str | None = None) -> RunStore:
        """An existing run: a reader, or with ``writer`` (a key of :data:`WRITERS`, what
        the writing is for, so that a read-only run's error advises it) its writer, which
        needs the run to have been made by this evozero, to be writable and free, and to
        read back whole (checked before anything is written)."""
        directory = Path(directory)
        writing = writer is not None
        db = directory / DB_NAME
        if not directory.is_dir():
            raise RunStoreError(
                f"{directory} is not a directory; give the directory of a run "
                "(`evozero runs` lists them)"
            )
        if not db.is_file():
            raise RunStoreError(
                f"{directory} is not an evozero run (no {DB_NAME}); `evozero runs` lists the runs"
            )
        writer = writer or "resume"  # a reader's advice: resuming is what writes to a run
        todo = _copy_to_write(directory, writer)
        lock = None
        try:
            if writing:
                _check_writable(directory, todo)
                lock = _RunLock.acquire(directory, todo)
                store = cls(directory, _writer(db), lock=lock)
                store._writer = writer
            else:
                conn, scratch = _reader(db)
                store = cls(directory, conn, live=_is_live(directory), scratch=scratch)
        except BaseException as e:
            if lock is not None:
                lock.release()
            if isinstance(e, _FAILURES):
                raise _store_error(e, db, writer) from None
            raise
        try:
            store._check_version(writing)
            store._migrate()
            if writing:
                store._check_whole()
                store._start_writing()
        except BaseException:
            store.close()
            raise
        return store

    def _check_version(self, writing: bool) -> None:
        meta = self.meta()
        if "schema" not in meta:
            raise damaged(
                self.db,
                f"it has no readable schema version: {self.damaged.get('meta schema', 'missing')}",
            )
        schema = meta["schema"]
        made_by = meta.get("environment", {}).get("evozero", "unknown")
        if schema not in (1, SCHEMA_VERSION):
            raise RunStoreError(
                f"{self.directory} is a run of evozero {made_by} (store schema {schema}); this "
                f"evozero {evozero.__version__} reads schema {SCHEMA_VERSION}: use evozero "
                f"{made_by} to read it"
            )
        if writing and made_by != evozero.__version__:
            raise RunStoreError(
                f"{self.directory} was made by evozero {made_by}, this is "
                f"{evozero.__version__}: resume it with evozero {made_by}, or start a new run"
            )

    @_guarded
    def _migrate(self) -> None:
        """Brings a schema-1 store to schema 2: the writer's file in place, a reader's
        in-memory copy (its file stays as it is)."""
        if self.meta()["schema"] == SCHEMA_VERSION:
            return
        if not self.writable:
            copy = _connect(":memory:")
            self.conn.backup(copy)
            self.conn.close()
            self.conn = copy
        self.conn.executescript(f"BEGIN;\n{_MIGRATE_1}\nCOMMIT;")

    @_guarded
    def _check_whole(self) -> None:
        """The writer's check before it writes: SQLite's structures are intact and every
        row the writer will read decodes (else RunStoreDamaged naming the first damage)."""
        problems = [row[0] for row in self.conn.execute("PRAGMA integrity_check(1)")]
        if problems != _INTACT:
            raise damaged(self.db, "integrity check: " + " ".join(str(problems[0]).split()))
        self.meta()
        self.candidates()
        self.count_by_status()
        self.normalizers()
        self.ladders()
        # Of the training runs, a resume reads the final report's only.
        for row in self.conn.execute("SELECT * FROM runs WHERE phase = ?", (Phase.REPORT.value,)):
            self._decode(_run_record, row, f"a report run of candidate {row['candidate']}")

    @_guarded
    def _start_writing(self) -> None:
        """After the check: the WAL journal (a run recovered with sqlite3 is not in WAL
        mode yet)."""
        _use_wal(self.conn)

    def close(self) -> None:
        """Closes the database and, for the writer, releases the run's lock."""
        self.conn.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- decoding

    def _damage(self, where: str, why: str, candidate: object = None) -> None:
        """Damage found: the writer raises RunStoreDamaged (a DamagedCandidate for a
        ``candidate``'s row), a reader notes it in :attr:`damaged` and goes on."""
        if not self.writable:
            self.damaged[where] = why
        elif candidate is not None:
            raise DamagedCandidate(self.directory, candidate, why)
        else:
            raise damaged(self.db, f"{where}: {why}")

    def _decode(
        self,
        decode: Callable[[sqlite3.Row], T],
        row: sqlite3.Row,
        where: str,
        *,
        candidate: object = None,
    ) -> T | None:
        """``decode(row)``, or None (see :meth:`_damage`) if it does not decode."""
        try:
            return decode(row)
        except (ValueError, TypeError) as e:
            self._damage(where, str(e), candidate)
            return None

    def _status(self, status: Status) -> Status:
        """A reader sees the candidates in flight of a run no process writes as queued."""
        if status is Status.RUNNING and not (self.writable or self._live):
            return Status.QUEUED
        return status

    def _candidate(self, row: sqlite3.Row) -> Candidate | None:
        id = dict(row).get("id", "?")
        c = self._decode(Candidate.from_row, row, f"candidate {id}", candidate=id)
        if c is not None and c.status is Status.RUNNING:
            c = replace(c, status=self._status(c.status))
        return c

    def program(self, c: Candidate) -> Program:
        """Candidate ``c``'s program; DamagedCandidate if its stored text does not parse
        (it was edited or damaged)."""
        try:
            return dsl.parse(c.text, filename=f"candidate {c.id}")
        except (ProgramError, RecursionError) as e:
            why = str(e) if isinstance(e, ProgramError) else "it is nested too deeply"
            raise DamagedCandidate(
                self.directory, c.id, f"its program does not parse: {why}"
            ) from None

    # -- meta

    @_guarded
    def set_meta(self, values: Mapping[str, Any]) -> None:
        self._writer_only()
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v, sort_keys=True)) for k, v in values.items()],
            )

    @_guarded
    def meta(self) -> dict[str, Any]:
        """The metadata; a reader sees a run whose state says ``running`` but that no
        process writes (it was killed) as ``stopped``."""
        out = {}
        for row in self.conn.execute("SELECT key, value FROM meta").fetchall():
            where = f"meta {row['key']}"
            value = self._decode(
                lambda r: (_json(r["value"], _META.get(r["key"], object), f"meta {r['key']}"),),
                row,
                where,
            )
            if value is not None:
                out[row["key"]] = value[0]
        if out.get("state") == _LIVE_STATE and not (self.writable or self._live):
            out["state"] = "stopped"
        return out

    # -- candidates: writing

    def _writer_only(self) -> None:
        if not self.writable:
            raise RuntimeError(f"{self.db} was opened for reading")

    @_guarded
    def add_candidate(
        self,
        *,
        id: int,
        origin: str,
        parent: int | None,
        mutation: str | None,
        text: str,
        key: str,
        fingerprint: str,
        complexity: int,
    ) -> None:
        """Record a proposed candidate (``running`` until its result comes)."""
        self._writer_only()
        with self.conn:
            self.conn.execute(
                "INSERT INTO candidates (id, origin, parent, mutation, text, key, fingerprint, "
                "complexity, status, proposed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    id,
                    origin,
                    parent,
                    mutation,
                    text,
                    key,
                    fingerprint,
                    complexity,
                    Status.RUNNING.value,
                    time.time(),
                ),
            )

    @_guarded
    def add_child(
        self,
        *,
        origin: str,
        parent: int,
        mutation: str,
        text: str,
        key: str,
        fingerprint: str,
        complexity: int,
    ) -> int:
        """Record a candidate made outside the evolution (``refine:metagrad`` ...) as a
        child of ``parent``, with the next free id; returns the id. Then train it and
        record its result like any candidate (:meth:`finish_candidate`)."""
        self._writer_only()
        self.candidate(parent)  # raises if there is no such parent (one writer: no race)
        id = int(
            self.conn.execute("SELECT COALESCE(MAX(id), -1) + 1 FROM candidates").fetchone()[0]
        )
        self.add_candidate(
            id=id,
            origin=origin,
            parent=parent,
            mutation=mutation,
            text=text,
            key=key,
            fingerprint=fingerprint,
            complexity=complexity,
        )
        return id

    @_guarded
    def requeue(self) -> None:
        """Candidates in flight become ``queued``: no process trains them now; a resume
        trains them first."""
        self._writer_only()
        with self.conn:
            for table in ("candidates", "rungs"):
                self.conn.execute(
                    f"UPDATE {table} SET status = ? WHERE status = ?",
                    (Status.QUEUED.value, Status.RUNNING.value),
                )

    @_guarded
    def dispatch(self, id: int, rung: int = 0) -> None:
        """Queued candidate ``id`` is being trained again (``running``) at ``rung``."""
        self._writer_only()
        table, where = ("candidates", "id = ?") if rung == 0 else ("rungs", "candidate = ?")
        with self.conn:
            self.conn.execute(
                f"UPDATE {table} SET status = ? WHERE {where} AND status = ? "
                + ("" if rung == 0 else "AND rung = ?"),
                (Status.RUNNING.value, id, Status.QUEUED.value, *(() if rung == 0 else (rung,))),
            )

    @_guarded
    def promote(self, id: int, rung: int) -> None:
        """Trained candidate ``id`` is promoted: it trains at ``rung`` (``running``)."""
        self._writer_only()
        with self.conn:
            self.conn.execute(
                "INSERT INTO rungs (candidate, rung, status) VALUES (?, ?, ?)",
                (id, rung, Status.RUNNING.value),
            )

    @_guarded
    def finish_rung(self, id: int, rung: int, result: CandidateResult) -> None:
        """Record promoted candidate ``id``'s result at ``rung`` (1 or more) and its
        runs; it becomes the candidate's standing."""
        self._writer_only()
        scores = json.dumps(dict(result.scores), sort_keys=True)
        fitness = finite_or_none(result.fitness)
        status = Status(result.status).value
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            updated = self.conn.execute(
                "UPDATE rungs SET status = ?, fitness = ?, scores = ?, message = ?, seconds = ?, "
                f"finished_at = ? WHERE candidate = ? AND rung = ? AND {_UNFINISHED}",
                (status, fitness, scores, result.message, result.seconds, time.time(), id, rung),
            ).rowcount
            if updated != 1:
                raise RunStoreError(
                    f"{self.db}: candidate {id} was not promoted to rung {rung} or already has "
                    "a result there, so this one is not recorded"
                )
            self.conn.execute(
                "UPDATE candidates SET rung = ?, status = ?, fitness = ?, scores = ?, "
                "message = ? WHERE id = ?",
                (rung, status, fitness, scores, result.message, id),
            )
            self._insert_runs(id, result.runs, rung)

    def finish_candidate(self, id: int, result: CandidateResult) -> int:
        """Record a trained candidate's result and its training runs in one transaction.

        Returns the candidate's ``done_seq`` (its age in the population).
        """
        return self._finish(
            id,
            result.status,
            result.fitness,
            result.hurdle_score,
            result.scores,
            result.message,
            result.seconds,
            None,
            result.runs,
        )

    def finish_duplicate(self, id: int, original: int) -> int:
        """Record that candidate ``id`` is the same rule as the trained candidate
        ``original``: it inherits that one's fitness and scores, and trains nothing.

        Returns the candidate's ``done_seq``.
        """
        o = self.candidate(original)
        return self._finish(
            id,
            Status.DUPLICATE,
            o.fitness,
            o.hurdle_score,
            o.scores,
            f"same rule as candidate {o.id}",
            0.0,
            o.id,
            (),
            o.rung,
        )

    @_guarded
    def _finish(
        self,
        id: int,
        status: Status,
        fitness: float | None,
        hurdle_score: float | None,
        scores: Mapping[str, float | None],
        message: str,
        seconds: float | None,
        duplicate_of: int | None,
        runs: Iterable[tuple[Phase, RunRecord]],
        rung: int = 0,
    ) -> int:
        self._writer_only()
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            seq = self.conn.execute(
                "SELECT COALESCE(MAX(done_seq), -1) + 1 FROM candidates"
            ).fetchone()[0]
            updated = self.conn.execute(
                "UPDATE candidates SET status = ?, fitness = ?, hurdle_score = ?, scores = ?, "
                "message = ?, seconds = ?, duplicate_of = ?, finished_at = ?, done_seq = ?, "
                f"rung = ? WHERE id = ? AND {_UNFINISHED}",
                (
                    Status(status).value,
                    finite_or_none(fitness),
                    finite_or_none(hurdle_score),
                    json.dumps(dict(scores), sort_keys=True),
                    message,
                    seconds,
                    duplicate_of,
                    time.time(),
                    seq,
                    rung,
                    id,
                ),
            ).rowcount
            if updated != 1:  # a result is never overwritten
                raise RunStoreError(
                    f"{self.db}: candidate {id} already has a result or "
                    "does not exist, so this one is not recorded"
                )
            if duplicate_of is None:
                self.conn.execute(
                    "INSERT INTO rungs (candidate, rung, status, fitness, scores, message, "
                    "seconds, finished_at) SELECT id, 0, status, fitness, scores, message, "
                    "seconds, finished_at FROM candidates WHERE id = ?",
                    (id,),
                )
            self._insert_runs(id, runs)
        return int(seq)

    @_guarded
    def add_runs(self, candidate: int, runs: Iterable[tuple[Phase, RunRecord]]) -> None:
        """Record training runs of a candidate (the final report's re-evaluations)."""
        self._writer_only()
        with self.conn:
            self.conn.execute("BEGIN")
            self._insert_runs(candidate, runs)

    def _insert_runs(
        self, candidate: int, runs: Iterable[tuple[Phase, RunRecord]], rung: int = 0
    ) -> None:
        self.conn.executemany(  # plain INSERT: a recorded run is never replaced
            "INSERT INTO runs (candidate, phase, rung, task, seed, status, message, "
            "final_return, auc, steps, seconds, curve) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    candidate,
                    Phase(phase).value,
                    rung,
                    r.task,
                    r.seed,
                    r.status.value,
                    r.message,
                    finite_or_none(r.final_return),
                    finite_or_none(r.auc),
                    r.steps,
                    r.seconds,
                    json.dumps(list(r.curve)),
                )
                for phase, r in runs
            ],
        )

    # -- candidates: named queries

    @_guarded
    def candidate(self, id: int) -> Candidate:
        """Candidate ``id``; KeyError if there is none (or, for a reader, if it is
        damaged)."""
        row = self.conn.execute("SELECT * FROM candidates WHERE id = ?", (id,)).fetchone()
        c = None if row is None else self._candidate(row)
        if c is None:
            raise KeyError(id)
        return c

    def candidates(self, status: Status | None = None) -> list[Candidate]:
        """Every candidate (or those with ``status``), in proposal order."""
        if status is None:
            return self._select("1 ORDER BY id")
        if Status(status) in UNFINISHED:
            return [c for c in self.unfinished() if c.status is Status(status)]
        return self._select("status = ? ORDER BY id", (Status(status).value,))

    def finished(self) -> list[Candidate]:
        """Candidates with a result, in the order the results came (regularized
        evolution's age: the population is the youngest of them)."""
        return self._select("done_seq IS NOT NULL ORDER BY done_seq")

    def unfinished(self) -> list[Candidate]:
        """Candidates proposed but without a result (``running``, or ``queued`` when no
        process trains them), in proposal order."""
        return self._select(f"{_UNFINISHED} ORDER BY id")

    def best(self, k: int) -> list[Candidate]:
        """The ``k`` best candidates that passed their tasks: highest rung reached first,
        then fittest there (ties: simpler, then older first)."""
        return self._select(
            f"{_PASSED} ORDER BY rung DESC, fitness DESC, complexity, id LIMIT ?", (k,)
        )

    def best_readable(
        self, k: int
    ) -> tuple[list[tuple[Candidate, Program]], list[DamagedCandidate]]:
        """The ``k`` best candidates (as :meth:`best`) whose programs parse, each with its
        program, and the damaged ones passed over on the way: a damaged best rule does
        not hide the next one."""
        readable: list[tuple[Candidate, Program]] = []
        skipped: list[DamagedCandidate] = []
        limit = k
        rows = self.best(limit)
        i = 0
        while len(readable) < k:
            if i == len(rows):
                if len(rows) < limit:
                    break  # no more candidates passed
                limit *= 2
                rows = self.best(limit)
                continue
            c = rows[i]
            i += 1
            try:
                readable.append((c, self.program(c)))
            except DamagedCandidate as e:
                skipped.append(e)
        return readable, skipped

    def passed_by_complexity(self) -> list[Candidate]:
        """The candidates that passed their tasks, simplest first, best first within a
        complexity (highest rung, then fitness: what the hall of fame is made from)."""
        return self._select(f"{_PASSED} ORDER BY complexity, rung DESC, fitness DESC, id")

    def best_initial(self) -> Candidate | None:
        """The fittest initial program with a result (failed ones last), if any."""
        found = self._select(
            "substr(origin, 1, ?) = ? AND done_seq IS NOT NULL "
            "ORDER BY fitness IS NULL, rung DESC, fitness DESC, id LIMIT 1",
            (len(INIT_ORIGIN), INIT_ORIGIN),
        )
        return found[0] if found else None

    @_guarded
    def count_by_status(self, *, children: bool | None = False) -> Counter[Status]:
        """How many candidates have each status: the search's own (``children`` False,
        what its budget counts), the refined children (True), or all (None)."""
        where, params = "1", ()
        if children is not None:
            where = f"substr(origin, 1, ?) {'=' if children else '!='} ?"
            params = (len(REFINE_ORIGIN), REFINE_ORIGIN)
        counts: Counter[Status] = Counter()
        rows = self.conn.execute(
            f"SELECT status, COUNT(*) FROM candidates WHERE {where} GROUP BY status", params
        )
        for value, n in rows.fetchall():
            try:
                counts[self._status(Status(value))] += n
            except ValueError:
                for (id,) in self.conn.execute(
                    f"SELECT id FROM candidates WHERE status IS ? AND {where}", (value, *params)
                ).fetchall():
                    self._damage(f"candidate {id}", f"status {value!r} is unknown", id)
        return counts

    def count(self, *statuses: Status, children: bool | None = False) -> int:
        """How many candidates (as :meth:`count_by_status` selects them) have one of
        ``statuses``."""
        counts = self.count_by_status(children=children)
        return sum(counts[Status(s)] for s in set(statuses))

    @_guarded
    def _select(self, condition: str, params: tuple[Any, ...] = ()) -> list[Candidate]:
        rows = self.conn.execute(f"SELECT * FROM candidates WHERE {condition}", params)
        return [c for c in map(self._candidate, rows.fetchall()) if c is not None]

    @_guarded
    def runs(
        self, candidate: int, phase: Phase | None = None, rung: int | None = None
    ) -> list[RunRecord]:
        """Training runs of a candidate (those of one ``phase``, of one ``rung``), by
        phase, rung, task, seed."""
        sql = "SELECT * FROM runs WHERE candidate = ?"
        params: tuple[Any, ...] = (candidate,)
        if phase is not None:
            sql += " AND phase = ?"
            params += (Phase(phase).value,)
        if rung is not None:
            sql += " AND rung = ?"
            params += (rung,)
        rows = self.conn.execute(sql + " ORDER BY phase, rung, task, seed", params).fetchall()
        records = [self._decode(_run_record, r, f"a run of candidate {candidate}") for r in rows]
        return [record for _, record in filter(None, records)]

    # -- rungs

    def _rung_rows(self, condition: str = "1") -> list[tuple[dict[str, Any], Status]]:
        """Rows of the rungs table (``condition`` in SQL), decoded and checked, in the order
        they were written; a damaged row is skipped (see :meth:`_damage`)."""
        rows = self.conn.execute(
            f"SELECT candidate, rung, status, fitness FROM rungs WHERE {condition} ORDER BY rowid"
        ).fetchall()
        out = []
        for row in rows:
            decoded = self._decode(
                lambda r: (
                    (d := _checked(dict(r), _RUNG, "")),
                    _enum(Status, d["status"], "status"),
                ),
                row,
                f"rung {row['rung']!r} of candidate {row['candidate']!r}",
                candidate=row["candidate"],
            )
            if decoded is not None:
                out.append(decoded)
        return out

    @_guarded
    def ladders(self) -> dict[int, dict[int, tuple[Status, float | None]]]:
        """Per trained candidate, its result (status, fitness) at each rung it has one."""
        out: dict[int, dict[int, tuple[Status, float | None]]] = {}
        for r, status in self._rung_rows(f"NOT {_UNFINISHED}"):
            out.setdefault(r["candidate"], {})[r["rung"]] = (status, r["fitness"])
        return out

    @_guarded
    def unfinished_promotions(self) -> list[tuple[int, int]]:
        """``(candidate, rung)`` of the promotions without a result, in promotion order."""
        return [(r["candidate"], r["rung"]) for r, _ in self._rung_rows(_UNFINISHED)]

    @_guarded
    def rung_summary(self) -> list[dict[str, Any]]:
        """Per rung: candidates with a result there (``evaluated``), those training there
        now (``in_flight``), and the best fitness of an ``ok`` one (``best``)."""
        summary: dict[int, dict[str, Any]] = {}
        for r, status in self._rung_rows():
            s = summary.setdefault(
                r["rung"], {"rung": r["rung"], "evaluated": 0, "in_flight": 0, "best": None}
            )
            s["in_flight" if status in UNFINISHED else "evaluated"] += 1
            if status is Status.OK and r["fitness"] is not None:
                s["best"] = r["fitness"] if s["best"] is None else max(s["best"], r["fitness"])
        return [summary[rung] for rung in sorted(summary)]

    # -- normalizers

    @_guarded
    def set_normalizer(self, task: str, seed: int, random: float, ppo: float) -> None:
        self._writer_only()
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO normalizers VALUES (?, ?, ?, ?)", (task, seed, random, ppo)
            )

    @_guarded
    def normalizers(self) -> dict[tuple[str, int], tuple[float, float]]:
        rows = self.conn.execute("SELECT task, seed, random, ppo FROM normalizers").fetchall()
        decoded = [
            self._decode(
                lambda r: _checked(dict(r), _NORMALIZER, ""),
                r,
                f"the normalizers of {r['task']!r} seed {r['seed']!r}",
            )
            for r in rows
        ]
        return {
            (n["task"], n["seed"]): (float(n["random"]), float(n["ppo"]))
            for n in decoded
            if n is not None
        }


def find_runs(root: str | Path) -> Iterator[Path]:
    """Run directories under ``root`` (the root itself, its children, grandchildren)."""
    root = Path(root)
    for pattern in (DB_NAME, f"*/{DB_NAME}", f"*/*/{DB_NAME}"):
        for db in sorted(root.glob(pattern)):
            yield db.parent
