"""The ``evozero`` command line (typer): one module per group of commands.

:mod:`~evozero.cli.app` holds the app and the helpers the commands share, and
:mod:`~evozero.cli.output` how they print programs and JSON;
:mod:`~evozero.cli.train` has ``games`` and ``eval``, :mod:`~evozero.cli.program` has
``show`` and ``export``, :mod:`~evozero.cli.search` has ``evolve``, ``runs`` and ``suites``,
:mod:`~evozero.cli.analysis` has ``explain`` and ``report``, :mod:`~evozero.cli.refine` has
``refine``.
"""

import os
import signal
import sys
import threading


def _ctrl_c_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C before a command runs (its handler is not in place yet): the one-line note
    of every command, not a traceback from the middle of an import."""
    sys.stderr.write("interrupted: stopped by Ctrl-C\n")
    sys.stderr.flush()
    os._exit(130)  # nothing has started that would need cleaning up


# Only where Python's own handler is in place (not under a program's own, not off the
# main thread), and only while the command line's modules load.
_starting = (
    threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGINT) is signal.default_int_handler
)
if _starting:
    signal.signal(signal.SIGINT, _ctrl_c_while_starting)
try:
    from evozero.cli import analysis, program, refine, search, train
    from evozero.cli.app import app
    from evozero.cli.group import Command
finally:
    if _starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)

# Registered here, in the order ``evozero --help`` lists them.
app.command(cls=Command)(train.games)
app.command(cls=Command)(program.show)
app.command("export", cls=Command)(program.export_command)
app.command("eval", cls=Command)(train.eval_command)
app.command(cls=Command)(search.evolve)
app.command(cls=Command)(search.runs)
app.command(cls=Command)(search.suites)
app.command("explain", cls=Command)(analysis.explain_command)
app.command("report", cls=Command)(analysis.report_command)
app.command("refine", cls=Command)(refine.refine_command)

__all__ = ["app"]
