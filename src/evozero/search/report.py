"""What a search found: its hall of fame, and the final report.

The hall of fame is the Pareto front of fitness against complexity over the candidates
that passed the full suite.

For the final report, the best rule and the best initial program are trained again on
fresh seeds, on the suite's tasks and on held-out tasks. Scores are normalized per seed
(random 0, ppo.evz 1, both measured on that same seed), averaged over tasks, and
summarized over seeds with a 95% bootstrap confidence interval. Whether the search
improved on its seeds is decided on the paired per-seed differences: improved when the
whole interval is above 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evozero.search.backends import Outcome
from evozero.search.fitness import normalized
from evozero.search.protocol import Job, JobResult, Phase, RunRecord
from evozero.search.store import Candidate, RunStore
from evozero.search.tasks import Task
from evozero.status import Status

#: Bootstrap resamples behind each confidence interval.
BOOTSTRAP_SAMPLES = 10_000
LEVEL = 0.95
#: The final report's subjects, in order (see :func:`report_subjects`).
ROLES = ("best rule", "best seed")


def hall_of_fame(store: RunStore) -> list[Candidate]:
    """The Pareto front of fitness vs complexity: the best rule of each complexity that
    no simpler rule beats, over every candidate that passed the full suite; fittest first."""
    front: list[Candidate] = []
    for c in store.passed_by_complexity():
        if not front or c.rank > front[-1].rank:  # highest rung, then fitness
            if front and front[-1].complexity == c.complexity:
                continue
            front.append(c)
    return front[::-1]


def report_subjects(store: RunStore) -> list[tuple[str, Candidate]]:
    """``(role, candidate)`` of the programs the final report re-evaluates: the best rule,
    then the best initial program (one entry if they are the same rule)."""
    best = store.best(1)
    seed = store.best_initial()
    subjects = best[:1]
    if seed is not None and (not subjects or seed.key != subjects[0].key):
        subjects.append(seed)
    return list(zip(ROLES, subjects, strict=False))


def pending_jobs(
    store: RunStore, subjects: Sequence[tuple[str, Candidate]], tasks: Sequence[Task]
) -> list[tuple[int, Job]]:
    """``(candidate id, job)`` of the re-evaluations still to run: one per subject, task
    and seed not recorded yet (so a report stopped midway carries on)."""
    jobs = []
    for _, c in subjects:
        done = {(r.task, r.seed) for r in store.runs(c.id, Phase.REPORT)}
        jobs += [
            (c.id, Job(c.text, (t.with_seeds([s]),)))
            for t in tasks
            for s in t.seeds
            if (t.label, s) not in done
        ]
    return jobs


def record_runs(
    store: RunStore, jobs: Sequence[tuple[int, Job]], outcomes: Sequence[Outcome]
) -> None:
    """Record the outcomes of :func:`pending_jobs`; a failed job fails its runs."""
    for (cid, job), out in zip(jobs, outcomes, strict=True):
        (task,) = job.tasks
        if out.error is not None:
            records: Sequence[RunRecord] = [
                RunRecord.failed(task, s, out.error, out.seconds) for s in task.seeds
            ]
        else:
            records = JobResult.from_json(out.result).runs[task.label]
        store.add_runs(cid, [(Phase.REPORT, r) for r in records])


def final_report(
    store: RunStore,
    subjects: Sequence[tuple[str, Candidate]],
    train_tasks: Sequence[Task],
    heldout_tasks: Sequence[Task],
) -> dict[str, Any]:
    """The report (:func:`summarize`) of the subjects' recorded re-evaluations."""
    return summarize(
        [
            {
                "role": role,
                "id": c.id,
                "origin": c.origin,
                "fitness": c.fitness,
                "complexity": c.complexity,
            }
            for role, c in subjects
        ],
        {c.id: store.runs(c.id, Phase.REPORT) for _, c in subjects},
        train_tasks,
        heldout_tasks,
        store.normalizers(),
    )


