"""What a search found: its hall of fame, and the final report.

The hall of fame is the Pareto front of fitness against complexity over the candidates
that passed the full suite.

For the final report, the top rules and the best initial program are trained again on
fresh seeds, at the budget of :meth:`Suite.report_tasks` (the suite's target budget), on
the suite's tasks and on held-out tasks, and compared with ``ppo.evz`` trained on the same
tasks and seeds. Per task: the raw return (mean and 95% interval), the normalized score
(random 0, ppo.evz 1, both averaged over the report seeds) and the paired per-seed
difference in return from ppo.evz. Over tasks: the interquartile mean (IQM) of normalized
scores and the probability of improvement over ppo.evz, with stratified bootstrap
intervals (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice", via
the ``rliable`` package).

The verdict on a rule (:func:`verdict`): ``improved`` only when the interval of its
probability of improvement on the training tasks lies above 0.5 and no task, training or
held out, shows a significant loss (the interval of the paired difference in mean return
lies below 0); ``lost`` names the tasks where it lost; otherwise ``not improved``, or
``undecided`` when a re-evaluation run failed. Every verdict names the budget and the
seeds it was measured at.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from evozero.native.train import TrainConfig
from evozero.search.backends import Outcome
from evozero.search.fitness import normalized
from evozero.search.protocol import Job, JobResult, Phase, RunRecord
from evozero.search.store import Candidate, RunStore
from evozero.search.tasks import Task
from evozero.status import Status

#: Bootstrap resamples behind each interval (rliable's stratified bootstrap).
BOOTSTRAP_SAMPLES = 2_000
LEVEL = 0.95
#: Rules the final report re-evaluates, fittest first (then the best initial program).
TOP_RULES = 2
#: What every rule is compared with.
BASELINE = "ppo.evz"


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
    """``(role, candidate)`` of the programs the final report re-evaluates: the
    :data:`TOP_RULES` best rules (``best rule``, ``rule 2`` ...), then the best initial
    program (``best seed``) unless it is one of them."""
    rules = store.best(TOP_RULES)
    subjects = [("best rule" if i == 0 else f"rule {i + 1}", c) for i, c in enumerate(rules)]
    seed = store.best_initial()
    if seed is not None and seed.key not in {c.key for c in rules}:
        subjects.append(("best seed", seed))
    return subjects


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


# -- statistics: rliable's stratified bootstrap


def _bootstrap(
    scores: np.ndarray | tuple[np.ndarray, ...], fn: Callable[..., Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``fn``'s point estimate and the lower and upper ends of its :data:`LEVEL`
    interval, each a 1-D array, over rliable's stratified bootstrap: runs (rows) are
    resampled within each task (column); a tuple of matrices is resampled independently.
    Deterministic (a fixed resampling seed)."""
    from rliable import library  # seconds to import (statsmodels): only when reporting

    # rliable 1.2 draws its resamples from NumPy's global generator (its random_state
    # does not reach them): seed that, and give the caller's state back afterwards.
    state = np.random.get_state()
    np.random.seed(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # arch deprecates random_state
            point, ci = library.get_interval_estimates(
                {"x": scores},
                fn,
                reps=BOOTSTRAP_SAMPLES,
                confidence_interval_size=LEVEL,
                random_state=np.random.RandomState(0),
            )
    finally:
        np.random.set_state(state)
    lo, hi = np.asarray(ci["x"], dtype=np.float64).reshape(2, -1)
    return np.atleast_1d(np.asarray(point["x"], dtype=np.float64)), lo, hi


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 for a run of X and a run of Y on the same task, averaged
    over tasks (columns): the Mann-Whitney U statistic over all pairs. The same number as
    ``rliable.metrics.probability_of_improvement`` (a test checks it), counted directly:
    SciPy's Mann-Whitney test, which rliable calls, is far too slow inside a bootstrap."""
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    equal = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + equal / 2))


def _iqm(scores: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(scores)])


def _estimate(point: float, lo: float, hi: float, n: int) -> dict[str, Any]:
    return {"estimate": float(point), "lo": float(lo), "hi": float(hi), "n": n}


def mean_intervals(columns: Sequence[Sequence[float]]) -> list[dict[str, Any] | None]:
    """Per column of values: mean, :data:`LEVEL` bootstrap interval and the values (None
    for an empty column). Columns of equal length share one bootstrap."""
    out: list[dict[str, Any] | None] = [None] * len(columns)
    by_length: dict[int, list[int]] = {}
    for i, col in enumerate(columns):
        if col:
            by_length.setdefault(len(col), []).append(i)
    for idx in by_length.values():
        matrix = np.array([columns[i] for i in idx], dtype=np.float64).T
        point, lo, hi = _bootstrap(matrix, lambda m: m.mean(axis=0))
        for j, i in enumerate(idx):
            out[i] = {
                "mean": float(point[j]),
                "lo": float(lo[j]),
                "hi": float(hi[j]),
                "n": len(columns[i]),
                "values": [float(v) for v in columns[i]],
            }
    return out


