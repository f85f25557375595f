"""``evozero eval`` end to end, on tiny budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evozero.cli import app

runner = CliRunner()
TINY = ["--steps", "16384", "--seeds", "2"]


def test_eval_prints_a_table() -> None:
    result = runner.invoke(app, ["eval", "programs/ppo.evz", "--env", "breakout", *TINY])
    assert result.exit_code == 0, result.output
    assert "final return" in result.output and "mean ± std" in result.output


def test_eval_json_and_plot(tmp_path: Path) -> None:
    plot = tmp_path / "curve.png"
    result = runner.invoke(app, ["eval", "programs/a2c.evz", "--env", "CartPole-v1", *TINY,
                                 "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [r["seed"] for r in data["runs"]] == [0, 1]
    assert all(r["status"] == "ok" and r["steps"] == 16384 for r in data["runs"])
    assert data["final_return_mean"] > 0
    assert plot.stat().st_size > 1000 and plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "nope.evz"], "PROGRAM: nope.evz does not exist"),
        (["eval", "programs/ppo.evz", "--seeds", "0"], "--seeds: 0 is out of range"),
        (["eval", "programs/ppo.evz", "--steps", "10"], "less than one rollout"),
        (["eval", "programs/ppo.evz", "--env", "Nope-v0", *TINY], "not a native game"),
        (["eval", "programs/ppo.evz", "--env", "Pendulum-v1", *TINY], "Discrete action"),
        (["eval", "programs/ppo.evz", *TINY, "--plot", "/no/such/dir/c.png"],
         "directory /no/such/dir does not exist"),
    ],
)
def test_eval_bad_input(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_eval_parse_error_names_file_line_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.evz"
    bad.write_text("scan:\n  adv = r +\n")
    result = runner.invoke(app, ["eval", str(bad), *TINY])
    assert result.exit_code == 2
    assert f"{bad}:2:" in result.output
