"""The typer app of the ``evozero`` command line and the helpers its commands share.

The commands live in one module per group (:mod:`~evozero.cli.train`,
:mod:`~evozero.cli.program`, :mod:`~evozero.cli.search`); :mod:`evozero.cli` registers
them on :data:`app`.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

import evozero
from evozero import _console
from evozero.cli.group import Group
from evozero.program import dsl
from evozero.program.errors import ProgramError
from evozero.program.model import Program

if TYPE_CHECKING:
    from evozero.native.train import TrainConfig
    from evozero.search.store import RunStore

app = typer.Typer(
    cls=Group,
    help="Discover reinforcement-learning update rules by program search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def fail(message: str) -> None:
    """Exit with a one-line error (no traceback): what is wrong and how to fix it."""
    # soft_wrap: one line whatever the terminal width; escape: messages may hold '[...]'.
    Console(stderr=True).print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(2)


#: Exit code of a command stopped by Ctrl-C (128 + SIGINT, the shells' convention).
INTERRUPTED = _console.INTERRUPTED


def interrupted(message: str) -> NoReturn:
    """Exit after Ctrl-C with a one-line note of what was kept, code :data:`INTERRUPTED`."""
    Console(stderr=True).print(
        f"[bold yellow]interrupted:[/] {escape(message)}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(INTERRUPTED)


def _version(value: bool) -> None:
    if value:
        console.print(f"evozero {evozero.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """evozero: evolve RL update rules on native MinAtar."""


def load_program(path: Path) -> Program:
    """Read and parse a .evz file, or fail with a one-line message."""
    if not path.exists():
        fail(f"no such program file: {path}")
    if not path.is_file():
        fail(f"not a file: {path}")
    try:
        return dsl.load(path)
    except ProgramError as e:
        fail(str(e))
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {path}: {e}")
    raise AssertionError("unreachable")


def with_network(config: TrainConfig, network: str, env: str) -> TrainConfig:
    """``config`` with ``--network NET`` (any case); a one-line error for an unknown
    network, or for conv on an env that is not a native game."""
    from evozero.native.envs import GAMES
    from evozero.native.gym_ids import did_you_mean_game
    from evozero.native.train import NETWORKS

    if network.lower() not in NETWORKS:
        fail(f"--network {network}: not a network; use one of {', '.join(NETWORKS)}")
    network = network.lower()
    config = config.replace(network=network)
    if network != "mlp" and env not in GAMES:
        fail(
            f"--network {network} needs a native game ({', '.join(GAMES)}); {env} is not "
            f"one{did_you_mean_game(env)}"
        )
    return config


def writable_dir(directory: Path, elsewhere: str, file: Path | None = None) -> None:
    """Fail, before any work, unless a file (``file``, if given) can be written in
    ``directory`` (made if missing); ``elsewhere`` is the fix, naming the flag (``pass
    --output FILE to ...``)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):  # a probe: root passes os.access checks
            pass
    except OSError as e:
        where = file or f"in {directory}"
        fail(f"cannot write {where}: {e.strerror or e}; {elsewhere}")


def warn(message: str) -> None:
    """A one-line warning on stderr (the command goes on)."""
    Console(stderr=True).print(
        f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True
    )


def warn_damaged(store: RunStore) -> None:
    """A line for each part of a run that was left out because it is damaged."""
    for where, why in store.damaged.items():
        warn(f"{store.directory}: {where} is damaged ({why}); left out")


P = ParamSpec("P")
T = TypeVar("T")


def store_errors(reader: Callable[P, T]) -> Callable[P, T]:
    """``reader`` of a run ends with the one line of a store error it meets midway (a
    damaged database, say)."""

    @functools.wraps(reader)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        from evozero.search.store import RunStoreError

        try:
            return reader(*args, **kwargs)
        except RunStoreError as e:
            fail(str(e))
        raise AssertionError("unreachable")

    return wrapper


def open_run(run_dir: Path, *, writer: str | None = None) -> RunStore:
    """Open the run store in ``run_dir`` (a reader, or as its ``writer``: see
    :meth:`RunStore.open`), or fail with a one-line message."""
    from evozero.search.store import RunStore, RunStoreError

    try:
        return RunStore.open(run_dir, writer=writer)
    except RunStoreError as e:
        fail(str(e))
    raise AssertionError("unreachable")