# -- the report


def steps_text(steps: int) -> str:
    """``500k``, ``10M``, ``40,960``."""
    if steps % 1_000_000 == 0:
        return f"{steps // 1_000_000}M"
    if steps % 1000 == 0:
        return f"{steps // 1000}k"
    return f"{steps:,}"


def budget_text(tasks: Sequence[Task]) -> str:
    """The training budget of ``tasks`` in words: ``500k steps per task (CartPole-v1:
    100k)``, then the networks where any is not the MLP: ``..., conv network
    (CartPole-v1: mlp)``."""
    if not tasks:
        return "no task"

    def usual(of: Callable[[Task], Any], text: Callable[[Any], str], unit: str) -> str:
        common = Counter(of(t) for t in tasks).most_common(1)[0][0]
        others = [f"{t.env}: {text(of(t))}" for t in tasks if of(t) != common]
        return f"{text(common)} {unit}" + (f" ({', '.join(others)})" if others else "")

    words = usual(lambda t: t.steps, steps_text, "steps per task")
    if any(t.train_config().network != TrainConfig.network for t in tasks):
        words += ", " + usual(lambda t: t.train_config().network, str, "network")
    return words


def seeds_text(seeds: Sequence[int]) -> str:
    """``5 fresh seeds (1000-1004)``."""
    seeds = sorted(seeds)
    if not seeds:
        return "no seed"
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        listed = f"{seeds[0]}-{seeds[-1]}"
    else:
        listed = ", ".join(map(str, seeds))
    return f"{len(seeds)} fresh seed{'s' * (len(seeds) != 1)} ({listed})"


def _baseline(
    tasks: Sequence[Task], normalizers: Mapping[tuple[str, int], tuple[float, float]]
) -> dict[str, dict[str, Any]]:
    """Per task: the returns of random and ppo.evz on each report seed, and the
    normalizing pair (their means over the seeds)."""
    out = {}
    for task in tasks:
        rand = [normalizers[(task.label, s)][0] for s in task.seeds]
        ppo = [normalizers[(task.label, s)][1] for s in task.seeds]
        out[task.label] = {
            "seeds": list(task.seeds),
            "random": rand,
            "ppo": ppo,
            "norm": (float(np.mean(rand)), float(np.mean(ppo))),
        }
    return out


def _returns(
    runs: Sequence[RunRecord], tasks: Sequence[Task]
) -> tuple[dict[str, dict[int, float]], list[str]]:
    """Per task, the final return of each seed whose run finished ``ok``; and the
    failures (one line each)."""
    by = {(r.task, r.seed): r for r in runs}
    returns: dict[str, dict[int, float]] = {t.label: {} for t in tasks}
    failures = []
    for task in tasks:
        for seed in task.seeds:
            run = by.get((task.label, seed))
            if run is None or run.status != Status.OK or run.final_return is None:
                why = "missing" if run is None else f"{run.status} {run.message}".strip()
                failures.append(f"{task.label} seed {seed}: {why}")
            else:
                returns[task.label][seed] = float(run.final_return)
    return returns, failures


def _aggregate(
    tasks: Sequence[Task],
    returns: Mapping[str, Mapping[int, float]],
    baseline: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any] | None:
    """IQM of normalized scores and the probability of improvement over ppo.evz, over
    the seeds on which every one of ``tasks`` finished (None if there are none)."""
    if not tasks:
        return None
    seeds = [s for s in tasks[0].seeds if all(s in returns[t.label] for t in tasks)]
    if not seeds:
        return None
    x = np.empty((len(seeds), len(tasks)))
    y = np.empty_like(x)
    for j, task in enumerate(tasks):
        base = baseline[task.label]
        rand, ppo = base["norm"]
        ppo_of = dict(zip(base["seeds"], base["ppo"], strict=True))
        for i, seed in enumerate(seeds):
            x[i, j] = normalized(returns[task.label][seed], rand, ppo)
            y[i, j] = normalized(ppo_of[seed], rand, ppo)
    iqm = _bootstrap(x, _iqm)
    poi = _bootstrap((x, y), lambda a, b: np.array([probability_of_improvement(a, b)]))
    return {
        "iqm": _estimate(iqm[0][0], iqm[1][0], iqm[2][0], len(seeds)),
        "improvement": _estimate(poi[0][0], poi[1][0], poi[2][0], len(seeds)),
    }


