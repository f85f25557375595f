"""The text that exports copy from the runtime modules (``runtime_numpy``, ``runtime_torch``).

The runtime modules are real, linted modules; an exported rule is one standalone file, so
it carries a copy of what it uses from them. They are read as source files (through
:mod:`importlib.resources`), never imported: generating a torch export must not need
torch, nor a numpy export numba.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from importlib import resources

__all__ = ["Runtime", "runtime"]


@dataclass(frozen=True)
class Runtime:
    """What an export copies from one runtime module.

    Attributes:
        prelude: its top-level imports (evozero's excepted) and guarded optional imports
            (``try``/``except``), as written, separated by blank lines.
        functions: its top-level functions' source text (decorators included), by name,
            in the module's order.
    """

    prelude: str
    functions: dict[str, str]


def _from_evozero(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "evozero"
    return isinstance(node, ast.Import) and any(
        a.name.split(".")[0] == "evozero" for a in node.names
    )


@functools.cache
def runtime(module: str) -> Runtime:
    """The :class:`Runtime` of ``evozero.export.<module>``.

    Raises:
        FileNotFoundError: no such module file in the package.
    """
    text = resources.files(__package__).joinpath(f"{module}.py").read_text(encoding="utf-8")
    lines = text.splitlines()
    prelude: list[str] = []
    functions: dict[str, str] = {}
    for node in ast.parse(text).body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Try)) and not _from_evozero(node):
            segment = ast.get_source_segment(text, node)
            assert segment is not None
            prelude.append(segment)
        elif isinstance(node, ast.FunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            assert node.end_lineno is not None
            functions[node.name] = "\n".join(lines[first - 1 : node.end_lineno]) + "\n"
    return Runtime("\n\n".join(prelude), functions)
