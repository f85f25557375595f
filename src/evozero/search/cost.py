"""What a suite costs per candidate on this machine.

The estimate is env steps divided by the trainer's speed: for each distinct (env, trainer
settings) of a suite's hurdle and rungs, ``ppo.evz`` is trained once for
:data:`SPEED_STEPS` env steps (seed 0, one core) and its steps per second are cached in
``speed.json`` in evozero's cache directory, keyed by the evozero version, the host and
the task's settings. A candidate pays the hurdle and rung 0; a fraction ``promote**k`` of
them also pays rung ``k``. Real candidates run at about ppo.evz's speed (the network and
the env dominate, not the rule); culled candidates pay less, so the figure is an upper
bound at rung 0.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import evozero
from evozero.native.train import train
from evozero.search.fitness import cache_dir, reference_program
from evozero.search.tasks import Suite, Task

#: Env steps of the run that measures a task's trainer speed (at least one rollout).
SPEED_STEPS = 32_768


def _key(task: Task) -> str:
    spec = json.dumps({"env": task.env, "config": task.config}, sort_keys=True)
    return f"{evozero.__version__}|{platform.node()}|{os.cpu_count()}|{spec}"


def trainer_speed(task: Task, path: Path | None = None) -> float:
    """Env steps per second of one training run of ``task``'s env and settings on this
    machine (measured once, then read from the cache)."""
    path = path or cache_dir() / "speed.json"
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    key = _key(task)
    if isinstance(cached.get(key), (int, float)) and cached[key] > 0:
        return float(cached[key])
    config = task.train_config()
    steps = max(SPEED_STEPS, config.num_envs * config.num_steps)
    result = train(reference_program("ppo"), task.env, config.replace(total_steps=steps), 0)
    speed = result.steps / max(result.seconds, 1e-9)
    cached[key] = speed
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".speed-")
    with os.fdopen(fd, "w") as f:
        json.dump(cached, f, indent=0, sort_keys=True)
    os.replace(tmp, path)
    return speed


def suite_cost(suite: Suite, speed: Callable[[Task], float] = trainer_speed) -> dict[str, Any]:
    """Estimated seconds of one worker per candidate: the hurdle's, each rung's, and the
    expected total of a candidate entering rung 0 (rung ``k`` weighted by ``promote**k``)."""

    def seconds(tasks: tuple[Task, ...]) -> float:
        return sum(t.steps * len(t.seeds) / speed(t) for t in tasks)

    hurdle = seconds((suite.hurdle,)) if suite.hurdle else 0.0
    rungs = [seconds(tasks) for tasks in suite.rungs]
    return {
        "hurdle_seconds": hurdle,
        "rung_seconds": rungs,
        "expected_seconds": hurdle + sum(s * suite.promote**k for k, s in enumerate(rungs)),
    }
