"""The final report's verdicts, on synthetic result tables (no training).

A rule is compared with ppo.evz on the same tasks and seeds. "improved" needs the
probability-of-improvement interval above 0.5 on the training tasks and no task with a
significant loss; a loss names its task; every verdict names its budget and seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from evozero.cli.display import report_view
from evozero.search.protocol import RunRecord
from evozero.search.report import (
    budget_text,
    probability_of_improvement,
    seeds_text,
    summarize,
)
from evozero.search.tasks import Task
from evozero.status import Status

SEEDS = (1000, 1001, 1002, 1003, 1004)
BREAKOUT = Task("breakout", 500_000, SEEDS)
INVADERS = Task("space_invaders", 500_000, SEEDS)
FREEWAY = Task("freeway", 500_000, SEEDS)
CARTPOLE = Task("CartPole-v1", 100_000, SEEDS)
TRAIN, HELDOUT = [BREAKOUT, INVADERS], [FREEWAY, CARTPOLE]
#: ppo.evz's returns per task and seed (random scores 1 on every task).
PPO = {
    BREAKOUT.label: [29.0, 31.0, 27.0, 30.0, 28.0],
    INVADERS.label: [160.0, 170.0, 150.0, 165.0, 175.0],
    FREEWAY.label: [20.0, 21.0, 19.0, 22.0, 20.0],
    CARTPOLE.label: [480.0, 490.0, 500.0, 470.0, 495.0],
}
NORMS = {
    (label, seed): (1.0, ppo)
    for label, values in PPO.items()
    for seed, ppo in zip(SEEDS, values, strict=True)
}
MEASURED = "measured at 500k steps per task (CartPole-v1: 100k) on 5 fresh seeds (1000-1004)"


def runs(scale: dict[str, float], status: dict[tuple[str, int], Status] | None = None):
    """A rule's report runs: ppo.evz's return times ``scale[label]`` (default 1) plus a
    little seed noise; ``status`` marks failed runs."""
    out = []
    for task in TRAIN + HELDOUT:
        for i, seed in enumerate(task.seeds):
            ret = PPO[task.label][i] * scale.get(task.label, 1.0) + (i % 2) * 0.5
            st = (status or {}).get((task.label, seed), Status.OK)
            out.append(
                RunRecord(
                    task.label,
                    seed,
                    st,
                    "" if st is Status.OK else "boom",
                    ret if st is Status.OK else None,
                    None,
                    task.steps,
                    0.0,
                )
            )
    return out


def report(*rules: list[RunRecord]):
    subjects = [{"role": f"rule {i}", "id": i, "origin": "mutation"} for i in range(len(rules))]
    return summarize(subjects, dict(enumerate(rules)), TRAIN, HELDOUT, NORMS)


def test_a_rule_better_everywhere_is_improved():
    rep = report(runs({t.label: 1.5 for t in TRAIN + HELDOUT}))
    rule = rep["subjects"][0]
    assert rule["verdict"]["verdict"] == "improved" and rule["verdict"]["lost_on"] == []
    assert rep["comparison"] == rule["verdict"]
    assert rule["train"]["improvement"]["lo"] > 0.5
    assert rule["train"]["iqm"]["estimate"] > 1.2
    assert rule["tasks"][BREAKOUT.label]["difference"]["lo"] > 0


def test_a_rule_like_ppo_is_not_improved():
    rep = report(runs({}))
    verdict = rep["subjects"][0]["verdict"]
    assert verdict["verdict"] == "not improved" and verdict["lost_on"] == []
    poi = rep["subjects"][0]["train"]["improvement"]
    assert poi["lo"] <= 0.5 <= poi["hi"]
    assert "not improved over ppo.evz: probability of improvement" in verdict["text"]


def test_halving_one_game_and_doubling_another_is_a_loss_named_by_its_task():
    # The case: a mean of normalized scores says "better" (0.5 and 2 average 1.25).
    rep = report(runs({BREAKOUT.label: 0.5, INVADERS.label: 2.0}))
    rule = rep["subjects"][0]
    normalized = [rule["tasks"][t.label]["normalized"] for t in TRAIN]
    assert np.mean(normalized) > 1.2
    verdict = rule["verdict"]
    assert verdict["verdict"] == "lost" and verdict["lost_on"] == [BREAKOUT.label]
    assert verdict["text"].startswith(f"lost to ppo.evz on {BREAKOUT.label} (")
    assert INVADERS.label not in verdict["text"]
    assert rule["tasks"][BREAKOUT.label]["loss"] and not rule["tasks"][INVADERS.label]["loss"]


def test_a_loss_on_a_heldout_task_blocks_improved():
    rep = report(runs({BREAKOUT.label: 1.5, INVADERS.label: 1.5, CARTPOLE.label: 0.5}))
    verdict = rep["subjects"][0]["verdict"]
    assert rep["subjects"][0]["train"]["improvement"]["lo"] > 0.5
    assert verdict["verdict"] == "lost" and verdict["lost_on"] == [CARTPOLE.label]


def test_a_failed_run_leaves_the_verdict_undecided():
    failed = runs({t.label: 1.5 for t in TRAIN}, {(INVADERS.label, 1002): Status.DIVERGED})
    rule = report(failed)["subjects"][0]
    assert rule["verdict"]["verdict"] == "undecided"
    assert rule["failures"] == [f"{INVADERS.label} seed 1002: diverged boom"]
    assert rule["train"]["iqm"]["n"] == 4  # the seeds on which every training task ran
    assert rule["tasks"][INVADERS.label]["return"]["n"] == 4
    nothing = runs({}, {(FREEWAY.label, s): Status.ERROR for s in SEEDS})
    assert report(nothing)["subjects"][0]["heldout"] is None


def test_every_verdict_names_its_budget_and_seeds():
    for scale in ({}, {BREAKOUT.label: 0.5}, {t.label: 1.5 for t in TRAIN + HELDOUT}):
        rep = report(runs(scale))
        assert rep["measured"] == MEASURED
        assert rep["subjects"][0]["verdict"]["text"].endswith(MEASURED)
    assert budget_text([Task("breakout", 10_000_000)]) == "10M steps per task"
    assert budget_text([Task("breakout", 40_960)]) == "40,960 steps per task"
    conv = {"network": "conv"}  # a verdict on the conv network says so
    mixed = [Task("breakout", 2_000_000, config=conv), Task("CartPole-v1", 200_000)]
    assert budget_text(mixed[:1]) == "2M steps per task, conv network"
    assert budget_text([*mixed, Task("asterix", 2_000_000, config=conv)]) == (
        "2M steps per task (CartPole-v1: 200k), conv network (CartPole-v1: mlp)"
    )
    assert seeds_text([1000]) == "1 fresh seed (1000)"
    assert seeds_text([3, 1]) == "2 fresh seeds (1, 3)"


def test_the_report_is_reproducible_and_shows_the_verdicts():
    rules = runs({BREAKOUT.label: 0.5}), runs({t.label: 1.5 for t in TRAIN + HELDOUT})
    np.random.seed(1)
    rep = report(*rules)
    after = np.random.random()
    np.random.seed(1)
    assert report(*rules) == rep
    assert np.random.random() == after  # NumPy's global generator is left as it was
    assert report(*rules) == rep  # whatever its state
    console = Console(record=True, width=400)
    console.print(report_view(rep))
    shown = console.export_text()
    for subject in rep["subjects"]:
        assert subject["verdict"]["text"] in shown
    assert "IQM" in shown and "P(improve)" in shown


@pytest.mark.parametrize("seed", range(5))
def test_the_probability_of_improvement_is_rliables(seed):
    from rliable import metrics

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=(5, 3)).astype(float)  # ties included
    y = rng.integers(0, 4, size=(4, 3)).astype(float)
    assert probability_of_improvement(x, y) == pytest.approx(
        metrics.probability_of_improvement(x, y)
    )
