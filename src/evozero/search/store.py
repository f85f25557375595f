"""The run store: one directory per search run, holding a SQLite database.

Only the driver writes to it, and it commits every change as it happens (WAL journal), so
a run killed at any moment, ``kill -9`` included, keeps everything that had finished.
Values are plain SQL and JSON text; nothing is pickled. Readers ask named questions
(:meth:`RunStore.best`, :meth:`RunStore.finished`, :meth:`RunStore.count` ...): SQL stays
in this module.

Tables:

``meta``
    key/value (JSON): schema and evozero versions, the search config and suite, the
    platform and library versions, the run's state and its final report.
``candidates``
    every proposed program in proposal order: origin (``init:NAME`` or ``mutation``),
    text, canonical key, fingerprint, parent, mutation, status (an
    :class:`evozero.status.Status`: ``running``, ``ok``, ``culled``, ``diverged``,
    ``error``, ``duplicate``), fitness, per-task scores, seconds, and ``done_seq``, the order in
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
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import evozero
from evozero.search.protocol import CandidateResult, Phase, RunRecord, finite_or_none
from evozero.status import Status

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


#: The origin of an initial program starts with this (``init:ppo``, ``init:rule.evz``);
#: a mutant's origin is ``mutation``.
INIT_ORIGIN = "init:"
#: The condition of a candidate that passed the full suite (its fitness is its mean score).
_PASSED = f"status = '{Status.OK.value}' AND fitness IS NOT NULL"


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

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Candidate:
        data = dict(row)
        data["scores"] = json.loads(data["scores"]) if data["scores"] else {}
        data["status"] = Status(data["status"])
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

    # -- candidates: writing

    def add_candidate(self, *, id: int, origin: str, parent: int | None, mutation: str | None,
                      text: str, key: str, fingerprint: str, complexity: int) -> None:
        """Record a proposed candidate (``running`` until its result comes)."""
        with self.conn:
            self.conn.execute(
                "INSERT INTO candidates (id, origin, parent, mutation, text, key, fingerprint, "
                "complexity, status, proposed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (id, origin, parent, mutation, text, key, fingerprint, complexity,
                 Status.RUNNING.value, time.time()))

    def finish_candidate(self, id: int, result: CandidateResult) -> int:
        """Record a trained candidate's result and its training runs in one transaction.

        Returns the candidate's ``done_seq`` (its age in the population).
        """
        return self._finish(id, result.status, result.fitness, result.hurdle_score,
                            result.scores, result.message, result.seconds, None, result.runs)

    def finish_duplicate(self, id: int, original: int) -> int:
        """Record that candidate ``id`` is the same rule as the trained candidate
        ``original``: it inherits that one's fitness and scores, and trains nothing.

        Returns the candidate's ``done_seq``.
        """
        o = self.candidate(original)
        return self._finish(id, Status.DUPLICATE, o.fitness, o.hurdle_score, o.scores,
                            f"same rule as candidate {o.id}", 0.0, o.id, ())

    def _finish(self, id: int, status: Status, fitness: float | None,
                hurdle_score: float | None, scores: Mapping[str, float | None], message: str,
                seconds: float | None, duplicate_of: int | None,
                runs: Iterable[tuple[Phase, RunRecord]]) -> int:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            seq = self.conn.execute(
                "SELECT COALESCE(MAX(done_seq), -1) + 1 FROM candidates").fetchone()[0]
            self.conn.execute(
                "UPDATE candidates SET status = ?, fitness = ?, hurdle_score = ?, scores = ?, "
                "message = ?, seconds = ?, duplicate_of = ?, finished_at = ?, done_seq = ? "
                "WHERE id = ?",
                (Status(status).value, finite_or_none(fitness), finite_or_none(hurdle_score),
                 json.dumps(dict(scores), sort_keys=True), message, seconds, duplicate_of,
                 time.time(), seq, id))
            self._insert_runs(id, runs)
        return int(seq)

    def add_runs(self, candidate: int, runs: Iterable[tuple[Phase, RunRecord]]) -> None:
        """Record training runs of a candidate (the final report's re-evaluations)."""
        with self.conn:
            self.conn.execute("BEGIN")
            self._insert_runs(candidate, runs)

    def _insert_runs(self, candidate: int, runs: Iterable[tuple[Phase, RunRecord]]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO runs (candidate, phase, task, seed, status, message, "
            "final_return, auc, steps, seconds, curve) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(candidate, Phase(phase).value, r.task, r.seed, r.status.value, r.message,
              finite_or_none(r.final_return), finite_or_none(r.auc), r.steps, r.seconds,
              json.dumps(list(r.curve))) for phase, r in runs])

    # -- candidates: named queries

    def candidate(self, id: int) -> Candidate:
        """Candidate ``id``; KeyError if there is none."""
        row = self.conn.execute("SELECT * FROM candidates WHERE id = ?", (id,)).fetchone()
        if row is None:
            raise KeyError(id)
        return Candidate.from_row(row)

    def candidates(self, status: Status | None = None) -> list[Candidate]:
        """Every candidate (or those with ``status``), in proposal order."""
        if status is None:
            return self._select("1 ORDER BY id")
        return self._select("status = ? ORDER BY id", (Status(status).value,))

    def finished(self) -> list[Candidate]:
        """Candidates with a result, in the order the results came (regularized
        evolution's age: the population is the youngest of them)."""
        return self._select("done_seq IS NOT NULL ORDER BY done_seq")

    def unfinished(self) -> list[Candidate]:
        """Candidates proposed but without a result (in flight when the run stopped), in
        proposal order."""
        return self.candidates(Status.RUNNING)

    def best(self, k: int) -> list[Candidate]:
        """The ``k`` fittest candidates that passed the full suite (ties: simpler, then
        older first)."""
        return self._select(f"{_PASSED} ORDER BY fitness DESC, complexity, id LIMIT ?", (k,))

    def passed_by_complexity(self) -> list[Candidate]:
        """The candidates that passed the full suite, simplest first, fittest first within
        a complexity (what the hall of fame is made from)."""
        return self._select(f"{_PASSED} ORDER BY complexity, fitness DESC, id")

    def best_initial(self) -> Candidate | None:
        """The fittest initial program with a result (failed ones last), if any."""
        found = self._select("substr(origin, 1, ?) = ? AND done_seq IS NOT NULL "
                             "ORDER BY fitness IS NULL, fitness DESC, id LIMIT 1",
                             (len(INIT_ORIGIN), INIT_ORIGIN))
        return found[0] if found else None

    def count_by_status(self) -> Counter[Status]:
        """How many candidates have each status."""
        return Counter({Status(s): n for s, n in self.conn.execute(
            "SELECT status, COUNT(*) FROM candidates GROUP BY status")})

    def count(self, *statuses: Status) -> int:
        """How many candidates have one of ``statuses``."""
        counts = self.count_by_status()
        return sum(counts[Status(s)] for s in set(statuses))

    def _select(self, condition: str, params: tuple[Any, ...] = ()) -> list[Candidate]:
        rows = self.conn.execute(f"SELECT * FROM candidates WHERE {condition}", params)
        return [Candidate.from_row(r) for r in rows.fetchall()]

    def runs(self, candidate: int, phase: Phase | None = None) -> list[RunRecord]:
        """Training runs of a candidate (those of one ``phase``), by phase, task, seed."""
        sql = "SELECT * FROM runs WHERE candidate = ?"
        params: tuple[Any, ...] = (candidate,)
        if phase is not None:
            sql += " AND phase = ?"
            params += (Phase(phase).value,)
        rows = self.conn.execute(sql + " ORDER BY phase, task, seed", params).fetchall()
        return [RunRecord(task=r["task"], seed=r["seed"], status=Status(r["status"]),
                          message=r["message"], final_return=r["final_return"], auc=r["auc"],
                          steps=r["steps"], seconds=r["seconds"],
                          curve=tuple(json.loads(r["curve"]) if r["curve"] else ()))
                for r in rows]

    # -- normalizers

    def set_normalizer(self, task: str, seed: int, random: float, ppo: float) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO normalizers VALUES (?, ?, ?, ?)",
                              (task, seed, random, ppo))

    def normalizers(self) -> dict[tuple[str, int], tuple[float, float]]:
        return {(t, s): (r, p) for t, s, r, p in
                self.conn.execute("SELECT task, seed, random, ppo FROM normalizers")}


def find_runs(root: str | Path) -> Iterator[Path]:
    """Run directories under ``root`` (the root itself, its children, grandchildren)."""
    root = Path(root)
    for pattern in (DB_NAME, f"*/{DB_NAME}", f"*/*/{DB_NAME}"):
        for db in sorted(root.glob(pattern)):
            yield db.parent
