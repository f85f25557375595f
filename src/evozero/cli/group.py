"""The typer classes behind ``evozero``: help that reads as prose, usage errors in one
line, and Ctrl-C as exit code 130 with a note.

:class:`Group` is the app's class and :class:`Command` every command's
(:mod:`evozero.cli` registers them with ``cls=Command``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from evozero import _console

# click's exceptions, from wherever this typer takes click (it may vendor its own copy).
_click_errors = importlib.import_module(typer.BadParameter.__module__)


def flowing(text: str | None) -> str | None:
    """A docstring as help text: its paragraphs kept, the line breaks inside them dropped
    (they are the source's, not the text's)."""
    if not text:
        return text
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _no_type(ctx: Any) -> None:
    return None


def _plain_types(params: list[Any]) -> list[Any]:
    """The help's type column: an option's value name (its metavar, e.g. STEPS), nothing
    for a flag or an argument (typer would show "<bool>" or "<Path>")."""
    for param in params:  # --help included
        if param.param_type_name == "option" and not getattr(param, "is_flag", False):
            param.metavar = param.metavar or param.name.upper()
        else:
            param.display_type_rich = _no_type
    return params


def flag_name(param: Any) -> str:
    """A parameter's name as a user types it: its long option, or an argument's metavar."""
    if param.param_type_name == "option":
        return max(param.opts, key=lambda o: (o.startswith("--"), len(o)))
    return param.metavar or param.name.upper()


@contextmanager
def _one_line_exits() -> Iterator[None]:
    """click's usage errors (a bad value, an unknown option, a missing argument) as one
    line that names the flag, instead of typer's usage-and-panel block; Ctrl-C as exit
    code 130 and a note, instead of typer's silent exit."""
    from evozero.cli.app import fail, interrupted  # app imports this module

    try:
        yield
    except _click_errors.NoArgsIsHelpError:  # `evozero` alone: the help, as typer prints it
        raise
    except _click_errors.UsageError as e:
        param = getattr(e, "param", None)
        if (
            isinstance(e, _click_errors.BadParameter)
            and param is not None
            and not isinstance(e, _click_errors.MissingParameter)
        ):
            fail(f"{flag_name(param)}: {e.message}")  # the parsers' messages say what to give
        where = e.ctx.command_path if e.ctx is not None else "evozero"
        fail(f"{e.format_message()} (see `{where} --help`)")
    except KeyboardInterrupt:
        interrupted("stopped by Ctrl-C")
    except (typer.Exit, typer.Abort, _click_errors.ClickException):
        raise
    except Exception as e:
        # Library code can wrap a Ctrl-C in another exception: one that lands in an
        # import during a class body's __set_name__ (matplotlib's) is a RuntimeError.
        if _caused_by_ctrl_c(e):
            interrupted("stopped by Ctrl-C")
        raise


def _caused_by_ctrl_c(e: BaseException) -> bool:
    """Whether a KeyboardInterrupt is in ``e``'s chain of causes and contexts."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


class Command(TyperCommand):
    """A command whose help reads as prose: the docstring flows, flags show no type."""

    def __init__(self, *args: Any, help: str | None = None, **kwargs: Any) -> None:  # noqa: A002
        super().__init__(*args, help=flowing(help), **kwargs)

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_types(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] PROGRAM``, ``[ROOT]``: arguments as click writes them (typer would
        write a required one as ``{PROGRAM}``)."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = flag_name(param) + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces += param.get_usage_pieces(ctx)
        return pieces


class Group(TyperGroup):
    """The ``evozero`` group: usage errors in one line, and Ctrl-C anywhere exits with code
    130 and a note (commands that keep partial results say what they kept)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_types(super().get_params(ctx))

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line_exits():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_exits():  # a command's own options are parsed in here too
            _console.started()  # from here a Ctrl-C is a KeyboardInterrupt, caught above
            return super().invoke(ctx)
