"""``evozero eval`` end to end, on tiny budgets."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_checks import strict_json
from typer.testing import CliRunner

from evozero.cli import app
from evozero.native.envs import GAMES
from evozero.native.train import TrainConfig

runner = CliRunner()
TINY = ["--steps", "16384", "--seeds", "2"]


def test_eval_prints_a_table() -> None:
    result = runner.invoke(app, ["eval", "programs/ppo.evz", "--env", "breakout", *TINY])
    assert result.exit_code == 0, result.output
    assert "final return" in result.output and "mean ± std" in result.output


def test_eval_json_and_plot(tmp_path: Path) -> None:
    plot = tmp_path / "curve.png"
    result = runner.invoke(
        app,
        ["eval", "programs/a2c.evz", "--env", "CartPole-v1", *TINY, "--json", "--plot", str(plot)],
    )
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert [r["seed"] for r in data["runs"]] == [0, 1]
    assert all(r["status"] == "ok" and r["steps"] == 16384 for r in data["runs"])
    assert data["final_return_mean"] > 0
    assert plot.stat().st_size > 1000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_eval_says_the_steps_trained_not_only_the_steps_asked() -> None:
    """The trainer runs whole updates: --steps 20000 over updates of 8192 trains 16384."""
    config = TrainConfig(total_steps=20_000)
    trained = config.num_updates * config.num_envs * config.num_steps
    assert trained != 20_000
    args = ["eval", "programs/ppo.evz", "--steps", "20000", "--seeds", "1"]
    data = strict_json(runner.invoke(app, [*args, "--json"]).stdout)
    assert (data["steps"], data["steps_asked"]) == (trained, 20_000)
    assert data["runs"][0]["steps"] == trained
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    title = " ".join(result.output.split())
    assert f"{trained:,} steps per run" in title and "20,000 steps per run" not in title
    assert "--steps 20,000" in title


def test_eval_network_conv_is_recorded() -> None:
    result = runner.invoke(
        app,
        ["eval", "programs/ppo.evz", "--env", "asterix", "--network", "Conv"]
        + ["--steps", "8192", "--seeds", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["network"] == "conv" and data["runs"][0]["status"] == "ok"


def test_eval_json_writes_null_for_a_run_that_ended_no_episode() -> None:
    # Freeway episodes last 2,500 steps: no env ends one in 16,384 steps over 64 envs.
    result = runner.invoke(
        app,
        [
            "eval",
            "programs/ppo.evz",
            "--env",
            "freeway",
            "--steps",
            "16384",
            "--seeds",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["runs"][0]["episodes"] == 0 and data["runs"][0]["status"] == "ok"
    assert data["runs"][0]["final_return"] is None and data["final_return_mean"] is None


def test_games_json_writes_null_for_a_game_that_ended_no_episode() -> None:
    result = runner.invoke(app, ["games", "--steps", "64", "--num-envs", "64", "--json"])
    assert result.exit_code == 0, result.output
    rows = strict_json(result.stdout)
    assert [r["game"] for r in rows] == list(GAMES)
    assert all(r["episodes"] == 0 and r["mean_return"] is None for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "nope.evz"], "PROGRAM: nope.evz does not exist"),
        (["eval", "programs/ppo.evz", "--seeds", "0"], "--seeds: 0 is out of range"),
        (["eval", "programs/ppo.evz", "--steps", "10"], "less than one rollout"),
        (["eval", "programs/ppo.evz", "--env", "Nope-v0", *TINY], "not a native game"),
        (["eval", "programs/ppo.evz", "--env", "Pendulum-v1", *TINY], "Discrete action"),
        (["eval", "programs/ppo.evz", "--env", "breakout-v1", *TINY], "mean 'breakout'?"),
        (
            ["eval", "programs/ppo.evz", "--env", "MinAtar/SpaceInvaders-v1", *TINY],
            "mean 'space_invaders'?",
        ),
        (["eval", "programs/ppo.evz", "--env", "evozero/Breakout-v1", *TINY], "mean 'breakout'?"),
        (
            ["eval", "programs/ppo.evz", "--env", "CartPole-v1", "--network", "conv", *TINY],
            "--network conv needs a native game",
        ),
        (
            ["eval", "programs/ppo.evz", "--env", "Breakout", "--network", "conv", *TINY],
            "is not one; did you mean 'breakout'?",
        ),
        (["eval", "programs/ppo.evz", "--network", "resnet", *TINY], "--network resnet: not a"),
        (["eval", "programs/ppo.evz", "--device", "tpu", *TINY], "--device must be cpu or cuda"),
        (
            ["eval", "programs/ppo.evz", "--env", "CartPole-v1", "--device", "CUDA", *TINY],
            "drop --device cuda to train CartPole-v1 on the CPU",
        ),
        (
            ["eval", "programs/ppo.evz", *TINY, "--plot", "/no/such/dir/c.png"],
            "directory /no/such/dir does not exist",
        ),
    ],
)
def test_eval_bad_input(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_eval_device_cuda_without_a_gpu_says_what_is_missing(no_gpu) -> None:
    result = runner.invoke(app, ["eval", "programs/ppo.evz", "--device", "cuda", *TINY])
    assert result.exit_code == 2
    assert "--device cuda: " in result.output and "CUDA" in result.output
    assert "Traceback" not in result.output


def test_eval_parse_error_names_file_line_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.evz"
    bad.write_text("scan:\n  adv = r +\n")
    result = runner.invoke(app, ["eval", str(bad), *TINY])
    assert result.exit_code == 2
    assert f"{bad}:2:" in result.output
