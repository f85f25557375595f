"""Job functions for tests/test_backends.py.

They live in their own module so that spawned worker processes and Ray actors can
import them by name. ``dispatch`` runs the one that ``payload["op"]`` names, so that one
backend can run them all.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def echo(payload: dict) -> dict:
    """The payload, its square and the worker's pid."""
    x = payload.get("x", 0)
    return {"x": x, "square": x * x, "pid": os.getpid()}


def sleep_then_echo(payload: dict) -> dict:
    """Sleeps ``payload["seconds"]``, then echoes. With ``pidfile``, first writes the pid
    there (so a test can find the busy worker)."""
    if "pidfile" in payload:
        path = Path(payload["pidfile"])
        path.with_suffix(".tmp").write_text(str(os.getpid()))
        path.with_suffix(".tmp").rename(path)
    time.sleep(payload["seconds"])
    return echo(payload)


def raise_error(payload: dict) -> dict:
    raise ValueError(f"bad payload\n{payload.get('x')}")


def exit_hard(payload: dict) -> dict:
    os._exit(3)


def kill_self(payload: dict) -> dict:
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)
    return {}


def not_a_dict(payload: dict) -> dict:
    return [1, 2]  # type: ignore[return-value]


OPS = {
    "echo": echo,
    "sleep": sleep_then_echo,
    "raise": raise_error,
    "exit": exit_hard,
    "kill": kill_self,
    "list": not_a_dict,
}


def dispatch(payload: dict) -> dict:
    """Runs ``OPS[payload["op"]]`` (default ``echo``)."""
    return OPS[payload.get("op", "echo")](payload)
