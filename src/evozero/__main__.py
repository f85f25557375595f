"""``python -m evozero``: the command line."""

from evozero.cli import app

app(prog_name="evozero")
