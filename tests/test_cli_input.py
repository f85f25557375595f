"""Every command's numbers and paths under bad values, and every command's help.

The flags are enumerated from the typer app, so a new flag (or command) is covered as
soon as it exists: each numeric or path flag must declare its kind
(:mod:`evozero.cli.params`), and every value outside that kind gives a non-zero exit, one
line on stderr that names the flag, and no traceback.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
import typer
from typer.testing import CliRunner

from evozero.cli import app
from evozero.cli.group import flowing
from evozero.cli.params import Integer, KeywordOrFile, PathArg, Positive, Seconds
from evozero.search.backends import MAX_WORKERS, make_backend

PPO = str(Path(__file__).resolve().parents[1] / "programs" / "ppo.evz")
runner = CliRunner()

#: A valid, cheap command line per command: (arguments, options). The options make a
#: command fail fast (with a message that names no flag under test) should a bad value
#: ever get through, so a regression costs no training.
BASE: dict[str, tuple[list[str], list[str]]] = {
    "games": ([], ["--steps", "1", "--num-envs", "1"]),
    "show": ([PPO], []),
    "export": ([PPO], ["-o", "{tmp}/rule.py", "--backend", "nope"]),
    "eval": ([PPO], ["--env", "Nope-v0", "--steps", "16384", "--seeds", "1"]),
    "evolve": ([], ["--budget", "1", "--suite", "nope", "--out", "{tmp}/run"]),
    "runs": (["{tmp}"], []),
    "suites": (["nope"], []),
    "explain": ([PPO], []),
    "report": (["{tmp}"], []),
    "refine": ([PPO], ["--method", "nope", "-o", "{tmp}/out"]),
}
KINDS = (Integer, Seconds, Positive, PathArg, KeywordOrFile)


def _bare(annotation: Any) -> Any:
    """``int`` from ``int | None`` or ``list[int]``."""
    if get_origin(annotation) in (Union, UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is list:
        annotation = get_args(annotation)[0]
    return annotation


def parameters() -> Iterator[tuple[str, Any, Any, Any]]:
    """(command, click parameter, bare annotation, parser) of every command's parameters."""
    for name, command in typer.main.get_command(app).commands.items():
        fn = inspect.unwrap(command.callback)
        hints, signature = get_type_hints(fn), inspect.signature(fn)
        for param in command.params:
            info = signature.parameters[param.name].default
            yield name, param, _bare(hints[param.name]), getattr(info, "parser", None)


def flag_of(param: Any) -> str:
    if param.param_type_name == "argument":
        return param.metavar
    return max(param.opts, key=len)


def checked_flags() -> list[tuple[str, str, Any]]:
    """(command, flag, parser) of every numeric and path flag."""
    return [
        (c, flag_of(p), parser)
        for c, p, annotation, parser in parameters()
        if annotation in (int, float, Path) or isinstance(parser, KINDS)
    ]


def test_every_numeric_and_path_flag_declares_its_kind() -> None:
    flags = [
        (c, flag_of(p), annotation, parser)
        for c, p, annotation, parser in parameters()
        if annotation in (int, float, Path)
    ]
    assert len(flags) >= 20  # the enumeration sees the app
    untyped = [(c, f, a) for c, f, a, parser in flags if not isinstance(parser, KINDS)]
    assert not untyped, f"give these a parser from evozero.cli.params: {untyped}"
    assert set(BASE) == set(typer.main.get_command(app).commands), "add the command to BASE"


def test_every_worker_count_is_bounded_by_the_one_limit() -> None:
    """A worker count starts that many processes or threads: a typo such as
    ``--workers 99999999999`` must be refused, not start processes until the machine
    stalls; every command and :func:`make_backend` share one bound."""
    workers = [(c, parser) for c, p, _, parser in parameters() if flag_of(p) == "--workers"]
    assert {c for c, _ in workers} >= {"eval", "evolve", "refine"}
    assert {c: parser.hi for c, parser in workers} == {c: MAX_WORKERS for c, _ in workers}
    with pytest.raises(ValueError, match=f"from 1 to {MAX_WORKERS}"):
        make_backend("process", json.dumps, workers=MAX_WORKERS + 1)


def unwritable_directory(tmp: Path) -> Path:
    """A directory no file can be created in, for this user."""
    if os.geteuid() != 0:
        ro = tmp / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    if Path("/sys/kernel").is_dir():
        return Path("/sys")  # sysfs refuses new files even to root
    pytest.skip("no directory is unwritable for root here")


