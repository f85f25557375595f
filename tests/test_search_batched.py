"""The batch backend (``evolve --backend batch`` / ``--device cuda``): search jobs trained
together by ``evozero.train_many``, here on its host path, which is bit-exact with
``evozero.train``, so every number must equal the per-job path's."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_checks import DIVERGES
from typer.testing import CliRunner

import evozero
from evozero.cli import app
from evozero.search.batched import BatchBackend, evaluate_jobs
from evozero.search.config import SearchConfig
from evozero.search.driver import Search
from evozero.search.fitness import evaluate_job, reference_program_text
from evozero.search.protocol import Hurdle, Job, JobResult, Phase
from evozero.search.store import RunStore
from evozero.search.tasks import SUITES, Task
from evozero.status import Status

runner = CliRunner()
TINY = SUITES["tiny"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EVOZERO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


# The tiny suite's shape at a quarter of its steps: train_many's host path is the GPU
# code's reference, ~30x slower than train(), and these tests run whole searches.
MICRO_SUITE = """
name = "micro"
description = "breakout at 2k steps, the best half promoted to 4k; held out: CartPole-v1"
rungs = [2_048, 4_096]
promote = 0.5
report_seeds = 2
[hurdle]
env = "breakout"
steps = 1_024
threshold = 0.3
config = { num_envs = 8, num_steps = 32, num_minibatches = 4 }
[[tasks]]
env = "breakout"
config = { num_envs = 8, num_steps = 32, num_minibatches = 4 }
[[heldout]]
env = "CartPole-v1"
steps = 8_192
config = { num_envs = 8, num_steps = 32, num_minibatches = 4 }
"""


@pytest.fixture(scope="module")
def micro_suite(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("suite") / "micro.toml"
    path.write_text(MICRO_SUITE)
    return str(path)


def tiny(suite: str = "tiny", **changes) -> SearchConfig:
    return SearchConfig(
        **{
            "budget": 8,
            "suite": suite,
            "backend": "serial",
            "workers": 1,
            "population": 6,
            "tournament": 3,
            **changes,
        }
    )


class Counting:
    """``evozero.train_many``, counting the programs of each call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, programs, *args, **kwargs):
        self.calls.append(len(programs))
        return evozero.train_many(programs, *args, **kwargs)


def candidates(store: RunStore) -> dict[str, tuple]:
    """Per trained program text: its verdict and every search run's numbers."""
    return {
        c.text: (
            c.status,
            c.fitness,
            c.hurdle_score,
            c.scores,
            c.rung,
            [
                (r.task, r.seed, r.status, r.message, r.final_return, r.auc, r.steps, r.curve)
                for r in store.runs(c.id, Phase.HURDLE) + store.runs(c.id, Phase.SEARCH)
            ],
        )
        for c in store.candidates()
        if c.status != Status.DUPLICATE
    }


def _runs(records) -> list[tuple]:
    return [
        (r.task, r.seed, r.status, r.message, r.final_return, r.auc, r.steps, r.curve)
        for r in records
    ]


def rungs(store: RunStore) -> dict[str, tuple]:
    """Per trained program text: its hurdle and each rung it was trained at, with the
    runs' numbers (which rungs a candidate reaches depends on the order of results)."""
    ladders = store.ladders()
    return {
        c.text: (
            c.hurdle_score,
            _runs(store.runs(c.id, Phase.HURDLE)),
            {
                rung: (entry, _runs(store.runs(c.id, Phase.SEARCH, rung)))
                for rung, entry in ladders.get(c.id, {}).items()
            },
        )
        for c in store.candidates()
        if c.status != Status.DUPLICATE
    }


def test_a_batched_search_gives_every_candidate_the_serial_search_s_numbers(tmp_path, micro_suite):
    serial = Search.create(tmp_path / "serial", tiny(micro_suite, seed=7))
    serial.run(report=False)
    batched = Search.create(
        tmp_path / "batched", tiny(micro_suite, seed=7, backend="batch", workers=4)
    )
    counting = Counting()
    batched._open_backend = lambda: setattr(  # the same backend, with a counting trainer
        batched, "backend", BatchBackend(4, device="cpu", trainer=counting)
    )
    batched.run(report=False)
    want, got = rungs(serial.store), rungs(batched.store)
    assert len(got) >= 8
    # The batched evolution proposes in batches of 4, so the two runs share only some
    # candidates (the five seed programs at least), and a shared one may reach rung 1 in
    # one run only; every rung both trained must agree in every number.
    shared = set(want) & set(got)
    assert len(shared) >= 5
    compared = 0
    for text in shared:
        assert got[text][:2] == want[text][:2], text  # the hurdle
        for rung in set(got[text][2]) & set(want[text][2]):
            assert got[text][2][rung] == want[text][2][rung], (text, rung)
            compared += 1
    assert compared >= 5
    assert any(len(v[2]) > 1 for v in got.values())  # promotions were batched too
    assert any(
        entry[0][0] == Status.OK and entry[0][1] is not None
        for v in got.values()
        for entry in v[2].values()
    )
    assert max(counting.calls) > 1  # candidates really were trained together


