"""The search driver: regularized evolution over update rules, trained on a backend and
recorded in a run store.

The algorithm is :class:`~evozero.search.evolution.RegularizedEvolution` with
asynchronous successive halving over the suite's rungs; this layer feeds it. It measures
the normalizers every rung needs, trains each candidate the evolution submits as one
worker job (at rung 0 the hurdle, then rung 0's tasks; a promotion trains the next rung's
tasks: see :mod:`~evozero.search.protocol`) and scores the reply
(:func:`fitness.candidate_result`),
records every proposal and result in the run store as it happens (so a stopped run,
``kill -9`` included, resumes exactly where it stood), and at the end re-evaluates the
best rule and the best initial program for the final report
(:mod:`~evozero.search.report`). Only the driver writes to the store.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from evozero.program import dsl
from evozero.program.canon import canonical_key, duplicate_keys, fingerprint
from evozero.program.model import Program
from evozero.program.mutate import mutate
from evozero.search.backends import Backend, Outcome, make_backend
from evozero.search.config import SearchConfig, initial_programs
from evozero.search.evolution import Individual, Journal, RegularizedEvolution, proposal_rng
from evozero.search.fitness import (
    NormalizerCache,
    candidate_result,
    evaluate_job,
    normalizer_lists,
    reference_program_text,
)
from evozero.search.protocol import (
    CandidateResult,
    Hurdle,
    Job,
    JobResult,
    ProtocolError,
    RandomJob,
    RandomResult,
)
from evozero.search.report import (
    final_report,
    hall_of_fame,
    pending_jobs,
    record_runs,
    report_subjects,
)
from evozero.search.store import (
    REFINE_ORIGIN,
    Candidate,
    DamagedCandidate,
    RunStore,
    RunStoreDamaged,
    RunStoreError,
    damaged,
)
from evozero.search.tasks import Suite, Task, get_suite
from evozero.status import FAILED, TRAINED, Status


@dataclass(frozen=True)
class Rule:
    """The genome of the search: an update rule's text and what identifies it."""

    text: str
    key: str
    fingerprint: str
    complexity: int

    @classmethod
    def of(cls, program: Program) -> Rule:
        return cls(
            dsl.to_text(program), canonical_key(program), fingerprint(program), program.complexity()
        )

    def keys(self) -> tuple[tuple[str, str], ...]:
        """What this rule is known by once trained (:func:`~evozero.program.canon.same_keys`
        decides duplicates: same canonical key, or same fingerprint where sympy gave up)."""
        return duplicate_keys(self)[0]

    def probes(self) -> tuple[tuple[str, str], ...]:
        """What this rule is looked up by among the trained ones."""
        return duplicate_keys(self)[1]


def mutate_rule(rule: Rule, rng: np.random.Generator) -> tuple[Rule, str]:
    """A random mutation of ``rule`` and its description."""
    program, mutation = mutate(dsl.parse(rule.text, filename="<parent>"), rng)
    return Rule.of(program), str(mutation)


#: A backend job id is ``candidate id << RUNG_BITS | rung`` (a candidate is trained at
#: each rung at most once).
RUNG_BITS = 4


def individual(
    c: Candidate, ladder: dict[int, tuple[Status, float | None]] | None = None
) -> Individual[Rule]:
    """A stored candidate (with its results per rung) as the evolution sees it."""
    return Individual(
        c.id,
        Rule(c.text, c.key, c.fingerprint, c.complexity),
        c.origin,
        c.parent,
        c.mutation,
        c.status,
        c.fitness,
        c.duplicate_of,
        c.rung,
        dict(ladder or {}),
    )


def _refined(c: Candidate) -> bool:
    """Whether ``c`` is a refined child (made after the search, outside its evolution)."""
    return c.origin.startswith(REFINE_ORIGIN)


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
    #: per rung: ``rung``, ``steps`` (its largest task budget), ``evaluated``,
    #: ``in_flight`` and ``best`` (fitness of the best ``ok`` one there)
    rungs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def evals_per_hour(self) -> float:
        return 3600 * self.trained / self.search_seconds if self.search_seconds > 0 else 0.0