def bad_values(parser: Any, tmp: Path) -> list[str]:
    """Values outside ``parser``'s kind (the table of the issue, and the range's ends)."""
    if isinstance(parser, Integer):
        values = {parser.lo - 1, parser.hi + 1, 2**64, -1 if parser.lo > -1 else parser.lo - 2}
        return [str(v) for v in sorted(values)] + ["1e309", "nan", "inf", "abc", "", "1.5"]
    if isinstance(parser, Seconds):
        return ["-1", "-1e-9", "nan", "inf", "-inf", "1e309", repr(parser.hi * 2), "abc", ""]
    if isinstance(parser, Positive):
        return ["0", "-1e-9", "nan", "inf", "-inf", "1e309", repr(parser.hi * 2), "abc", ""]
    a_file = tmp / "a-file"
    a_file.write_text("not a directory\n")
    a_dir = tmp / "a-dir"
    a_dir.mkdir(exist_ok=True)
    missing, under_a_file = tmp / "missing", a_file / "sub"
    in_missing_dir = tmp / "no-such-dir" / "x"
    unwritable = unwritable_directory(tmp) / "x"
    table = {
        "file": [missing, a_dir, under_a_file, in_missing_dir],
        "file or directory": [missing, under_a_file, in_missing_dir],
        "directory": [missing, a_file, under_a_file, in_missing_dir],
        "new file": [a_dir, under_a_file, in_missing_dir, unwritable],
        "new directory": [a_file, under_a_file, unwritable],
    }
    return [str(p) for p in table[parser.expects]] + [""]


def invoke_with(command: str, flag: str, value: str, tmp: Path):
    args, options = BASE[command]
    args, options = list(args), list(options)
    if flag.startswith("-"):
        options += [flag, value]  # the last one given wins
    else:
        positions = [
            flag_of(p)
            for p in typer.main.get_command(app).commands[command].params
            if p.param_type_name == "argument"
        ]
        args[positions.index(flag)] = value
    line = [command, *args, *options]
    return runner.invoke(app, [a.replace("{tmp}", str(tmp)) for a in line])


@pytest.mark.parametrize(
    ("command", "flag", "parser"), [pytest.param(*f, id=f"{f[0]} {f[1]}") for f in checked_flags()]
)
def test_bad_values_are_one_line_naming_the_flag(
    command: str, flag: str, parser: Any, tmp_path: Path
) -> None:
    for value in bad_values(parser, tmp_path):
        result = invoke_with(command, flag, value, tmp_path)
        what = f"{command} {flag} {value!r}"
        assert result.exit_code not in (0, None), f"{what} was accepted: {result.output}"
        assert "Traceback" not in result.output, what
        assert result.exception is None or isinstance(result.exception, SystemExit), what
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"{what}: {result.stderr}"
        assert lines[0].startswith(f"error: {flag}: "), f"{what}: {lines[0]}"


def test_good_values_pass(tmp_path: Path) -> None:
    """The kinds refuse what they should and no more: the ends of the ranges pass."""
    assert Integer(1, 5)(" 5 ") == 5 and Integer(0)("0") == 0
    assert Seconds()("0") == 0.0 and Seconds()("86400") == 86400.0
    assert PathArg("new directory", "")(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"
    assert PathArg("new file", "")(str(tmp_path / "x.py")) == tmp_path / "x.py"
    assert KeywordOrFile(("seeds",))("seeds") == "seeds"
    assert KeywordOrFile(("seeds",))(PPO) == PPO


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", PPO, "--stepz", "5"], "No such option: --stepz"),
        (["eval"], "Missing argument 'PROGRAM'"),
        (["export", PPO], "Missing option '-o' / '--output'"),
        (["nope"], "No such command 'nope'"),
    ],
)
def test_other_usage_errors_are_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr and "--help" in result.stderr


# ----------------------------------------------------------------------------- help

TYPE_METAVAR = re.compile(r"<(bool|int|float|str|path|Path|list\[[^\]]*\]|[a-z]+ range)>")


def help_text(*command: str, width: int) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(
    "command", [(), *[(c,) for c in BASE]], ids=lambda c: c[0] if c else "evozero"
)
def test_help_reads_like_a_well_kept_cli(command: tuple[str, ...]) -> None:
    text = help_text(*command, width=80)
    assert not TYPE_METAVAR.search(text), TYPE_METAVAR.search(text)
    assert "{" not in text.splitlines()[1], "usage writes arguments as NAME / [NAME]"
    assert max(map(len, text.splitlines())) <= 80


def test_help_descriptions_flow() -> None:
    """Each command's description is its docstring's paragraphs, not its source lines:
    at a width where nothing wraps, each paragraph is on one line (the list of commands
    shows the first)."""
    group = typer.main.get_command(app)
    listing = help_text(width=1000)
    for name, command in group.commands.items():
        doc = flowing(inspect.getdoc(inspect.unwrap(command.callback)))
        paragraphs = doc.split("\n\n")
        assert any(paragraphs[0] in line for line in listing.splitlines()), name
        own = help_text(name, width=1000)
        for paragraph in paragraphs:
            assert any(paragraph in line for line in own.splitlines()), (name, paragraph)
