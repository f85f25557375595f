"""``python -m evozero``: the command line."""

from evozero.cli.app import app

app(prog_name="evozero")
