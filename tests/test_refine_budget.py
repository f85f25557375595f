"""A refinement budget below one iteration is refused up front, naming the flag, the
least budget for the settings and the fix; only a kept refinement is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evozero.cli import app
from evozero.cli import refine as cli_refine
from evozero.native.train import TrainConfig
from evozero.program import dsl
from evozero.refine.run import RefineOutcome, RefineSettings, check_budget, iteration_steps, refine
from evozero.refine.schedule import checkpoint_updates
from evozero.refine.validate import Validation

PPO = dsl.load("programs/ppo.evz")
SMALL = TrainConfig(total_steps=8192 * 5, num_envs=8, num_steps=32, num_minibatches=4)


@pytest.mark.parametrize("method", ["es", "metagrad"])
def test_the_least_budget_is_one_iteration_of_the_settings(method: str) -> None:
    s = RefineSettings(method=method, config=SMALL, pairs=3, es_seeds=2)
    batch = SMALL.num_envs * SMALL.num_steps
    expected = (
        2 * 3 * 2 * SMALL.num_updates * batch
        if method == "es"
        else (checkpoint_updates(SMALL.num_updates, 3, s.k)[-1] + 1) * batch
    )
    least = iteration_steps(s)
    assert least == expected
    check_budget(
        RefineSettings(method=method, config=SMALL, pairs=3, es_seeds=2, budget_steps=least)
    )
    short = RefineSettings(method=method, config=SMALL, pairs=3, es_seeds=2, budget_steps=least - 1)
    with pytest.raises(ValueError) as e:
        check_budget(short, "--steps")
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"--steps {least - 1:,} is less than")
    assert f"({least:,} env steps" in message and message.endswith(f"pass --steps {least} or more")
    # refine() refuses before training anything, naming the API's argument.
    with pytest.raises(ValueError, match=f"budget_steps {least - 1:,} is less than"):
        refine(PPO, short)


def test_refine_command_refuses_steps_below_one_iteration(tmp_path: Path) -> None:
    least = iteration_steps(RefineSettings(method="es", config=TrainConfig(total_steps=16384)))
    args = ["refine", "programs/ppo.evz", "--method", "es", "--train-steps", "16384"]
    args += ["--steps", str(least - 1), "--backend", "serial", "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert f"--steps {least - 1:,} is less than one es iteration" in result.output
    assert f"pass --steps {least} or more" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kept", [True, False])
def test_only_a_kept_refinement_is_written(
    kept: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refined = PPO.with_constants({"eps": 0.1})
    lo = 0.5 if kept else -0.5
    outcome = RefineOutcome(PPO, refined, 10, 0.0, [], Validation((1, 2), (0, 0), (1, 1), lo, 1.5))
    monkeypatch.setattr(cli_refine, "refine", lambda *a, **k: outcome)
    args = ["refine", "programs/ppo.evz", "--method", "es", "--train-steps", "16384"]
    args += ["--backend", "serial", "-o", str(tmp_path)]
    shown = CliRunner().invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert ("wrote" in shown.output) == kept and ("nothing written" in shown.output) != kept
    written = tmp_path / "ppo.refined-es.evz"
    assert written.exists() == kept
    if kept:
        assert dsl.load(written).constant_values == refined.constant_values
        written.unlink()
    result = CliRunner().invoke(app, [*args, "--json"])
    (out,) = json.loads(result.stdout)
    assert out["kept"] == kept and out["refined"] == refined.constant_values
    assert out["output"] == (str(written) if kept else None)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["ppo.refined-es.evz"] if kept else [])


def test_a_runs_rules_are_validated_at_the_suites_target_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evozero.refine import run as refine_run
    from evozero.refine.stage import run_settings
    from evozero.search.tasks import get_suite

    s = run_settings(get_suite("standard"), method="es")
    assert (s.env, s.config.total_steps) == ("breakout", 500_000)  # where the rules learned
    assert (s.validation_env, s.validation_config.total_steps) == ("breakout", 2_000_000)
    assert s.config.network == s.validation_config.network == "conv"  # the suite's network

    # refine() hands the validation its own env and lifetime, not the refinement's.
    seen = {}

    def fake_validate(original, refined, env, config, seeds, workers=2):
        seen.update(env=env, steps=config.run_steps, seeds=seeds)
        return Validation((1,), (0.0,), (0.0,), 0.0, 0.0, env, config.run_steps)

    monkeypatch.setattr(refine_run, "validate", fake_validate)
    monkeypatch.setattr(
        refine_run, "_es", lambda program, space, s, on_event: (space.initial_theta(), 0, [])
    )
    long = TrainConfig(total_steps=SMALL.run_steps * 4, num_envs=8, num_steps=32, num_minibatches=4)
    settings = RefineSettings(
        method="es",
        config=SMALL,
        budget_steps=10**9,
        validation_seeds=3,
        validation_env="space_invaders",
        validation_config=long,
    )
    outcome = refine(PPO, settings)
    assert seen == {"env": "space_invaders", "steps": long.run_steps, "seeds": 3}
    assert (outcome.validation.env, outcome.validation.steps) == ("space_invaders", long.run_steps)


def test_refine_passes_pairs_and_meta_lr_and_refuses_bad_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    kept = Validation((1, 2), (0, 0), (1, 1), 0.5, 1.5)

    def fake(program, settings, on_event=lambda e: None):
        seen.append(settings)
        return RefineOutcome(program, program, 10, 0.0, [], kept)

    monkeypatch.setattr(cli_refine, "refine", fake)
    args = ["refine", "programs/ppo.evz", "--method", "es", "--train-steps", "16384"]
    args += ["--backend", "serial", "-o", str(tmp_path)]
    ok = CliRunner().invoke(app, [*args, "--pairs", "3", "--meta-lr", "0.2"])
    assert ok.exit_code == 0, ok.output
    assert (seen[0].pairs, seen[0].meta_lr) == (3, 0.2)
    for flag, value in [("--meta-lr", "0"), ("--meta-lr", "nan"), ("--pairs", "0")]:
        bad = CliRunner().invoke(app, [*args, flag, value])
        assert bad.exit_code == 2 and "Traceback" not in bad.output
        assert flag in bad.output and "out of range" in bad.output


def test_refine_names_the_lifetime_a_metagrad_needs_and_env_is_for_program_files(
    tmp_path: Path,
) -> None:
    args = ["refine", "programs/ppo.evz", "--method", "metagrad", "--train-steps", "8192"]
    short = CliRunner().invoke(app, [*args, "-o", str(tmp_path)])
    assert short.exit_code == 2 and "Traceback" not in short.output
    assert "too short for metagrad" in short.output and "--train-steps" in short.output
    assert "16,384 env steps per lifetime" in short.output
    es = ["refine", "programs/ppo.evz", "--method", "es", "--train-steps", "8192"]
    one_update = CliRunner().invoke(app, [*es, "-o", str(tmp_path)])
    assert one_update.exit_code == 2 and "too short for es" in one_update.output
    assert "16,384 env steps per lifetime" in one_update.output
    run = tmp_path / "run"
    run.mkdir()
    env = CliRunner().invoke(app, ["refine", str(run), "--env", "seaquest"])
    assert env.exit_code == 2 and "--env is for a program file" in env.output
