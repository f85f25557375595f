"""Ctrl-C stops every command promptly (issue 11, item 5): exit code 130, a one-line note
of what was kept, and the finished part kept. ``evolve``'s Ctrl-C tests, which need its
run store, are in tests/test_cli_evolve.py.

A command that ran on would take hours here; "promptly" is checked against a generous
bound (10 s from the signal to the exit, startup not included), as a behaviour, not a speed.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest

TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from ctrl_c import ctrl_c  # noqa: E402

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
PPO = str(PROGRAMS / "ppo.evz")
PROMPTLY = 10.0  # seconds from Ctrl-C to the exit


def test_eval_stops_every_run_and_says_none_finished() -> None:
    run = ctrl_c(
        "thread:evozero-train-",
        ["eval", PPO, "--steps", str(10**12), "--seeds", "2", "--workers", "2"],
    )
    assert run.returncode == 130, run.stderr
    assert run.seconds is not None and run.seconds < PROMPTLY
    assert run.stderr.strip() == "interrupted: 0 of 2 seed(s) finished"


def test_eval_keeps_the_seeds_that_finished() -> None:
    # One worker: seed 1 starts when seed 0 has finished; Ctrl-C lands during seed 1.
    run = ctrl_c(
        "thread:evozero-train-breakout-1",
        ["eval", PPO, "--steps", str(2**18), "--seeds", "2", "--workers", "1", "--json"],
    )
    assert run.returncode == 130, run.stderr
    assert run.seconds is not None and run.seconds < PROMPTLY
    assert "interrupted: 1 of 2 seed(s) finished" in run.stderr
    data = json.loads(run.stdout)
    assert data["interrupted"] is True
    assert [r["seed"] for r in data["runs"]] == [0]
    assert data["runs"][0]["steps"] == 2**18 and data["runs"][0]["status"] == "ok"


def test_show_simplify_stops_during_a_long_simplify(tmp_path: Path) -> None:
    slow = tmp_path / "slow.evz"  # sympy takes minutes over this loss
    slow.write_text(
        "scan:\n  adv = r\n  vtarget = v\nobjective:\n"
        "  a = tanh(v - vtarget) * sigmoid(logp - v_old) + exp(entropy * adv)\n"
        "  b = tanh(a * a + logp) * sigmoid(a - v) + exp(a * v_old)\n"
        "  c = tanh(b * a + entropy) * sigmoid(b - a) + log(square(b) + 1)\n"
        "  loss = -logp * adv + c * b - a\n"
    )
    run = ctrl_c(
        "thread:evozero-time-limit", ["show", str(slow), "--simplify", "--timeout", "86400"]
    )
    assert run.returncode == 130, run.stderr
    assert run.seconds is not None and run.seconds < PROMPTLY
    assert run.stderr.strip() == "interrupted: stopped by Ctrl-C"


@pytest.mark.parametrize("args", [["games", "--steps", str(10**15)]])
def test_other_commands_stop(args: list[str]) -> None:
    run = ctrl_c("after:1", args)
    assert run.returncode == 130, run.stderr
    assert run.seconds is not None and run.seconds < PROMPTLY
    assert run.stderr.strip() == "interrupted: stopped by Ctrl-C"


def test_refine_validation_cancels_its_trainings_on_ctrl_c(monkeypatch) -> None:
    """``refine`` (and ``evolve --refine-top``) end with a validation that trains on worker
    threads; Ctrl-C in the main thread must cancel those runs, not wait for them to end
    (a lifetime of the run's suite: minutes)."""
    import signal
    import threading
    import time

    from evozero.program import dsl
    from evozero.refine import validate as validation

    started, ended = threading.Barrier(2), threading.Semaphore(0)
    cancelled: list[bool] = []

    def ctrl_c_to_main() -> None:
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    def fake_train(program, env, config, seed=0, stop=None, **kwargs):
        started.wait(timeout=30)
        first = seed == validation.VALIDATION_SEED0
        if stop is None:  # cannot be cancelled: it runs on
            if first:
                ctrl_c_to_main()
            time.sleep(2)
        else:
            # Ctrl-C while both runs are in flight, again every 0.2 s until they are
            # cancelled: CPython misses a signal that lands just as its main thread blocks.
            for _ in range(150):
                if stop.is_set():
                    break
                if first:
                    ctrl_c_to_main()
                time.sleep(0.2)
        cancelled.append(stop is not None and stop.is_set())
        ended.release()
        raise KeyboardInterrupt

    monkeypatch.setattr(validation, "train", fake_train)
    program = dsl.load(PPO)
    with pytest.raises(KeyboardInterrupt):
        validation.validate(program, program, "breakout", None, seeds=2, workers=2)
    assert ended.acquire(timeout=60) and ended.acquire(timeout=60)
    assert cancelled == [True, True]


@pytest.mark.parametrize("args", [["suites", "tiny"]])
def test_a_training_in_the_calling_thread_is_cancelled_and_waited_for(
    args: list[str], tmp_path: Path
) -> None:
    """``suites`` measures the trainer's speed with a run in the main thread (as do
    ``refine --method metagrad``, ``evolve --backend serial`` and ``evozero.train``): Ctrl-C
    must cancel that run and wait for it, else the interpreter aborts at exit ("terminate
    called without an active exception", exit code -6)."""
    run = ctrl_c("thread:evozero-train-", args, env={"EVOZERO_CACHE_DIR": str(tmp_path)})
    assert run.returncode == 130, run.stderr
    assert run.seconds is not None and run.seconds < PROMPTLY
    assert run.stderr.strip() == "interrupted: stopped by Ctrl-C"


def test_ctrl_c_while_the_command_line_loads_is_the_one_line_note() -> None:
    """Ctrl-C in the first second, while ``evozero``'s modules import (before a command's
    own handler is in place), is the same note and exit code, not a traceback."""
    import subprocess

    press_during_import = (
        "import importlib.abc, os, signal, sys\n"
        "class Press(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'evozero.cli.search':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.meta_path.insert(0, Press())\n"
        "from evozero.cli import app\n"
        "app(['suites', '--help'], prog_name='evozero')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", press_during_import], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 130, run.stderr
    assert run.stderr.strip() == "interrupted: stopped by Ctrl-C"


def _console_script() -> tuple[str, str]:
    """The module and function of the ``evozero`` console script (pyproject.toml)."""
    import tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    target = tomllib.loads(pyproject.read_text())["project"]["scripts"]["evozero"]
    module, _, function = target.partition(":")
    return module, function


def test_the_console_script_loads_nothing_slow_before_its_ctrl_c_handler() -> None:
    """Python imports the console script's module (and the evozero package) before any of
    its code runs: they must load nothing slow, or a Ctrl-C then is a traceback."""
    import subprocess

    module, _ = _console_script()
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    slow = {"gymnasium", "numpy", "typer", "rich", "importlib.metadata", "evozero.cli"}
    assert slow.isdisjoint(json.loads(out.stdout)), out.stdout


@pytest.mark.parametrize("delay", [0.01, 0.05, 0.1, 0.2, 0.4])
def test_ctrl_c_at_any_moment_of_startup_is_the_one_line_note(delay: float) -> None:
    """Ctrl-C at a moment of ``evozero``'s startup (after the console script's module has
    loaded: Python's own startup is not evozero's): the note and exit 130, no traceback."""
    import subprocess
    import threading

    module, function = _console_script()
    script = f"import sys; from {module} import {function}; sys.exit({function}())"
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-c", script, "games", "--steps", str(10**15)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        for line in proc.stderr:  # -X importtime: a line as each import ends
            lines.append(line)
            if line.rstrip().endswith(f"| {module}"):
                break
        rest = threading.Thread(target=lambda: lines.extend(proc.stderr or []))
        rest.start()  # keeps the pipe drained
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, "".join(lines)
        rest.join(timeout=60)
    finally:
        proc.kill()
    said = [line for line in lines if not line.startswith("import time:")]
    assert "".join(said).strip() == "interrupted: stopped by Ctrl-C", "".join(said)


def test_a_ctrl_c_that_library_code_wraps_is_still_a_ctrl_c(monkeypatch) -> None:
    """A Ctrl-C inside an import can reach the command as another exception (matplotlib's
    ``__set_name__`` turns it into a RuntimeError, in ``report``): still exit code 130."""
    from typer.testing import CliRunner

    from evozero.cli import app
    from evozero.program import dsl

    def wrapped(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise RuntimeError("Error calling __set_name__ on 'converter' in 'Axis'") from e

    monkeypatch.setattr(dsl, "load", wrapped)
    result = CliRunner().invoke(app, ["show", PPO])
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == "interrupted: stopped by Ctrl-C"
    monkeypatch.setattr(dsl, "load", lambda *a, **k: 1 / 0)  # other errors are not hidden
    assert isinstance(CliRunner().invoke(app, ["show", PPO]).exception, ZeroDivisionError)
