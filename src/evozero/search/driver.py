"""Regularized evolution over update programs (Real et al. 2019; AutoML-Zero).

The driver owns the population and the run store; workers only train candidates. The
search is steady-state and asynchronous: whenever a worker is free, a tournament of
``tournament`` individuals drawn from the population picks a parent, a mutation of it is
proposed, and its canonical key is looked up first, so a duplicate is never trained: it
inherits the recorded result (and is counted). When a result comes back the child joins
the population and the oldest individual dies. The population is the ``population``
youngest finished candidates of the store, so a resumed run continues exactly where it
stood. Every random choice for proposal ``i`` comes from ``default_rng([seed, i])``.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from evozero.program import dsl
from evozero.program.canon import canonical_key, fingerprint, same_keys
from evozero.program.model import Program
from evozero.program.mutate import mutate
from evozero.program.random_programs import random_program
from evozero.search.backends import BACKENDS, Backend, Outcome, make_backend
from evozero.search.fitness import (
    DEFAULT_SUITE,
    NormalizerCache,
    Suite,
    Task,
    evaluate_job,
    get_suite,
    reference_program,
    reference_program_text,
    task_score,
)
from evozero.search.report import summarize
from evozero.search.store import Candidate, RunStore

INITS: tuple[str, ...] = ("seeds", "noop", "random")
#: The reference programs that ``--init seeds`` starts from (noop is not a seed: it
#: learns nothing).
SEED_PROGRAMS: tuple[str, ...] = ("ppo", "a2c", "dpo", "reinforce", "td_ac")
#: Consecutive duplicate proposals after which the search is declared stalled.
MAX_DUPLICATE_STREAK = 1000
#: Candidate statuses that count as trained (the budget counts these).
TRAINED = ("ok", "culled", "diverged", "error")


@dataclass(frozen=True)
class SearchConfig:
    """Settings of a search run (all recorded in the run store).

    Attributes:
        budget: trained candidates to evaluate (duplicates are not counted).
        suite: the task suite fitness is measured on (see ``fitness.SUITES``).
        init: ``seeds`` (the reference programs), ``noop`` or ``random``; ignored when
            ``init_texts`` is given.
        init_texts: ``(filename, text)`` of user-given initial programs.
        population: individuals kept alive; the oldest dies when a child arrives.
        tournament: individuals drawn to pick each parent.
        workers: parallel evaluations (default: all cores).
        backend: ``serial`` (deterministic), ``process`` or ``ray``.
        address: Ray cluster address (``auto``, ``HOST:PORT``) for the ray backend.
        seed: seeds every random choice of the search.
    """

    budget: int
    suite: str = DEFAULT_SUITE
    init: str = "seeds"
    init_texts: tuple[tuple[str, str], ...] = ()
    population: int = 32
    tournament: int = 4
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    backend: str = "process"
    address: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        def positive(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name} must be an integer >= 1, got {value!r}")

        for name in ("budget", "population", "tournament", "workers"):
            positive(name)
        get_suite(self.suite)
        if self.init not in INITS:
            raise ValueError(f"unknown --init {self.init!r}; choose one of {', '.join(INITS)} "
                             "or give .evz files")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown --backend {self.backend!r}; choose one of "
                             f"{', '.join(BACKENDS)}")
        if self.tournament > self.population:
            raise ValueError(f"--tournament ({self.tournament}) cannot exceed --population "
                             f"({self.population})")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["init_texts"] = [list(t) for t in self.init_texts]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchConfig:
        data = dict(data)
        data["init_texts"] = tuple(tuple(t) for t in data.get("init_texts", ()))
        return cls(**data)


@dataclass
class SearchStatus:
    """A snapshot of a running search, for live displays."""

    phase: str
    budget: int
    trained: int = 0
    in_flight: int = 0
    duplicates: int = 0
    failed: int = 0
    culled: int = 0
    started: float = field(default_factory=time.time)
    search_seconds: float = 0.0
    best: Candidate | None = None
    message: str = ""
    hall_of_fame: list[Candidate] = field(default_factory=list)

    @property
    def evals_per_hour(self) -> float:
        return 3600 * self.trained / self.search_seconds if self.search_seconds > 0 else 0.0


# ----------------------------------------------------------------------------- the population


def fitness_key(c: Candidate) -> float:
    """Tournament order: fitness, failed candidates last."""
    return -math.inf if c.fitness is None else c.fitness


def tournament_select(population: Sequence[Candidate], size: int,
                      rng: np.random.Generator) -> Candidate:
    """The fittest of ``size`` individuals drawn without replacement (all if fewer)."""
    k = min(size, len(population))
    picks = rng.choice(len(population), size=k, replace=False)
    return max((population[int(i)] for i in sorted(picks)), key=fitness_key)


def hall_of_fame(store: RunStore) -> list[Candidate]:
    """The Pareto front of fitness vs complexity: the best rule of each complexity that
    no simpler rule beats, over every candidate that passed the full suite; fittest first."""
    front: list[Candidate] = []
    for c in store.candidates("status = 'ok' AND fitness IS NOT NULL",
                              order="complexity, fitness DESC, id"):
        if not front or c.fitness > front[-1].fitness:  # type: ignore[operator]
            if front and front[-1].complexity == c.complexity:
                continue
            front.append(c)
    return front[::-1]


def top_candidates(store: RunStore, k: int) -> list[Candidate]:
    """The ``k`` fittest candidates that passed the full suite."""
    return store.candidates("status = 'ok' AND fitness IS NOT NULL",
                            order="fitness DESC, complexity, id")[:k]


def initial_programs(config: SearchConfig) -> list[tuple[str, Program]]:
    """``(origin, program)`` of the initial population."""
    if config.init_texts:
        return [(f"init:{Path(name).name}", dsl.parse(text, filename=name))
                for name, text in config.init_texts]
    if config.init == "seeds":
        return [(f"init:{n}", reference_program(n)) for n in SEED_PROGRAMS]
    if config.init == "noop":
        return [("init:noop", reference_program("noop"))]
    return [("init:random", random_program(np.random.default_rng([config.seed, 2**31 + i])))
            for i in range(config.population)]


# ----------------------------------------------------------------------------- the driver


class Search:
    """One search run over a run store (new or resumed). Call :meth:`run`."""

    def __init__(self, store: RunStore, config: SearchConfig, suite: Suite, *,
                 on_status: Callable[[SearchStatus], None] | None = None,
                 cache: NormalizerCache | None = None) -> None:
        self.store = store
        self.config = config
        self.suite = suite
        self.on_status = on_status or (lambda status: None)
        self.cache = cache or NormalizerCache()
        self.init = initial_programs(config)
        self.status = SearchStatus(phase="starting", budget=config.budget)
        self.backend: Backend | None = None
        self.in_flight: dict[int, Candidate] = {}
        self.waiting: dict[int, list[int]] = {}  # in-flight id -> duplicates of it
        self.normalizer_values: dict[tuple[str, int], tuple[float, float]] = {}

    # -- public

    @classmethod
    def create(cls, run_dir: str | Path, config: SearchConfig, **kwargs: Any) -> Search:
        """A new run in ``run_dir``."""
        suite = get_suite(config.suite)
        store = RunStore.create(run_dir, {"config": config.to_json(),
                                          "suite": suite.to_json(), "kind": "evolve"})
        return cls(store, config, suite, **kwargs)

    @classmethod
    def resume(cls, run_dir: str | Path, **kwargs: Any) -> Search:
        """Continue the run in ``run_dir`` where it stopped."""
        store = RunStore.open(run_dir, for_resume=True)
        meta = store.meta()
        if meta.get("kind") != "evolve":
            raise ValueError(f"{run_dir} is not an evolve run")
        config = SearchConfig.from_json(meta["config"])
        return cls(store, config, Suite.from_json(meta["suite"]), **kwargs)

    def run(self, *, report: bool = True) -> SearchStatus:
        """Evolve until the budget is trained, then (``report``) re-evaluate the best rule
        and the best seed; Ctrl-C stops gracefully (the run resumes)."""
        self.store.set_meta({"state": "running"})
        self.backend = make_backend(self.config.backend, evaluate_job,
                                    workers=self.config.workers,
                                    time_limit=self.suite.time_limit,
                                    address=self.config.address)
        try:
            self._normalizers([t for t in (self.suite.hurdle, *self.suite.tasks) if t])
            self._evolve()
            if report:
                self._report()
        except KeyboardInterrupt:
            self.store.set_meta({"state": "stopped"})
            self._emit("stopped", "stopped by Ctrl-C; resume with --resume "
                       f"{self.store.directory}")
            raise
        finally:
            self.backend.close()
        return self.status

    # -- normalizers

    def _normalizers(self, tasks: Sequence[Task]) -> None:
        """Make sure R_random and R_ppo of every (task, seed) are known (store, cache, or
        measured now on the backend)."""
        known = self.store.normalizers()
        missing: list[tuple[Task, int]] = []
        for task in tasks:
            for seed in task.seeds:
                if (task.label, seed) in known:
                    continue
                cached = (self.cache.get(task, seed, "random"), self.cache.get(task, seed, "ppo"))
                if None not in cached:
                    self.store.set_normalizer(task.label, seed, *cached)  # type: ignore[arg-type]
                else:
                    missing.append((task, seed))
        if missing:
            self._emit("normalizers", f"measuring random and ppo.evz on {len(missing)} "
                       "task seed(s) (cached for later runs)")
            ppo = reference_program_text("ppo")
            payloads = []
            for task, seed in missing:
                one = task.with_seeds([seed])
                payloads.append({"random": one.to_json()})
                payloads.append({"program": ppo, "tasks": [one.to_json()], "hurdle": None})
            outcomes = self._run_all(payloads)
            for i, (task, seed) in enumerate(missing):
                r_out, p_out = outcomes[2 * i], outcomes[2 * i + 1]
                if r_out.error or p_out.error:
                    raise RuntimeError(f"measuring the normalizers of {task.label} seed {seed} "
                                       f"failed: {r_out.error or p_out.error}")
                rand = r_out.result["random"][0]  # type: ignore[index]
                rec = p_out.result["runs"][task.label][0]  # type: ignore[index]
                if rec["status"] != "ok":
                    raise RuntimeError(f"ppo.evz did not train on {task.label} seed {seed}: "
                                       f"{rec['status']} {rec['message']}")
                self.cache.put(task, seed, "random", rand)
                self.cache.put(task, seed, "ppo", rec["final_return"])
                self.store.set_normalizer(task.label, seed, rand, rec["final_return"])
        self.normalizer_values = self.store.normalizers()

    def normalizer_lists(self, task: Task) -> tuple[list[float], list[float]]:
        """``(random, ppo)`` per seed of ``task``."""
        pairs = [self.normalizer_values[(task.label, s)] for s in task.seeds]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def _run_all(self, payloads: Sequence[dict[str, Any]]) -> list[Outcome]:
        """Run jobs on the backend (bounded in flight); outcomes in payload order."""
        assert self.backend is not None
        outcomes: dict[int, Outcome] = {}
        pending = list(enumerate(payloads))[::-1]
        running = 0
        while len(outcomes) < len(payloads):
            while pending and running < self.backend.slots:
                job_id, payload = pending.pop()
                self.backend.submit(job_id, payload)
                running += 1
            for out in self.backend.wait(timeout=0.5):
                outcomes[out.job_id] = out
                running -= 1
            self._emit(self.status.phase)
        return [outcomes[i] for i in range(len(payloads))]

    # -- evolution

    def _payload(self, text: str) -> dict[str, Any]:
        hurdle = None
        if self.suite.hurdle is not None:
            rand, ppo = self.normalizer_lists(self.suite.hurdle)
            hurdle = {"task": self.suite.hurdle.to_json(),
                      "threshold": self.suite.hurdle_threshold, "random": rand, "ppo": ppo}
        return {"program": text, "tasks": [t.to_json() for t in self.suite.tasks],
                "hurdle": hurdle}

    def _counts(self) -> None:
        s = self.status
        done = self.store.count(f"status IN {TRAINED}")
        s.trained = done
        s.duplicates = self.store.count("status = 'duplicate'")
        s.failed = self.store.count("status IN ('diverged', 'error')")
        s.culled = self.store.count("status = 'culled'")
        s.in_flight = len(self.in_flight)
        top = top_candidates(self.store, 1)
        s.best = top[0] if top else None
        s.hall_of_fame = hall_of_fame(self.store)

    def _evolve(self) -> None:
        assert self.backend is not None
        self.status.phase = "search"
        self._counts()
        meta = self.store.meta()
        spent = float(meta.get("search_seconds", 0.0))
        t0 = time.time()
        streak = 0
        # Candidates that were in flight when the run stopped go first.
        unfinished = deque(self.store.candidates("status = 'running'"))
        while True:
            self.status.search_seconds = spent + time.time() - t0
            trained_or_running = self.status.trained + len(self.in_flight)
            while (trained_or_running < self.config.budget and streak < MAX_DUPLICATE_STREAK
                   and len(self.in_flight) < self.backend.slots):
                candidate = unfinished.popleft() if unfinished else self._propose()
                if candidate is None:
                    break  # nothing to breed from until a result arrives
                if self._dispatch(candidate):
                    trained_or_running += 1
                    streak = 0
                else:
                    streak += 1
            if streak >= MAX_DUPLICATE_STREAK:
                self._emit("search", f"stalled: {streak} proposals in a row were duplicates; "
                           "stopping early")
            if not self.in_flight:
                break
            for outcome in self.backend.wait(timeout=0.5):
                self._finish(outcome)
            self.store.set_meta({"search_seconds": spent + time.time() - t0})
            self._counts()
            self._emit("search")
        self.status.search_seconds = spent + time.time() - t0
        self.store.set_meta({"search_seconds": self.status.search_seconds,
                             "state": "searched"})
        self._counts()
        self._emit("search", "budget reached")

    def _propose(self) -> Candidate | None:
        """Record the next candidate (an initial program or a mutant) as ``running``."""
        i = self.store.next_id()
        parent: Candidate | None = None
        mutation = None
        if i < len(self.init):
            origin, program = self.init[i]
        else:
            population = self.store.population(self.config.population)
            if not population:
                return None
            rng = np.random.default_rng([self.config.seed, i])
            parent = tournament_select(population, self.config.tournament, rng)
            program, m = mutate(dsl.parse(parent.text, filename=f"candidate {parent.id}"), rng)
            origin, mutation = "mutation", str(m)
        self.store.add_candidate(
            id=i, origin=origin, parent=parent.id if parent else None, mutation=mutation,
            text=dsl.to_text(program), key=canonical_key(program),
            fingerprint=fingerprint(program), complexity=program.complexity())
        return self.store.candidate(i)

    def _dispatch(self, c: Candidate) -> bool:
        """Train ``c``, or settle it as a duplicate; True if it was submitted."""
        assert self.backend is not None
        hit = next((o for o in self.store.by_key(c.key, c.fingerprint) if same_keys(c, o)), None)
        if hit is not None:
            self._settle_duplicate(c.id, hit)
            return False
        for other in self.in_flight.values():
            if same_keys(c, other):
                self.waiting.setdefault(other.id, []).append(c.id)
                return False
        self.backend.submit(c.id, self._payload(c.text))
        self.in_flight[c.id] = c
        return True

    def _settle_duplicate(self, id: int, original: Candidate) -> None:
        self.store.finish_candidate(
            id, status="duplicate", fitness=original.fitness,
            hurdle_score=original.hurdle_score, scores=original.scores,
            duplicate_of=original.id, seconds=0.0,
            message=f"same rule as candidate {original.id}")

    def _finish(self, outcome: Outcome) -> None:
        c = self.in_flight.pop(outcome.job_id)
        result = self.evaluate_outcome(outcome)
        self.store.finish_candidate(c.id, seconds=outcome.seconds, **result)
        for dup in self.waiting.pop(c.id, []):
            self._settle_duplicate(dup, self.store.candidate(c.id))

    def evaluate_outcome(self, outcome: Outcome) -> dict[str, Any]:
        """Status, fitness, scores and runs of a candidate from its worker's outcome."""
        if outcome.error is not None:
            return {"status": "error", "fitness": None, "message": outcome.error}
        res = outcome.result or {}
        runs = [("hurdle", r) for r in res.get("hurdle") or []]
        for records in res.get("runs", {}).values():
            runs += [("search", r) for r in records]
        failed = next((r for _, r in runs if r["status"] != "ok"), None)
        if failed is not None:
            return {"status": "diverged" if failed["status"] == "diverged" else "error",
                    "fitness": None, "hurdle_score": res.get("hurdle_score"),
                    "message": f"{failed['task']} seed {failed['seed']}: "
                               f"{failed['status']} {failed['message']}".strip(),
                    "runs": runs}
        if not res.get("passed", False):
            return {"status": "culled", "fitness": res.get("hurdle_score"),
                    "hurdle_score": res.get("hurdle_score"), "runs": runs,
                    "message": f"below the hurdle ({self.suite.hurdle_threshold:g})"}
        scores = {}
        for task in self.suite.tasks:
            rand, ppo = self.normalizer_lists(task)
            scores[task.label] = task_score(res["runs"][task.label], rand, ppo)
        values = [s for s in scores.values() if s is not None]
        return {"status": "ok", "fitness": float(np.mean(values)) if values else None,
                "hurdle_score": res.get("hurdle_score"), "scores": scores, "runs": runs}

    # -- the final report

    def report_subjects(self) -> list[Candidate]:
        """The best rule, then the best initial program (one entry if they coincide)."""
        best = top_candidates(self.store, 1)
        seeds = self.store.candidates("origin LIKE 'init:%' AND done_seq IS NOT NULL",
                                      order="fitness IS NULL, fitness DESC, id")
        subjects = best[:1]
        if seeds and (not subjects or seeds[0].key != subjects[0].key):
            subjects.append(seeds[0])
        return subjects

    def _report(self) -> None:
        """Re-evaluate the best rule and the best seed on fresh seeds and held-out tasks."""
        subjects = self.report_subjects()
        if not subjects:
            self.store.set_meta({"state": "finished", "report": None})
            self._emit("finished", "no candidate finished: nothing to report")
            return
        train_tasks, heldout = self.suite.report_tasks()
        tasks = [*train_tasks, *heldout]
        self._emit("report", f"re-evaluating {len(subjects)} program(s) on "
                   f"{self.suite.report_seeds} fresh seeds")
        self._normalizers(tasks)
        jobs: list[tuple[int, Task]] = []
        for c in subjects:
            done = {(r["task"], r["seed"]) for r in self.store.runs(c.id, "report")}
            jobs += [(c.id, t.with_seeds([s])) for t in tasks for s in t.seeds
                     if (t.label, s) not in done]
        texts = {c.id: c.text for c in subjects}
        outcomes = self._run_all([
            {"program": texts[cid], "tasks": [t.to_json()], "hurdle": None} for cid, t in jobs])
        for (cid, task), out in zip(jobs, outcomes, strict=True):
            if out.error is not None:
                records = [{"task": task.label, "seed": s, "status": "error",
                            "message": out.error, "final_return": None, "auc": None,
                            "steps": 0, "seconds": out.seconds, "curve": []}
                           for s in task.seeds]
            else:
                records = out.result["runs"][task.label]  # type: ignore[index]
            self.store.add_runs(cid, [("report", r) for r in records])
        roles = ["best rule", "best seed"]
        report = summarize(
            [{"role": roles[i], "id": c.id, "origin": c.origin, "fitness": c.fitness,
              "complexity": c.complexity} for i, c in enumerate(subjects)],
            {c.id: self.store.runs(c.id, "report") for c in subjects},
            train_tasks, heldout, self.store.normalizers())
        self.store.set_meta({"state": "finished", "report": report})
        self._emit("finished", report["comparison"]["text"])

    def _emit(self, phase: str, message: str = "") -> None:
        self.status.phase = phase
        if message:
            self.status.message = message
        self.on_status(replace(self.status))
