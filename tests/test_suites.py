"""Suites: the built-ins, suite files (and their one-line errors), ``evozero suites``, and
a multi-fidelity search run from a suite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evozero.cli import app
from evozero.native.envs import GAMES
from evozero.search.store import RunStore
from evozero.search.tasks import SUITES, Suite, SuiteFileError, Task, get_suite, load_suite
from evozero.status import Status

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "suite.toml"
runner = CliRunner()

#: A two-rung suite that trains in seconds (the tiny suite's settings).
TINY_FILE = """
name = "tiny-file"
rungs = [20_480, 40_960]
promote = 0.5
report_seeds = 2
time_limit = 60

[hurdle]
env = "breakout"
steps = 10_240
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


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EVOZERO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def test_the_built_ins_climb_to_their_target():
    assert list(SUITES)[:1] == ["quick"]
    quick, tiny, full = SUITES["quick"], SUITES["tiny"], SUITES["full"]
    assert len(quick.rungs) == 1 and quick.target_steps == 500_000  # a 500k-step verdict
    assert len(tiny.rungs) == 2 and tiny.promote == 0.5  # tests exercise promotion
    assert {t.env for t in full.target} == {
        "asterix",
        "breakout",
        "freeway",
        "seaquest",
        "space_invaders",
    }
    assert full.target_steps == 10_000_000 and len(full.rungs) == 3
    for suite in SUITES.values():
        assert Suite.from_json(json.loads(json.dumps(suite.to_json()))) == suite
        steps = [max(t.steps for t in rung) for rung in suite.rungs]
        assert steps == sorted(set(steps))  # budgets grow rung by rung
        train, heldout = suite.report_tasks()  # the final report: target tasks, fresh seeds
        assert [t.spec_json() for t in train] == [t.spec_json() for t in suite.target]
        assert all(set(t.seeds).isdisjoint({0, 1}) for t in (*train, *heldout))


def test_the_built_ins_train_on_the_stronger_network_where_verdicts_are_long():
    """standard and full (verdicts at 2M and 10M steps) select and report on the conv
    network, ppo.evz's stronger baseline on every game at 10M; their hurdles, quick and
    tiny stay on the MLP, for speed; gymnasium tasks can only have the MLP."""

    def network(task: Task) -> str:
        return task.train_config().network

    for name in ("standard", "full"):
        suite = SUITES[name]
        tasks = [*(t for rung in suite.rungs for t in rung), *suite.target, *suite.heldout]
        for task in tasks:
            assert network(task) == ("conv" if task.env in GAMES else "mlp"), task
        assert network(suite.hurdle) == "mlp"
        assert suite.target[0].label.endswith(":conv")  # tables say which network
    for name in ("quick", "tiny"):
        suite = SUITES[name]
        tasks = [suite.hurdle, *(t for rung in suite.rungs for t in rung), *suite.heldout]
        assert {network(t) for t in tasks} == {"mlp"}
        assert "MLP" in suite.description


def test_a_suite_file_sets_the_network_of_its_minatar_tasks(tmp_path: Path):
    small = "config = { num_envs = 8, num_steps = 32, num_minibatches = 4 }\n"
    path = tmp_path / "conv.toml"
    path.write_text(
        'network = "conv"\n'
        + GOOD
        + '[[tasks]]\nenv = "freeway"\n'
        + small.replace("{ ", '{ network = "mlp", ')
        + '[hurdle]\nenv = "breakout"\nsteps = 500\n'
        + small
        + '[[heldout]]\nenv = "CartPole-v1"\nsteps = 500\n'
        + small
    )
    suite = load_suite(path)
    breakout, freeway = suite.rungs[0]
    assert breakout.config == {
        "network": "conv",
        "num_envs": 8,
        "num_minibatches": 4,
        "num_steps": 32,
    }
    assert breakout.label == "breakout@1k:conv"
    assert freeway.train_config().network == "mlp"  # a task's own setting wins
    assert suite.hurdle is not None and suite.hurdle.train_config().network == "conv"
    assert suite.heldout[0].train_config().network == "mlp"  # gymnasium keeps the MLP
    plain, mlp = tmp_path / "plain.toml", tmp_path / "mlp.toml"
    plain.write_text(GOOD)
    mlp.write_text('network = "mlp"\n' + GOOD)  # the default adds nothing to the spec
    assert load_suite(mlp).rungs == load_suite(plain).rungs