def _subject_tasks(
    tasks: Sequence[Task],
    returns: Mapping[str, Mapping[int, float]],
    baseline: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Per task: raw return (mean and interval), normalized score, and the paired
    per-seed difference in return from ppo.evz; ``loss`` when that difference's interval
    lies below 0."""
    columns: list[list[float]] = []
    for task in tasks:
        base = baseline[task.label]
        ppo_of = dict(zip(base["seeds"], base["ppo"], strict=True))
        got = returns[task.label]
        columns.append([got[s] for s in task.seeds if s in got])
        columns.append([got[s] - ppo_of[s] for s in task.seeds if s in got])
    intervals = mean_intervals(columns)
    out = {}
    for j, task in enumerate(tasks):
        ret, diff = intervals[2 * j], intervals[2 * j + 1]
        rand, ppo = baseline[task.label]["norm"]
        out[task.label] = {
            "steps": task.steps,
            "return": ret,
            "normalized": None if ret is None else normalized(ret["mean"], rand, ppo),
            "difference": diff,
            "loss": diff is not None and diff["hi"] < 0,
        }
    return out


def verdict(
    task_rows: Mapping[str, Mapping[str, Any]],
    train: Mapping[str, Any] | None,
    failures: Sequence[str],
    measured: str,
) -> dict[str, Any]:
    """The verdict on one rule against ppo.evz (see the module docstring); its text ends
    with ``measured`` (the budget and seeds)."""
    lost = [label for label, row in task_rows.items() if row["loss"]]
    poi = train["improvement"] if train else None
    if lost:
        where = ", ".join(
            f"{label} ({_signed(task_rows[label]['difference'])} return)" for label in lost
        )
        kind, text = "lost", f"lost to {BASELINE} on {where}"
    elif failures:
        kind = "undecided"
        text = f"undecided: {len(failures)} re-evaluation run(s) failed ({failures[0]})"
    elif poi is None:
        kind, text = "undecided", "undecided: no training task to compare on"
    elif poi["lo"] > 0.5:
        kind = "improved"
        text = (
            f"improved over {BASELINE}: probability of improvement {_ci(poi)} on the "
            "training tasks, and no task significantly worse"
        )
    else:
        kind = "not improved"
        text = (
            f"not improved over {BASELINE}: probability of improvement {_ci(poi)} on the "
            "training tasks (improved needs its interval above 0.5)"
        )
    return {"verdict": kind, "text": f"{text}; {measured}", "lost_on": lost}


def _ci(e: Mapping[str, Any]) -> str:
    return f"{e['estimate']:.2f} [{e['lo']:.2f}, {e['hi']:.2f}]"


def _signed(iv: Mapping[str, Any]) -> str:
    return f"{iv['mean']:+.3g} [{iv['lo']:+.3g}, {iv['hi']:+.3g}]"


def summarize(
    subjects: Sequence[Mapping[str, Any]],
    runs: Mapping[int, Sequence[RunRecord]],
    train_tasks: Sequence[Task],
    heldout_tasks: Sequence[Task],
    normalizers: Mapping[tuple[str, int], tuple[float, float]],
) -> dict[str, Any]:
    """The report: the budget and seeds, ppo.evz's returns, and per subject (``{"role",
    "id", ...}``) per-task figures, train and held-out aggregates, failures and verdict;
    ``comparison`` is the first subject's verdict (the headline)."""
    tasks = [*train_tasks, *heldout_tasks]
    seeds = sorted({s for t in tasks for s in t.seeds})
    measured = f"measured at {budget_text(tasks)} on {seeds_text(seeds)}"
    baseline = _baseline(tasks, normalizers)
    ppo_returns = mean_intervals([baseline[t.label]["ppo"] for t in tasks])
    out: dict[str, Any] = {
        "baseline": BASELINE,
        "train_tasks": [t.label for t in train_tasks],
        "heldout_tasks": [t.label for t in heldout_tasks],
        "steps": {t.label: t.steps for t in tasks},
        "seeds": seeds,
        "budget": budget_text(tasks),
        "measured": measured,
        "level": LEVEL,
        "bootstrap_samples": BOOTSTRAP_SAMPLES,
        "ppo": {t.label: iv for t, iv in zip(tasks, ppo_returns, strict=True)},
        "random": {t.label: float(baseline[t.label]["norm"][0]) for t in tasks},
        "subjects": [],
    }
    for subject in subjects:
        returns, failures = _returns(runs[subject["id"]], tasks)
        entry = dict(subject)
        entry["tasks"] = _subject_tasks(tasks, returns, baseline)
        entry["train"] = _aggregate(train_tasks, returns, baseline)
        entry["heldout"] = _aggregate(heldout_tasks, returns, baseline)
        entry["failures"] = failures
        entry["verdict"] = verdict(entry["tasks"], entry["train"], failures, measured)
        out["subjects"].append(entry)
    out["comparison"] = (
        out["subjects"][0]["verdict"]
        if out["subjects"]
        else {"verdict": "undecided", "text": f"nothing to compare; {measured}", "lost_on": []}
    )
    return out
