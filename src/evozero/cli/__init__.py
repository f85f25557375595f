"""The ``evozero`` command line (typer): one module per group of commands."""

from evozero.cli.app import app

__all__ = ["app"]
