"""Trainer and env defaults are defined once, in Python; the C++ core requires every field.

evozero.TrainConfig holds the trainer's defaults, evozero.envs the envs'. The core has
none of its own: the training call takes every trainer field by name (and nothing else),
the env classes take every option.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import fields

import pytest

from evozero import _core
from evozero.native.compile import compile_program
from evozero.native.envs import DIFFICULTY_RAMPING, STICKY_ACTION_PROB, MinAtarVecEnv
from evozero.native.train import ENV_FIELDS, TrainConfig
from evozero.program import dsl

SMALL = TrainConfig(total_steps=256, num_envs=2, num_steps=16, num_minibatches=2)


def test_the_core_reads_every_trainer_field_and_only_those() -> None:
    trainer_fields = {f.name for f in fields(TrainConfig)} - ENV_FIELDS
    assert set(_core.testing.TRAIN_CONFIG_FIELDS) == trainer_fields
    assert set(SMALL.trainer_options()) == trainer_fields
    assert {f.name for f in fields(TrainConfig)} > ENV_FIELDS


def _train(options: dict[str, object]) -> dict[str, object]:
    rule = _core.Interpreter(**compile_program(dsl.load("programs/ppo.evz")).arrays())
    return _core.train_minatar(
        "breakout",
        SMALL.num_envs,
        STICKY_ACTION_PROB,
        DIFFICULTY_RAMPING,
        True,
        0,
        rule,
        options,
        0,
        _core.TrainProgress(),
    )


def test_the_core_takes_the_python_options() -> None:
    result = _train(SMALL.trainer_options())
    assert result["status"] == "ok" and result["steps"] == 256


@pytest.mark.parametrize("missing", sorted(SMALL.trainer_options()))
def test_a_missing_trainer_field_is_an_error(missing: str) -> None:
    options = {k: v for k, v in SMALL.trainer_options().items() if k != missing}
    with pytest.raises(ValueError, match=f"lack '{missing}'"):
        _train(options)


def test_an_unknown_trainer_field_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown field 'num_envs'"):
        _train({**SMALL.trainer_options(), "num_envs": 2})


def test_the_core_envs_have_no_defaults() -> None:
    with pytest.raises(TypeError):
        _core.MinAtarVecEnv("breakout", 1)
    env = _core.MinAtarVecEnv("breakout", 1, STICKY_ACTION_PROB, DIFFICULTY_RAMPING, False, 0)
    assert env.num_actions == 6


def test_env_defaults_are_minatars() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from minatar import Environment
    reference = inspect.signature(Environment).parameters
    assert reference["sticky_action_prob"].default == STICKY_ACTION_PROB
    assert reference["difficulty_ramping"].default == DIFFICULTY_RAMPING
    ours = inspect.signature(MinAtarVecEnv).parameters
    assert ours["sticky_action_prob"].default == STICKY_ACTION_PROB
    assert ours["difficulty_ramping"].default == DIFFICULTY_RAMPING
    assert TrainConfig().sticky_action_prob == STICKY_ACTION_PROB
    assert TrainConfig().difficulty_ramping == DIFFICULTY_RAMPING