def bootstrap_ci(
    values: Sequence[float], level: float = LEVEL, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (deterministic: fixed resampling seed)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (float("nan"), float("nan"))
    if x.size == 1:
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(samples, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean, 95% interval and the values behind them."""
    lo, hi = bootstrap_ci(values)
    return {
        "mean": float(np.mean(values)) if len(values) else float("nan"),
        "lo": lo,
        "hi": hi,
        "n": len(values),
        "values": [float(v) for v in values],
    }


def per_seed_scores(
    runs: Sequence[RunRecord],
    tasks: Sequence[Task],
    normalizers: Mapping[tuple[str, int], tuple[float, float]],
) -> tuple[list[float], dict[str, float | None], list[str]]:
    """Per-seed score (mean normalized score over ``tasks``), per-task mean scores, and
    the failures (a seed is left out when one of its runs did not finish ``ok``)."""
    by = {(r.task, r.seed): r for r in runs}
    seeds = tasks[0].seeds if tasks else ()
    per_seed: list[float] = []
    per_task: dict[str, list[float]] = {t.label: [] for t in tasks}
    failures: list[str] = []
    for seed in seeds:
        scores = []
        for task in tasks:
            run = by.get((task.label, seed))
            if run is None or run.status != Status.OK or run.final_return is None:
                why = "missing" if run is None else f"{run.status} {run.message}".strip()
                failures.append(f"{task.label} seed {seed}: {why}")
                continue
            rand, ppo = normalizers[(task.label, seed)]
            s = normalized(run.final_return, rand, ppo)
            per_task[task.label].append(s)
            scores.append(s)
        if len(scores) == len(tasks):
            per_seed.append(float(np.mean(scores)))
    return per_seed, {k: float(np.mean(v)) if v else None for k, v in per_task.items()}, failures


def summarize(
    subjects: Sequence[Mapping[str, Any]],
    runs: Mapping[int, Sequence[RunRecord]],
    train_tasks: Sequence[Task],
    heldout_tasks: Sequence[Task],
    normalizers: Mapping[tuple[str, int], tuple[float, float]],
) -> dict[str, Any]:
    """The report: per subject (``{"role", "id", ...}``) train and held-out intervals and
    the generalization gap; then the paired comparison of the first two subjects."""
    out: dict[str, Any] = {
        "train_tasks": [t.label for t in train_tasks],
        "heldout_tasks": [t.label for t in heldout_tasks],
        "seeds": list(train_tasks[0].seeds) if train_tasks else [],
        "level": LEVEL,
        "subjects": [],
    }
    per_seed: dict[int, list[float]] = {}
    for subject in subjects:
        cid = subject["id"]
        train, train_tasks_scores, f1 = per_seed_scores(runs[cid], train_tasks, normalizers)
        held, held_tasks_scores, f2 = per_seed_scores(runs[cid], heldout_tasks, normalizers)
        entry = dict(subject)
        entry["train"] = interval(train)
        entry["heldout"] = interval(held) if heldout_tasks else None
        entry["task_scores"] = {**train_tasks_scores, **held_tasks_scores}
        entry["failures"] = f1 + f2
        if heldout_tasks and len(train) == len(held) and train:
            entry["gap"] = interval([a - b for a, b in zip(train, held, strict=True)])
        else:
            entry["gap"] = None
        out["subjects"].append(entry)
        per_seed[cid] = train
    out["comparison"] = _compare(subjects, per_seed)
    return out


def _compare(
    subjects: Sequence[Mapping[str, Any]], per_seed: Mapping[int, list[float]]
) -> dict[str, Any]:
    if len(subjects) < 2:
        return {
            "verdict": "same program",
            "text": "the best rule is the best initial program: the search did not "
            "improve on its seeds",
        }
    best, seed = per_seed[subjects[0]["id"]], per_seed[subjects[1]["id"]]
    if not best or len(best) != len(seed):
        return {
            "verdict": "undecided",
            "text": "a re-evaluation run failed, so the two cannot be compared seed by seed",
        }
    diff = interval([a - b for a, b in zip(best, seed, strict=True)])
    if diff["lo"] > 0:
        verdict, text = "improved", "the search improved on its seeds"
    elif diff["hi"] < 0:
        verdict, text = (
            "worse",
            "the best rule scores below the best seed on fresh seeds "
            "(its search fitness did not hold up)",
        )
    else:
        verdict, text = (
            "not significant",
            "no significant difference from the best seed on fresh seeds",
        )
    return {"verdict": verdict, "text": text, "difference": diff}