class Search(Journal[Rule, CandidateResult]):
    """One search run over a run store (new or resumed). Call :meth:`run`.

    To its :class:`RegularizedEvolution` it is both the evaluator (:meth:`submit`,
    :meth:`wait`: the backend) and the journal (:meth:`proposed`, :meth:`evaluated`,
    :meth:`duplicate`: the run store).
    """

    def __init__(
        self,
        store: RunStore,
        config: SearchConfig,
        suite: Suite,
        *,
        on_status: Callable[[SearchStatus], None] | None = None,
        cache: NormalizerCache | None = None,
        after_search: Callable[[Search], None] | None = None,
    ) -> None:
        self.store = store
        #: Runs between the search phase and the report: the refinement stage of
        #: ``refine_top`` (:func:`evozero.refine.stage.refine_top`; refine sits above
        #: search, so its caller passes it in). It must skip the work a stopped session
        #: finished, since a resume calls it again.
        self.after_search = after_search
        self.config = config
        self.suite = suite
        self.on_status = on_status or (lambda status: None)
        self.cache = cache or NormalizerCache()
        self.init = initial_programs(config)
        self.status = SearchStatus(phase="starting", budget=config.budget)
        self.backend: Backend | None = None
        self.evolution: RegularizedEvolution[Rule, CandidateResult] | None = None
        self.normalizer_values: dict[tuple[str, int], tuple[float, float]] = {}
        self._requeued: list[tuple[int, int]] = []  # promotions a stopped session left
        self._clock = (0.0, 0.0)  # (search seconds of earlier sessions, this one's start)

    # -- public

    @classmethod
    def create(cls, run_dir: str | Path, config: SearchConfig, **kwargs: Any) -> Search:
        """A new run in ``run_dir`` (its suite: a built-in name or a suite file, read now
        and stored with the run)."""
        suite = get_suite(config.suite)
        store = RunStore.create(
            run_dir, {"config": config.to_json(), "suite": suite.to_json(), "kind": "evolve"}
        )
        return cls(store, config, suite, **kwargs)

    @classmethod
    def resume(cls, run_dir: str | Path, **kwargs: Any) -> Search:
        """Continue the run in ``run_dir`` where it stopped.

        Raises RunStoreError, before anything is written, if it cannot be: another process
        writes it, it is read-only or damaged, or another evozero made it.
        """
        try:
            store = RunStore.open(run_dir, writer="resume")
            try:
                meta = store.meta()
                if meta.get("kind") != "evolve":
                    raise RunStoreError(f"{run_dir} is not an evolve run")
                try:
                    search = cls(
                        store,
                        SearchConfig.from_json(meta["config"]),
                        Suite.from_json(meta["suite"]),
                        **kwargs,
                    )
                except (KeyError, TypeError, ValueError) as e:  # ProgramError included
                    raise damaged(store.db, f"its search settings do not decode: {e}") from None
                search._check_programs()
            except BaseException:
                store.close()
                raise
        except DamagedCandidate as e:
            raise RunStoreDamaged(
                f"{e}; a run with a damaged candidate is not resumed: "
                "restore its run.sqlite from a backup, or start a new "
                "run"
            ) from None
        return search

    def _check_programs(self) -> None:
        """The stored programs a resume reads parse (DamagedCandidate if one does not): the
        population's (the parents of what comes next), the queued candidates', and the final
        report's subjects'."""
        population = self.store.finished()[-self.config.population :]
        subjects = [c for _, c in report_subjects(self.store)]
        for c in (*population, *self.store.unfinished(), *subjects):
            self.store.program(c)

    def change(self, **changes: Any) -> str | None:
        """Changes a resumed run's ``budget``, ``max_time``, ``workers``, ``backend``,
        ``device``, ``address`` or ``refine_*`` settings and records them; returns the
        line that says what the budget means for this run, when it changes. The budget counts the
        search's trained candidates over the whole run (refined children are not); one
        below the number already trained becomes that number."""
        note = None
        if "budget" in changes:
            trained = self.store.count(*TRAINED)
            more = changes["budget"] - trained
            changes["budget"] = max(changes["budget"], trained)
            note = "--budget is the total number of trained candidates; this run " + (
                f"already has {trained}, so nothing more is trained"
                if more <= 0
                else f"has {trained}, so {more} more will be trained"
            )
        self.config = replace(self.config, **changes)
        self.status.budget = self.config.budget
        self.store.set_meta({"config": self.config.to_json()})
        return note

    def run(self, *, report: bool = True) -> SearchStatus:
        """Evolve until the budget is trained, then (``report``) re-evaluate the best rule
        and the best seed; Ctrl-C stops gracefully (the run resumes)."""
        if self.config.refine_top and self.after_search is None:
            raise RuntimeError(
                "this run refines its best rules after the search (refine_top); pass "
                "after_search=evozero.refine.stage.refine_top, as `evozero evolve` does"
            )
        self.store.set_meta({"state": "running"})
        self.store.requeue()  # the candidates a killed session left running
        try:  # Ctrl-C while the workers start is a stop too
            self._open_backend()
            self._normalizers([t for t in (self.suite.hurdle, *self._rung_tasks()) if t])
            self._evolve()
            if self.after_search is not None and self.config.refine_top:
                # The stage runs its own workers (a Ray cluster's CPUs are the search's
                # actors' otherwise); the report gets fresh ones.
                assert self.backend is not None
                self.backend.close()
                self.after_search(self)
                self._open_backend()
            if report:
                self._report()
        except BaseException as e:
            # The candidates in flight are queued: a resume trains them first. A store
            # error here is not the one to report (the one that stopped the run is).
            with contextlib.suppress(RunStoreError):
                self.store.requeue()
                self.store.set_meta({"state": "stopped"})
            if isinstance(e, KeyboardInterrupt):
                self._emit(
                    "stopped", f"stopped by Ctrl-C; resume with --resume {self.store.directory}"
                )
            raise
        finally:
            if self.backend is not None:
                self.backend.close()
        return self.status

    def _open_backend(self) -> None:
        self.backend = make_backend(
            self.config.backend,
            evaluate_job,
            workers=self.config.workers,
            time_limit=self.suite.time_limit,
            address=self.config.address,
            device=self.config.device,
        )

    def result_of(self, outcome: Outcome, rung: int = 0) -> CandidateResult:
        """A candidate's verdict at ``rung`` from its worker's outcome; a failed job is an
        ``error``."""
        if outcome.error is None:
            try:
                return candidate_result(
                    JobResult.from_json(outcome.result),
                    self.suite,
                    self.normalizer_values,
                    outcome.seconds,
                    self.suite.rungs[rung],
                )
            except ProtocolError as e:
                outcome = replace(outcome, error=f"malformed reply from the worker: {e}")
        return CandidateResult(
            Status.ERROR, None, message=outcome.error or "", seconds=outcome.seconds
        )

    # -- the evolution

    def _evolve(self) -> None:
        self.evolution = RegularizedEvolution(
            [(origin, Rule.of(program)) for origin, program in self.init],
            mutate_rule,
            population_size=self.config.population,
            tournament_size=self.config.tournament,
            rng=proposal_rng(self.config.seed),
            keys=Rule.keys,
            probes=Rule.probes,
            journal=self,
            rungs=len(self.suite.rungs),
            promote=self.suite.promote,
        )
        ladders = self.store.ladders()
        # Refined children were made after a search phase, outside the evolution: not in
        # its population, queue, promotions or budget (the refinement stage trains them),
        # but their ids are taken.
        finished, unfinished = self.store.finished(), self.store.unfinished()
        children = {c.id for c in (*finished, *unfinished) if _refined(c)}
        self._requeued = [
            (id, rung) for id, rung in self.store.unfinished_promotions() if id not in children
        ]
        next_id = 1 + max((c.id for c in (*finished, *unfinished)), default=-1)
        self.evolution.restore(
            (individual(c, ladders.get(c.id)) for c in finished if not _refined(c)),
            (individual(c) for c in unfinished if not _refined(c)),
            self._requeued,
            taken=next_id,
        )
        self.status.phase = "search"
        self._clock = (float(self.store.meta().get("search_seconds", 0.0)), time.time())
        self._counts()
        self.evolution.run(self, self.config.budget, stop=self._out_of_time)
        self._tick()
        if self.evolution.stalled:
            self._emit("search", self._stall_message())
        self.store.set_meta({"state": "searched"})
        self._emit(
            "search",
            f"--max-time ({self.config.max_time:g} s) reached"
            if self._out_of_time()
            else "budget reached",
        )

    def _out_of_time(self) -> bool:
        """Whether the search has run ``--max-time`` seconds (over all its sessions)."""
        if self.config.max_time is None:
            return False
        spent, start = self._clock
        return spent + time.time() - start >= self.config.max_time

    def _rung_tasks(self) -> list[Task]:
        return [t for rung in self.suite.rungs for t in rung]

    @property
    def slots(self) -> int:
        """Candidates trained at once (the evaluator's slots)."""
        assert self.backend is not None
        return self.backend.slots

    def submit(self, individual: Individual[Rule], rung: int) -> None:
        """Starts training a candidate at ``rung`` on the backend."""
        assert self.backend is not None
        if rung == 0 and individual.status is Status.QUEUED:  # from a stopped session
            self.store.dispatch(individual.id)
            individual.status = Status.RUNNING
        if (individual.id, rung) in self._requeued:  # a promotion of a stopped session
            self._requeued.remove((individual.id, rung))
            self.store.dispatch(individual.id, rung)
        job = self._job(individual.genome.text, rung)
        self.backend.submit(individual.id << RUNG_BITS | rung, job.to_json())

    def wait(self) -> list[tuple[int, CandidateResult]]:
        """Records the progress, then waits up to half a second for trained candidates."""
        assert self.backend is not None and self.evolution is not None
        self._tick()
        self._emit("search", self._stall_message() if self.evolution.stalled else "")
        mask = (1 << RUNG_BITS) - 1
        return [
            (out.job_id >> RUNG_BITS, self.result_of(out, out.job_id & mask))
            for out in self.backend.wait(timeout=0.5)
        ]

    def proposed(self, child: Individual[Rule]) -> None:
        """Records a proposed candidate (``running``)."""
        rule = child.genome
        self.store.add_candidate(
            id=child.id,
            origin=child.origin,
            parent=child.parent,
            mutation=child.mutation,
            text=rule.text,
            key=rule.key,
            fingerprint=rule.fingerprint,
            complexity=rule.complexity,
        )

    def evaluated(self, individual: Individual[Rule], result: CandidateResult) -> None:
        """Records a trained candidate's result and runs."""
        self.store.finish_candidate(individual.id, result)

    def duplicate(self, child: Individual[Rule], original: Individual[Rule]) -> None:
        """Records a duplicate: it inherits ``original``'s result."""
        self.store.finish_duplicate(child.id, original.id)

    def promoted(self, individual: Individual[Rule], rung: int) -> None:
        """Records a promotion (the candidate trains at ``rung`` next)."""
        self.store.promote(individual.id, rung)

    def rung_evaluated(
        self, individual: Individual[Rule], rung: int, result: CandidateResult
    ) -> None:
        """Records a promoted candidate's result at ``rung`` and its runs."""
        self.store.finish_rung(individual.id, rung, result)

    def _job(self, text: str, rung: int = 0) -> Job:
        if rung:
            return Job(text, self.suite.rungs[rung], None)
        hurdle = None
        if self.suite.hurdle is not None:
            rand, ppo = normalizer_lists(self.normalizer_values, self.suite.hurdle)
            hurdle = Hurdle(self.suite.hurdle, self.suite.hurdle_threshold, tuple(rand), tuple(ppo))
        return Job(text, self.suite.tasks, hurdle)

    def _stall_message(self) -> str:
        assert self.evolution is not None
        return (
            f"stalled: {self.evolution.streak} proposals in a row were duplicates; stopping early"
        )

    def _tick(self) -> None:
        """Records the search time so far and refreshes the counts."""
        spent, start = self._clock
        self.status.search_seconds = spent + time.time() - start
        self.store.set_meta({"search_seconds": self.status.search_seconds})
        self._counts()

    def _counts(self) -> None:
        s = self.status
        counts = self.store.count_by_status()
        s.trained = sum(counts[status] for status in TRAINED)
        s.duplicates = counts[Status.DUPLICATE]
        s.failed = sum(counts[status] for status in FAILED)
        s.culled = counts[Status.CULLED]
        s.in_flight = len(self.evolution.in_flight) if self.evolution else 0
        best = self.store.best(1)
        s.best = best[0] if best else None
        s.hall_of_fame = hall_of_fame(self.store)
        stored = {r["rung"]: r for r in self.store.rung_summary()}
        flying = self.evolution.in_flight_rung.values() if self.evolution else ()
        s.rungs = [
            {
                "rung": k,
                "steps": max(t.steps for t in tasks),
                "evaluated": stored.get(k, {}).get("evaluated", 0),
                "in_flight": sum(1 for r in flying if r == k),
                "best": stored.get(k, {}).get("best"),
            }
            for k, tasks in enumerate(self.suite.rungs)
        ]

    # -- jobs outside the evolution: normalizers and the final report

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
            self._emit(
                "normalizers",
                f"measuring random and ppo.evz on {len(missing)} "
                "task seed(s) (cached for later runs)",
            )
            ppo = reference_program_text("ppo")
            jobs: list[Job | RandomJob] = []
            for task, seed in missing:
                one = task.with_seeds([seed])
                jobs += [RandomJob(one), Job(ppo, (one,))]
            outcomes = self._run_all(jobs)
            for i, (task, seed) in enumerate(missing):
                r_out, p_out = outcomes[2 * i], outcomes[2 * i + 1]
                if r_out.error or p_out.error:
                    raise RuntimeError(
                        f"measuring the normalizers of {task.label} seed {seed} "
                        f"failed: {r_out.error or p_out.error}"
                    )
                rand = RandomResult.from_json(r_out.result).returns[0]
                rec = JobResult.from_json(p_out.result).runs[task.label][0]
                if rec.status != Status.OK or rec.final_return is None:
                    raise RuntimeError(
                        f"ppo.evz did not train on {task.label} seed {seed}: "
                        f"{rec.status} {rec.message}"
                    )
                self.cache.put(task, seed, "random", rand)
                self.cache.put(task, seed, "ppo", rec.final_return)
                self.store.set_normalizer(task.label, seed, rand, rec.final_return)
        self.normalizer_values = self.store.normalizers()

    def _run_all(self, jobs: Sequence[Job | RandomJob]) -> list[Outcome]:
        """Run jobs on the backend (bounded in flight); outcomes in job order."""
        assert self.backend is not None
        outcomes: dict[int, Outcome] = {}
        pending = list(enumerate(jobs))[::-1]
        running = 0
        while len(outcomes) < len(jobs):
            while pending and running < self.backend.slots:
                job_id, job = pending.pop()
                self.backend.submit(job_id, job.to_json())
                running += 1
            for out in self.backend.wait(timeout=0.5):
                outcomes[out.job_id] = out
                running -= 1
            self._emit(self.status.phase)
        return [outcomes[i] for i in range(len(jobs))]

    def _report(self) -> None:
        """Re-evaluate the best rule and the best seed on fresh seeds and held-out tasks
        (:mod:`~evozero.search.report`)."""
        subjects = report_subjects(self.store)
        if not subjects:
            self.store.set_meta({"state": "finished", "report": None})
            self._emit("finished", "no candidate finished: nothing to report")
            return
        train_tasks, heldout = self.suite.report_tasks()
        tasks = [*train_tasks, *heldout]
        self._emit(
            "report",
            f"re-evaluating {len(subjects)} program(s) on {self.suite.report_seeds} fresh seeds",
        )
        self._normalizers(tasks)
        jobs = pending_jobs(self.store, subjects, tasks)
        record_runs(self.store, jobs, self._run_all([job for _, job in jobs]))
        report = final_report(self.store, subjects, train_tasks, heldout)
        self.store.set_meta({"state": "finished", "report": report})
        self._emit("finished", report["comparison"]["text"])

    def emit(self, phase: str, message: str = "") -> None:
        """Shows ``phase`` (and ``message``) on the live status (for a stage that runs
        within the search: ``after_search``)."""
        self._emit(phase, message)

    def _emit(self, phase: str, message: str = "") -> None:
        self.status.phase = phase
        if message:
            self.status.message = message
        self.on_status(replace(self.status))
