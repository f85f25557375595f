"""The run store: one directory per search run, holding a SQLite database.

Only the driver writes to it, and it commits every change as it happens (WAL journal), so
a run killed at any moment, ``kill -9`` included, keeps everything that had finished.
Values are plain SQL and JSON text; nothing is pickled.

Tables:

``meta``
    key/value (JSON): schema and evozero versions, the search config and suite, the
    platform and library versions, the run's state and its final report.
``candidates``
    every proposed program in proposal order: text, canonical key, fingerprint, parent,
    mutation, status (``running``, ``ok``, ``culled``, ``diverged``, ``error``,
    ``duplicate``), fitness, per-task scores, seconds, and ``done_seq``, the order in
    which results entered the population (regularized evolution's age).
``runs``
    every training run: candidate, phase (``hurdle``, ``search``, ``report``), task,
    seed, status, final return, area under the curve, steps, seconds, learning curve.
``normalizers``
    ``R_random`` and ``R_ppo`` per task and seed as used by this run.
"""

from __future__ import annotations

import json
import platform
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import evozero

SCHEMA_VERSION = 1
DB_NAME = "run.sqlite"

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
    done_seq INTEGER UNIQUE
);
CREATE INDEX candidates_key ON candidates(key);
CREATE INDEX candidates_fingerprint ON candidates(fingerprint);
CREATE TABLE runs (
    candidate INTEGER NOT NULL REFERENCES candidates(id),
    phase TEXT NOT NULL,
    task TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    final_return REAL,
    auc REAL,
    steps INTEGER,
    seconds REAL,
    curve TEXT,
    PRIMARY KEY (candidate, phase, task, seed)
);
CREATE TABLE normalizers (
    task TEXT NOT NULL,
    seed INTEGER NOT NULL,
    random REAL NOT NULL,
    ppo REAL NOT NULL,
    PRIMARY KEY (task, seed)
);
"""


class RunStoreError(ValueError):
    """A directory that cannot be used as a run (the message says why and what to do)."""


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
    status: str
    duplicate_of: int | None
    fitness: float | None
    hurdle_score: float | None
    scores: dict[str, float | None]
    message: str
    seconds: float | None
    proposed_at: float
    finished_at: float | None
    done_seq: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Candidate:
        data = dict(row)
        data["scores"] = json.loads(data["scores"]) if data["scores"] else {}
        return cls(**data)


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


class RunStore:
    """A run directory's database. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, directory: Path, conn: sqlite3.Connection) -> None:
        self.directory = directory
        self.conn = conn

    # -- opening

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @classmethod
    def create(cls, directory: str | Path, meta: Mapping[str, Any]) -> RunStore:
        """A new run in ``directory`` (created; it must not hold a run already)."""
        directory = Path(directory)
        if (directory / DB_NAME).exists():
            raise RunStoreError(
                f"{directory} already holds a run; resume it with --resume {directory} "
                "or choose another --out")
        if directory.exists() and not directory.is_dir():
            raise RunStoreError(f"{directory} is a file, not a directory; choose another --out")
        directory.mkdir(parents=True, exist_ok=True)
        conn = cls._connect(directory / DB_NAME)
        conn.executescript(f"BEGIN;\n{_SCHEMA}\nCOMMIT;")
        store = cls(directory, conn)
        store.set_meta({"schema": SCHEMA_VERSION, "created_at": time.time(),
                        "environment": environment(), "state": "running", **meta})
        return store

    @classmethod
    def open(cls, directory: str | Path, *, for_resume: bool = False) -> RunStore:
        """An existing run; with ``for_resume`` it must have been made by this evozero."""
        directory = Path(directory)
        db = directory / DB_NAME
        if not directory.is_dir():
            raise RunStoreError(f"{directory} is not a directory; give the directory of a run "
                                "(`evozero runs` lists them)")
        if not db.is_file():
            raise RunStoreError(f"{directory} is not an evozero run (no {DB_NAME}); "
                                "`evozero runs` lists the runs")
        try:
            conn = cls._connect(db)
            rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            raise RunStoreError(f"{db} is not a readable run database ({e}); "
                                "it was not written by evozero or is damaged") from None
        schema = json.loads(rows.get("schema", "null"))
        made_by = json.loads(rows.get("environment", "{}")).get("evozero", "unknown")
        if schema != SCHEMA_VERSION:
            raise RunStoreError(
                f"{directory} is a run of evozero {made_by} (store schema {schema}); this "
                f"evozero {evozero.__version__} reads schema {SCHEMA_VERSION}: use evozero "
                f"{made_by} to read it")
        if for_resume and made_by != evozero.__version__:
            raise RunStoreError(
                f"{directory} was made by evozero {made_by}, this is {evozero.__version__}: "
                f"resume it with evozero {made_by}, or start a new run")
        return cls(directory, conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta

    def set_meta(self, values: Mapping[str, Any]) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v, sort_keys=True)) for k, v in values.items()])

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v)
                for k, v in self.conn.execute("SELECT key, value FROM meta").fetchall()}

    # -- candidates

    def add_candidate(self, *, id: int, origin: str, parent: int | None, mutation: str | None,
                      text: str, key: str, fingerprint: str, complexity: int,
                      status: str = "running") -> None:
        """Record a proposed candidate (``running`` until its result comes)."""
        with self.conn:
            self.conn.execute(
                "INSERT INTO candidates (id, origin, parent, mutation, text, key, fingerprint, "
                "complexity, status, proposed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (id, origin, parent, mutation, text, key, fingerprint, complexity, status,
                 time.time()))

    def finish_candidate(self, id: int, *, status: str, fitness: float | None,
                         hurdle_score: float | None = None,
                         scores: Mapping[str, float | None] | None = None, message: str = "",
                         seconds: float | None = None, duplicate_of: int | None = None,
                         runs: Iterable[tuple[str, Mapping[str, Any]]] = ()) -> int:
        """Record a candidate's result and its training runs in one transaction.

        ``runs`` holds ``(phase, record)`` pairs (records from :func:`fitness.run_task`).
        Returns the candidate's ``done_seq`` (its age in the population).
        """
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            seq = self.conn.execute(
                "SELECT COALESCE(MAX(done_seq), -1) + 1 FROM candidates").fetchone()[0]
            self.conn.execute(
                "UPDATE candidates SET status = ?, fitness = ?, hurdle_score = ?, scores = ?, "
                "message = ?, seconds = ?, duplicate_of = ?, finished_at = ?, done_seq = ? "
                "WHERE id = ?",
                (status, _finite(fitness), _finite(hurdle_score),
                 json.dumps(dict(scores or {}), sort_keys=True), message, seconds,
                 duplicate_of, time.time(), seq, id))
            self._insert_runs(id, runs)
        return int(seq)

    def add_runs(self, candidate: int, runs: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Record training runs of a candidate (the final report's re-evaluations)."""
        with self.conn:
            self.conn.execute("BEGIN")
            self._insert_runs(candidate, runs)

    def _insert_runs(self, candidate: int, runs: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO runs (candidate, phase, task, seed, status, message, "
            "final_return, auc, steps, seconds, curve) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(candidate, phase, r["task"], r["seed"], r["status"], r["message"],
              _finite(r["final_return"]), _finite(r["auc"]), r["steps"], r["seconds"],
              json.dumps(r["curve"])) for phase, r in runs])

    def candidate(self, id: int) -> Candidate:
        row = self.conn.execute("SELECT * FROM candidates WHERE id = ?", (id,)).fetchone()
        if row is None:
            raise KeyError(id)
        return Candidate.from_row(row)

    def candidates(self, where: str = "1", params: tuple[Any, ...] = (),
                   order: str = "id") -> list[Candidate]:
        """Candidates matching an SQL condition (internal callers only: not user input)."""
        rows = self.conn.execute(
            f"SELECT * FROM candidates WHERE {where} ORDER BY {order}", params).fetchall()
        return [Candidate.from_row(r) for r in rows]

    def by_key(self, key: str, fingerprint: str) -> list[Candidate]:
        """The finished, trained candidates with this canonical key or fingerprint, by id
        (which of them are the same rule, :func:`evozero.program.canon.same_keys` says)."""
        rows = self.conn.execute(
            "SELECT * FROM candidates WHERE (key = ? OR fingerprint = ?) "
            "AND status NOT IN ('running', 'duplicate') ORDER BY id",
            (key, fingerprint)).fetchall()
        return [Candidate.from_row(r) for r in rows]

    def next_id(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(id), -1) + 1 FROM candidates")
                   .fetchone()[0])

    def count(self, where: str = "1") -> int:
        return int(self.conn.execute(f"SELECT COUNT(*) FROM candidates WHERE {where}")
                   .fetchone()[0])

    def population(self, size: int) -> list[Candidate]:
        """The ``size`` youngest finished candidates, oldest first (regularized evolution)."""
        rows = self.conn.execute(
            "SELECT * FROM (SELECT * FROM candidates WHERE done_seq IS NOT NULL "
            "ORDER BY done_seq DESC LIMIT ?) ORDER BY done_seq", (size,)).fetchall()
        return [Candidate.from_row(r) for r in rows]

    def runs(self, candidate: int, phase: str | None = None) -> list[dict[str, Any]]:
        """Training runs of a candidate, as records."""
        sql = "SELECT * FROM runs WHERE candidate = ?"
        params: tuple[Any, ...] = (candidate,)
        if phase is not None:
            sql += " AND phase = ?"
            params += (phase,)
        rows = self.conn.execute(sql + " ORDER BY phase, task, seed", params).fetchall()
        out = []
        for row in rows:
            rec = dict(row)
            rec["curve"] = json.loads(rec["curve"]) if rec["curve"] else []
            out.append(rec)
        return out

    # -- normalizers

    def set_normalizer(self, task: str, seed: int, random: float, ppo: float) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO normalizers VALUES (?, ?, ?, ?)",
                              (task, seed, random, ppo))

    def normalizers(self) -> dict[tuple[str, int], tuple[float, float]]:
        return {(t, s): (r, p) for t, s, r, p in
                self.conn.execute("SELECT task, seed, random, ppo FROM normalizers")}


def _finite(x: float | None) -> float | None:
    """SQLite has no NaN: store non-finite numbers as NULL."""
    return None if x is None or not np.isfinite(x) else float(x)


def find_runs(root: str | Path) -> Iterator[Path]:
    """Run directories under ``root`` (the root itself, its children, grandchildren)."""
    root = Path(root)
    for pattern in (DB_NAME, f"*/{DB_NAME}", f"*/*/{DB_NAME}"):
        for db in sorted(root.glob(pattern)):
            yield db.parent