def test_diverging_and_culled_candidates_reply_as_the_per_job_path(tmp_path):
    hurdle_task = TINY.hurdle
    hurdle = Hurdle(hurdle_task, TINY.hurdle_threshold, (0.0,), (5.0,))
    ppo = reference_program_text("ppo")
    noop = reference_program_text("noop")
    jobs = [
        Job(DIVERGES, TINY.tasks, hurdle),  # diverges on the hurdle
        Job(DIVERGES, TINY.tasks, None),  # diverges on the tasks
        Job(ppo, TINY.tasks, hurdle),
        Job(noop, TINY.tasks, hurdle),  # culled
        Job(ppo, TINY.tasks, None),
        Job("not a program", TINY.tasks, None),
    ]
    payloads = [j.to_json() for j in jobs]
    counting = Counting()
    got = evaluate_jobs(payloads, trainer=counting)
    for payload, reply in zip(payloads[:5], got[:5], strict=True):
        want = JobResult.from_json(evaluate_job(payload))
        have = JobResult.from_json(reply)
        assert _numbers(have) == _numbers(want)
    diverged = JobResult.from_json(got[0])
    assert not diverged.passed and diverged.hurdle[0].status == Status.DIVERGED
    assert JobResult.from_json(got[1]).runs[TINY.tasks[0].label][0].status == Status.DIVERGED
    assert not JobResult.from_json(got[3]).passed
    assert isinstance(got[5], str) and got[5].startswith("ProgramError")
    assert counting.calls[0] == 3  # the three hurdles in one call


def _numbers(reply: JobResult) -> tuple:
    def runs(records):
        return [(r.task, r.seed, r.status, r.message, r.final_return, r.curve) for r in records]

    return (
        runs(reply.hurdle or ()),
        reply.hurdle_score,
        reply.passed,
        {k: runs(v) for k, v in reply.runs.items()},
    )


def test_tasks_train_many_cannot_train_run_one_at_a_time():
    cartpole = Task("CartPole-v1", 2_048, seeds=(0, 1), config={"num_envs": 4})
    payload = Job(reference_program_text("ppo"), (cartpole, TINY.tasks[0]), None).to_json()
    counting = Counting()
    (got,) = evaluate_jobs([payload], trainer=counting)
    assert _numbers(JobResult.from_json(got)) == _numbers(
        JobResult.from_json(evaluate_job(payload))
    )
    assert counting.calls == [1]  # breakout through train_many; CartPole through train


def test_a_stopped_batched_search_resumes_to_the_same_run(tmp_path, micro_suite):
    config = tiny(micro_suite, seed=3, backend="batch", workers=3, budget=6)
    whole = Search.create(tmp_path / "whole", config)
    whole.run(report=False)
    stopped = Search.create(tmp_path / "run", config)
    batches = []

    def ctrl_c(status) -> None:
        if status.phase == "search" and status.trained >= 3 and not batches:
            batches.append(status.trained)
            raise KeyboardInterrupt

    stopped.on_status = ctrl_c
    with pytest.raises(KeyboardInterrupt):
        stopped.run(report=False)
    assert batches
    stopped.store.close()
    resumed = Search.resume(tmp_path / "run")
    resumed.run(report=False)
    assert candidates(resumed.store) == candidates(whole.store)


def test_device_settings_are_checked():
    with pytest.raises(ValueError, match="batch backend"):
        tiny(device="cuda", backend="process")
    with pytest.raises(ValueError, match="unknown --device"):
        tiny(device="tpu", backend="batch")
    assert SearchConfig.from_json({k: v for k, v in tiny().to_json().items() if k != "device"})


def test_evolve_device_cuda_without_a_gpu_says_what_is_missing(tmp_path: Path, no_gpu) -> None:
    out = tmp_path / "run"
    args = ["evolve", "--suite", "tiny", "--budget", "2", "--device", "cuda", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--device cuda: " in result.output and "CUDA" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # refused before a run was made
    result = runner.invoke(app, [*args[:-2], "--backend", "ray"])
    assert result.exit_code == 2 and "--backend batch" in result.output


def test_evolve_backend_batch_runs_a_search_and_its_report(tmp_path: Path, micro_suite) -> None:
    out = tmp_path / "run"
    args = ["evolve", "--suite", micro_suite, "--budget", "2", "--population", "2"]
    result = runner.invoke(
        app, [*args, "--tournament", "1", "--backend", "batch", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with RunStore.open(out) as store:
        meta = store.meta()
        assert meta["config"]["backend"] == "batch" and meta["config"]["device"] == "cpu"
        assert meta["state"] == "finished"
        best = meta["report"]["subjects"][0]
        # the report's held-out CartPole task went through train(), the rest through train_many
        assert {r.task for r in store.runs(best["id"], Phase.REPORT)} >= {"CartPole-v1@8192"}


def test_a_failed_train_many_call_fails_the_jobs_it_trained_only():
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    task = Task("breakout", 1_024, config={"num_envs": 4})
    cartpole = Task("CartPole-v1", 1_024, config={"num_envs": 4})
    ppo = reference_program_text("ppo")
    backend = BatchBackend(3, device="cpu", trainer=broken)
    backend.submit(5, Job(ppo, (task,), None).to_json())
    backend.submit(6, Job(ppo, (cartpole,), None).to_json())  # not through train_many
    backend.submit(7, Job("not a program", (task,), None).to_json())
    assert backend.in_flight() == 3
    outcomes = backend.wait()
    assert [o.job_id for o in outcomes] == [5, 6, 7] and backend.in_flight() == 0
    assert outcomes[0].error == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert outcomes[1].error is None and JobResult.from_json(outcomes[1].result).passed
    assert outcomes[2].error.startswith("ProgramError")
    assert backend.batches == [3]
