"""The ``evozero`` console script and ``python -m evozero``: Ctrl-C is the command line's
one-line note from the first moment this module runs, not a traceback from the middle of
an import.

This module imports nothing of evozero's, and ``import evozero`` (which Python runs
first) is cheap, so the handler is in place before anything slow loads. The command's own
handling takes over when it starts (:mod:`evozero.cli.group`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

#: The note and exit code of a command stopped by Ctrl-C (evozero.cli.app's
#: ``interrupted``, which needs rich: this module must stay light).
NOTE, INTERRUPTED = "interrupted: stopped by Ctrl-C", 130


def ctrl_c_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C before a command runs: the one-line note of every command, exit 130."""
    sys.stderr.write(NOTE + "\n")
    sys.stderr.flush()
    os._exit(INTERRUPTED)  # nothing has started that would need cleaning up


def starting() -> bool:
    """Install :func:`ctrl_c_while_starting` where Python's own handler is in place (not
    under a program's own, not off the main thread); whether it was."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, ctrl_c_while_starting)
        return True
    return False


def started() -> None:
    """The command's own Ctrl-C handling is in place: Python's handler again (it raises
    KeyboardInterrupt, which the command turns into its note)."""
    if signal.getsignal(signal.SIGINT) is ctrl_c_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> None:
    """The console script: the Ctrl-C note first, then load and run the command line."""
    starting()
    from evozero.cli import app

    app(prog_name="evozero")
