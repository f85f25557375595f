"""Ctrl-C at a chosen moment of an ``evozero`` command, in a fresh process.

:func:`ctrl_c` runs this file as a script: it starts the command in-process (imports
done), waits until the moment ``condition`` names, then sends the process a real SIGINT,
as a terminal's Ctrl-C would, and notes when. The moments:

* ``thread:PREFIX`` -- a thread whose name starts with PREFIX is running (training:
  ``evozero-train-GAME-SEED``; a sympy simplify: ``evozero-time-limit``);
* ``phase:NAME`` -- the search has entered phase NAME (``normalizers``, ``report``);
* ``after:SECONDS`` -- that long after the command started.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

_MARK = "ctrl-c sent at "


@dataclass(frozen=True)
class Stopped:
    """How a command ended after Ctrl-C: its exit code, output, and the seconds from the
    signal to its exit (None if the moment never came)."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float | None


def ctrl_c(
    condition: str, args: list[str], *, env: dict[str, str] | None = None, timeout: float = 300
) -> Stopped:
    """Run ``evozero ARGS``, press Ctrl-C when ``condition`` holds, wait for the exit."""
    proc = subprocess.Popen(
        [sys.executable, __file__, condition, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    ended = time.time()
    sent = re.search(rf"^{_MARK}([\d.]+)\n", err, re.MULTILINE)
    err = err.replace(sent.group(0), "") if sent else err
    return Stopped(proc.returncode, out, err, ended - float(sent.group(1)) if sent else None)


def _main(condition: str, args: list[str]) -> None:
    from evozero.cli import app
    from evozero.search import driver

    phases: list[str] = []
    emit = driver.Search._emit

    def watch(self: driver.Search, phase: str, message: str = "") -> None:
        phases.append(phase)
        emit(self, phase, message)

    driver.Search._emit = watch  # observes; the search runs as it would
    kind, _, what = condition.partition(":")
    start = time.monotonic()

    def ready() -> bool:
        if kind == "thread":
            return any(t.name.startswith(what) for t in threading.enumerate())
        if kind == "phase":
            return what in phases
        if kind == "after":
            return time.monotonic() - start >= float(what)
        raise ValueError(f"unknown moment {condition!r}")

    def press() -> None:
        while not ready():
            time.sleep(0.01)
        sys.stderr.write(f"{_MARK}{time.time()}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=press, daemon=True).start()
    app(args, prog_name="evozero")


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2:])
