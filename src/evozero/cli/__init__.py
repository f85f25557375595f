"""The ``evozero`` command line (typer): one module per group of commands.

:mod:`~evozero.cli.app` holds the app and the helpers the commands share, and
:mod:`~evozero.cli.output` how they print programs and JSON;
:mod:`~evozero.cli.train` has ``games`` and ``eval``, :mod:`~evozero.cli.program` has
``show`` and ``export``, :mod:`~evozero.cli.search` has ``evolve``, ``runs`` and ``suites``,
:mod:`~evozero.cli.analysis` has ``explain`` and ``report``, :mod:`~evozero.cli.refine` has
``refine``.
"""

from evozero import _console

# Imported by a program of its own (not by the console script, whose handler is already in
# place): the one-line note while the command line's modules load, then Python's handler.
_starting = _console.starting()
try:
    from evozero.cli import analysis, program, refine, search, train
    from evozero.cli.app import app
    from evozero.cli.group import Command
finally:
    if _starting:
        _console.started()

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
