"""The worker protocol (typed, plain JSON), the status enum, and the run store's named
queries; and checks that keep statuses and SQL in their one place."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from evozero.search.backends import Outcome
from evozero.search.config import SearchConfig
from evozero.search.driver import Search
from evozero.search.fitness import evaluate_job
from evozero.search.protocol import (
    CandidateResult,
    Hurdle,
    Job,
    JobResult,
    Phase,
    ProtocolError,
    RandomJob,
    RandomResult,
    RunRecord,
    parse_job,
)
from evozero.search.report import report_subjects
from evozero.search.store import RunStore
from evozero.search.tasks import Task
from evozero.status import FAILED, FINISHED, TRAINED, TRAINING, UNFINISHED, Status

SRC = Path(__file__).resolve().parents[1] / "src" / "evozero"
TASK = Task("breakout", 10_240, (0, 1), {"num_envs": 8})


def record(seed: int = 0, status: Status = Status.OK, final: float | None = 1.5) -> RunRecord:
    return RunRecord(
        task=TASK.label,
        seed=seed,
        status=status,
        message="",
        final_return=final,
        auc=0.5,
        steps=10_240,
        seconds=0.25,
        curve=(None, 0.5, 1.0),
    )


def wire(message):  # noqa: ANN001, ANN201
    """The JSON text a backend would carry, read back."""
    return json.loads(json.dumps(message.to_json()))


# ----------------------------------------------------------------------------- messages


def test_messages_round_trip_through_json():
    hurdle = Hurdle(TASK, 0.3, (0.4, 0.5), (2.5, 2.0))
    messages = [
        Job("scan:\n", (TASK, TASK.with_seeds([3])), hurdle),
        Job("x", (TASK,)),
        RandomJob(TASK),
        RandomResult((0.25, 1.0)),
        record(),
        JobResult((record(),), 0.7, True, {TASK.label: (record(), record(1))}),
        JobResult(None, None, True, {}),
    ]
    for message in messages:
        assert type(message).from_json(wire(message)) == message
    assert parse_job(wire(RandomJob(TASK))) == RandomJob(TASK)
    assert parse_job(wire(messages[0])) == messages[0]


def test_the_wire_format_is_the_documented_json():
    job = Job("text", (TASK,), Hurdle(TASK, 0.3, (0.4,), (2.5,))).to_json()
    assert job == {
        "program": "text",
        "tasks": [TASK.to_json()],
        "hurdle": {"task": TASK.to_json(), "threshold": 0.3, "random": [0.4], "ppo": [2.5]},
    }
    assert RandomJob(TASK).to_json() == {"random": TASK.to_json()}
    rec = record().to_json()
    assert rec == {
        "task": "breakout@10240",
        "seed": 0,
        "status": "ok",
        "message": "",
        "final_return": 1.5,
        "auc": 0.5,
        "steps": 10_240,
        "seconds": 0.25,
        "curve": [None, 0.5, 1.0],
    }
    assert type(rec["status"]) is str  # plain JSON, not an enum
    assert JobResult(None, None, False, {}).to_json() == {
        "hurdle": None,
        "hurdle_score": None,
        "passed": False,
        "runs": {},
    }


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"tasks": [], "hurdle": None}, "missing field 'program'"),
        ({"program": 3, "tasks": [], "hurdle": None}, "field 'program': expected str"),
        (
            {"program": "x", "tasks": [{"env": "breakout"}], "hurdle": None},
            "field 'tasks': not a task",
        ),
        (
            {
                "program": "x",
                "tasks": [],
                "hurdle": {"task": TASK.to_json(), "threshold": "high", "random": [], "ppo": []},
            },
            "field 'threshold': expected int or float",
        ),
        (
            {
                "program": "x",
                "tasks": [],
                "hurdle": {"task": TASK.to_json(), "threshold": 0.3, "random": ["a"], "ppo": []},
            },
            "field 'random': expected a list of numbers",
        ),
        ([1, 2], "expected a JSON object, got list"),
    ],
)
def test_malformed_jobs_name_the_field(message, error):
    with pytest.raises(ProtocolError, match=re.escape(error)):
        parse_job(message)
    with pytest.raises(ProtocolError, match=re.escape(error)):
        evaluate_job(message)  # the worker refuses it before training anything


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"status": "exploded"}, "unknown status 'exploded'"),
        ({"seed": True}, "field 'seed': expected int"),
        ({"seed": 1.5}, "field 'seed': expected int"),
        ({"final_return": "1"}, "field 'final_return'"),
        ({"curve": [1, "x"]}, "field 'curve'"),
    ],
)
def test_malformed_records_name_the_field(change, error):
    with pytest.raises(ProtocolError, match=re.escape(error)):
        RunRecord.from_json({**record().to_json(), **change})
    reply = {
        "hurdle": None,
        "hurdle_score": None,
        "passed": True,
        "runs": {TASK.label: [{**record().to_json(), **change}]},
    }
    with pytest.raises(ProtocolError, match=re.escape(error)):
        JobResult.from_json(reply)


def test_a_candidate_result_keeps_only_finite_numbers():
    result = CandidateResult(Status.OK, float("nan"), float("inf"))
    assert result.fitness is None and result.hurdle_score is None
    assert CandidateResult(Status.OK, 1).fitness == 1.0


def test_a_malformed_reply_fails_its_candidate_only(tmp_path):
    s = Search.create(tmp_path / "run", SearchConfig(budget=1, suite="tiny", backend="serial"))
    out = s.result_of(Outcome(job_id=0, result={"passed": True}, error=None, seconds=2.0))
    assert out.status == Status.ERROR and out.fitness is None and out.seconds == 2.0
    assert out.message == "malformed reply from the worker: missing field 'hurdle'"


# ----------------------------------------------------------------------------- statuses


def test_status_is_a_string_on_disk_and_on_the_wire():
    assert Status.OK == "ok" and f"{Status.DIVERGED}" == "diverged" and str(Status.ERROR) == "error"
    assert json.dumps({"s": Status.CULLED}) == '{"s": "culled"}'
    assert Status("duplicate") is Status.DUPLICATE
    assert set(TRAINING) <= set(TRAINED) and set(FAILED) <= set(TRAINED)
    assert set(FINISHED) == set(Status) - set(UNFINISHED)
    assert Status.DUPLICATE not in TRAINED and Status.CULLED not in TRAINING


def status_literals(source: str) -> list[int]:
    """Lines where a status value is written as a string where a status is meant: compared
    with, passed as ``status=``, or stored under a ``"status"`` key."""
    values = {s.value for s in Status}
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):  # ("error" in out: a key, not a status)
            membership = isinstance(node.ops[0], (ast.In, ast.NotIn))
            candidates = [*([] if membership else [node.left]), *node.comparators]
        elif isinstance(node, ast.keyword) and node.arg == "status":
            candidates = [node.value]
        elif isinstance(node, ast.Dict):
            candidates = [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "status"
            ]
        else:
            continue
        for c in candidates:
            elements = c.elts if isinstance(c, (ast.Tuple, ast.List, ast.Set)) else [c]
            found += [
                e.lineno for e in elements if isinstance(e, ast.Constant) and e.value in values
            ]
    return found


def test_statuses_are_never_spelled_out_outside_status_py():
    sample = (
        'if r["status"] != "ok" or s in ("error", "x"):\n    f(status="culled")\n'
        'd = {"status": "diverged", "state": "running", "ok": 1}\n"error" in d\n'
    )
    assert sorted(status_literals(sample)) == [1, 1, 2, 3]  # the check finds what it should
    files = [*SRC.glob("search/*.py"), *SRC.glob("cli/*.py"), SRC / "native" / "train.py"]
    assert [
        (f.relative_to(SRC), line) for f in files for line in status_literals(f.read_text())
    ] == []


def test_sql_stays_in_the_store():
    sql = re.compile(
        r"\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|SET)\b|"
        r"\bstatus (=|IN|!=|NOT IN) |\bIS (NOT )?NULL\b|\bORDER BY\b|"
        r"\bWHERE\b"
    )
    hits = [
        f"{f.relative_to(SRC)}:{node.lineno}"
        for f in SRC.rglob("*.py")
        if f != SRC / "search" / "store.py"
        for node in ast.walk(ast.parse(f.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and sql.search(node.value)
    ]
    assert hits == []


# ----------------------------------------------------------------------------- store queries


def test_the_store_answers_named_queries(tmp_path):
    store = RunStore.create(tmp_path / "run", {"kind": "test"})
    rows = [  # id, origin, complexity, result (None: still running, "dup": duplicate of 0)
        (0, "init:ppo", 10, CandidateResult(Status.OK, 0.5)),
        (1, "init:a2c", 12, CandidateResult(Status.CULLED, 0.1, 0.1)),
        (2, "mutation", 8, CandidateResult(Status.OK, 0.9)),
        (3, "mutation", 9, None),
        (4, "mutation", 7, "dup"),
        (5, "mutation", 7, CandidateResult(Status.DIVERGED, None)),
        (6, "mutation", 9, CandidateResult(Status.OK, 0.9)),
    ]
    for id, origin, complexity, _ in rows:
        store.add_candidate(
            id=id,
            origin=origin,
            parent=None,
            mutation=None,
            text=f"t{id}",
            key=f"k{id}",
            fingerprint=f"f{id}",
            complexity=complexity,
        )
    for id, *_, result in [rows[2], rows[0], rows[5], rows[4], rows[1], rows[6]]:
        if result == "dup":
            store.finish_duplicate(id, 0)
        else:
            store.finish_candidate(id, result)
    assert [c.id for c in store.finished()] == [2, 0, 5, 4, 1, 6]  # in the order they came
    assert [c.id for c in store.unfinished()] == [3]
    assert [c.id for c in store.candidates(Status.OK)] == [0, 2, 6]
    assert [c.id for c in store.best(2)] == [2, 6]  # ties: simpler first
    assert [c.id for c in store.passed_by_complexity()] == [2, 6, 0]
    assert store.best_initial().id == 0
    counts = store.count_by_status()
    assert counts == {
        Status.OK: 3,
        Status.CULLED: 1,
        Status.DIVERGED: 1,
        Status.DUPLICATE: 1,
        Status.RUNNING: 1,
    }
    assert store.count(*TRAINED) == 5 and store.count(Status.RUNNING) == 1
    dup = store.candidate(4)
    assert (dup.status, dup.fitness, dup.duplicate_of) == (Status.DUPLICATE, 0.5, 0)
    assert dup.message == "same rule as candidate 0" and store.runs(4) == []
    assert [(role, c.id) for role, c in report_subjects(store)] == [
        ("best rule", 2),
        ("rule 2", 6),
        ("best seed", 0),
    ]


def test_runs_are_stored_as_records(tmp_path):
    store = RunStore.create(tmp_path / "run", {"kind": "test"})
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
    runs = [(Phase.HURDLE, record()), (Phase.SEARCH, record(1, Status.DIVERGED, None))]
    store.finish_candidate(0, CandidateResult(Status.DIVERGED, None, runs=runs))
    store.add_runs(0, [(Phase.REPORT, RunRecord.failed(TASK, 1000, "worker died", 3.0))])
    assert store.runs(0, Phase.HURDLE) == [record()]
    assert store.runs(0, Phase.SEARCH) == [record(1, Status.DIVERGED, None)]
    (failed,) = store.runs(0, Phase.REPORT)
    assert failed.status == Status.ERROR and failed.message == "worker died"
    assert failed.seed == 1000 and failed.final_return is None and failed.curve == ()