def test_the_example_suite_file_loads_with_every_field():
    suite = load_suite(EXAMPLE)
    assert get_suite(str(EXAMPLE)) == suite
    assert suite.name == "breakout-si" and suite.promote == 0.25
    assert [t.label for t in suite.rungs[0]] == ["breakout@500k", "space_invaders@500k"]
    assert [t.seeds for t in suite.rungs[1]] == [(0, 1), (0, 1)]
    assert suite.rungs[0][1].config == {"lr": 5e-4}
    assert suite.hurdle == Task("breakout", 200_000) and suite.hurdle_threshold == 0.3
    assert suite.target_steps == 2_000_000 and suite.report_seeds == 5
    assert [t.env for t in suite.heldout] == ["freeway", "CartPole-v1"]
    assert Suite.from_json(suite.to_json()) == suite


GOOD = (
    'rungs = [1000, 4000]\n[[tasks]]\nenv = "breakout"\n'
    "config = { num_envs = 8, num_steps = 32, num_minibatches = 4 }\n"
)


@pytest.mark.parametrize(
    ("text", "field", "fix"),
    [
        ("rungs = [", "not valid TOML", "fix the syntax"),
        ('[[tasks]]\nenv = "breakout"\n', "rungs: missing", "e.g. rungs = [500_000"),
        (
            "rungs = [2000, 1000]\n" + GOOD[20:],
            "rungs: [2000, 1000] is not an increasing",
            "smallest up",
        ),
        ("rungs = [0]\n" + GOOD[20:], "rungs[0]: 0 is not an integer >= 1", "rungs[0] = 1"),
        ("rungs = [1000]\n", "tasks: missing or empty", "add at least one [[tasks]]"),
        ('rungs = [1000]\n[[tasks]]\nenv = "brekout"\n', "tasks[0].env: 'brekout'", "CartPole-v1"),
        ("colour = 3\n" + GOOD, "colour: unknown field", "use only name, description"),
        ("promote = 1.5\n" + GOOD, "promote: 1.5 is not a number in (0, 1]", "give a number"),
        (
            'report_seeds = "five"\n' + GOOD,
            "report_seeds: 'five' is not an integer",
            "report_seeds = 1",
        ),
        ("target = -5\n" + GOOD, "target: -5 is not an integer >= 1", "target = 1"),
        (
            GOOD.replace('"breakout"\n', '"breakout"\nsteps = [10]\n'),
            "tasks[0].steps: needs one budget per rung (2)",
            "leave it out to use rungs",
        ),
        (
            GOOD.replace('"breakout"\n', '"breakout"\nseeds = [[0], [0], [1]]\n'),
            "tasks[0].seeds: has 3 lists of seeds for 2 rungs",
            "one list per rung",
        ),
        (
            GOOD.replace('"breakout"\n', '"breakout"\nseeds = [-1]\n'),
            "tasks[0].seeds: -1 is not an integer >= 0",
            "",
        ),
        (
            GOOD.replace("num_envs = 8", "num_envz = 8"),
            "tasks[0].config.num_envz: is not a trainer setting",
            "use the fields of TrainConfig",
        ),
        (
            GOOD.replace("num_minibatches = 4", "num_minibatches = 3"),
            "tasks[0].config: TrainConfig.num_minibatches (3) must divide",
            "change that setting",
        ),
        (GOOD + '[hurdle]\nenv = "breakout"\n', "hurdle.steps: missing", "steps = 200_000"),
        (
            GOOD + "[hurdle]\nsteps = 10\nenv = 3\n",
            "hurdle.env: 3 is not a known env",
            "use one of",
        ),
        (
            GOOD + '[[heldout]]\nenv = "freeway"\nsteps = 9000\nx = 1\n',
            "heldout[0].x: unknown field",
            "use only env",
        ),
        ("heldout = 3\n" + GOOD, "heldout: is not a list of tables", "[[heldout]]"),
        ('network = "cnn"\n' + GOOD, "network: 'cnn' is not a network", "'mlp', 'conv'"),
        (
            GOOD + '[hurdle]\nenv = "breakout"\nsteps = 1000\nconfig = { num_envs = 4 }\n',
            "hurdle and rung 0 task 0 are both breakout@1k with different trainer settings",
            "another step budget",
        ),
    ],
)
def test_a_bad_suite_file_names_the_file_the_field_and_the_fix(
    tmp_path: Path, text: str, field: str, fix: str
):
    path = tmp_path / "my_suite.toml"
    path.write_text(text)
    with pytest.raises(SuiteFileError) as e:
        load_suite(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert message.count(str(path)) == 1  # named once, however deep the field
    assert field in message and fix in message


def test_the_command_line_gives_a_bad_suite_file_one_line(tmp_path: Path):
    path = tmp_path / "my_suite.toml"
    path.write_text("promote = 0\n" + GOOD)
    result = runner.invoke(app, ["evolve", "--budget", "1", "--suite", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = result.output.replace("\n", "")
    assert f"{path}: promote: 0 is not a number in (0, 1]" in line and line.count(str(path)) == 1
    missing = runner.invoke(app, ["suites", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "cannot read suite file" in missing.output


def test_suites_lists_rungs_tasks_and_a_measured_cost(tmp_path_factory):
    result = runner.invoke(app, ["suites", "tiny", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    tiny, example = json.loads(result.output)
    assert [r["steps"] for r in tiny["rungs"]] == [20_480, 40_960]
    assert tiny["target_steps"] == 40_960 and example["target_steps"] == 2_000_000
    for row in (tiny, example):
        cost = row["cost"]
        assert all(s > 0 for s in cost["rung_seconds"]) and cost["hurdle_seconds"] > 0
        # later rungs train longer; a candidate pays rung k with probability promote**k
        assert cost["rung_seconds"] == sorted(cost["rung_seconds"])
        expected = cost["hurdle_seconds"] + sum(
            s * row["promote"] ** k for k, s in enumerate(cost["rung_seconds"])
        )
        assert cost["expected_seconds"] == pytest.approx(expected)
    # the 2M rung is 4x the steps and 2x the seeds of the 500k one: about 8x the cost
    ratio = example["cost"]["rung_seconds"][1] / example["cost"]["rung_seconds"][0]
    assert ratio == pytest.approx(8.0)
    cache = Path(tmp_path_factory.getbasetemp() / "cache" / "speed.json")
    assert len(json.loads(cache.read_text())) == 3  # tiny breakout, breakout, space_invaders
    table = runner.invoke(app, ["suites"], env={"COLUMNS": "160"})
    assert table.exit_code == 0 and "500k → 2M → 10M" in table.output
    assert {"conv", "mlp"} <= set(table.output.split())  # the network column


def test_a_multi_fidelity_search_runs_from_a_suite_file(tmp_path: Path):
    path = tmp_path / "tiny_file.toml"
    path.write_text(TINY_FILE)
    out = tmp_path / "run"
    args = ["evolve", "--suite", str(path), "--budget", "4", "--backend", "serial"]
    result = runner.invoke(
        app, [*args, "--population", "4", "--tournament", "2", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["suite"]["name"] == "tiny-file" and shown["state"] == "finished"
    rungs = shown["rungs"]
    assert [r["rung"] for r in rungs] == [0, 1] and rungs[0]["evaluated"] == 4
    with RunStore.open(out) as store:
        assert Suite.from_json(store.meta()["suite"]) == load_suite(path)
        promoted = [c for c in store.candidates() if c.rung == 1]
        assert len(promoted) == rungs[1]["evaluated"] >= 1
        assert store.best(1)[0].rung == 1  # the best is one that reached the top rung
        for c in promoted:
            assert c.status in (Status.OK, Status.DIVERGED, Status.ERROR)
            assert {r.task for r in store.runs(c.id, rung=1)} == {"breakout@40960"}
    shown = json.loads(runner.invoke(app, ["show", str(out), "--json"]).stdout)
    assert [r["steps"] for r in shown["rungs"]] == [20480, 40960]  # each rung's budget
    listed = runner.invoke(app, ["runs", str(tmp_path), "--json"]).stdout
    assert json.loads(listed)[0]["suite"] == f"tiny-file ({path})"  # its name, then the file
    path.unlink()  # the run keeps its suite: it resumes without the file
    again = runner.invoke(app, ["evolve", "--resume", str(out), "--budget", "5", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["rungs"][0]["evaluated"] == 5
