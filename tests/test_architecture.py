"""The package layout is the data flow: layers import only downstream of themselves.

program → native → search → refine → export → analysis → cli. ``evozero.program`` is usable
without the compiled extension or gymnasium, and ``import evozero`` loads neither the native
core nor any subpackage until it is used.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import evozero

PACKAGE = Path(evozero.__file__).parent

#: What each layer may import from evozero (besides itself and the top-level modules).
ALLOWED: dict[str, set[str]] = {
    "program": set(),
    "native": {"program"},
    "search": {"program", "native"},
    "export": {"program"},
    "refine": {"program", "native", "search"},
    "analysis": {"program", "native", "search", "export"},
    "cli": {"program", "native", "search", "export", "refine", "analysis"},
}
TOP_LEVEL = {"evozero", "evozero.status", "evozero.envs", "evozero._core"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module_level_only: bool) -> set[str]:
    """evozero modules imported by a file (outside ``if TYPE_CHECKING:`` blocks)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt], top: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("evozero"))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("evozero"):
                mod = node.module or ""
                for a in node.names:  # `from evozero.x import y`: y may be a submodule
                    sub = f"{mod}.{a.name}"
                    found.add(
                        sub
                        if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                        or (PACKAGE.parent / sub.replace(".", "/")).is_dir()
                        else mod
                    )
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list) and children and isinstance(children[0], ast.AST):
                    is_def = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    if not (module_level_only and is_def):
                        visit(children, top and not is_def)

    visit(tree.body, True)
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "programs" not in p.parts}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def test_layers_import_only_downstream() -> None:
    bad = []
    for name, path in _modules().items():
        layer = _layer(name)
        if layer is None:
            continue
        for target in _imports(path, module_level_only=False):
            other = _layer(target)
            if target in TOP_LEVEL or other in (None, layer) or other in ALLOWED[layer]:
                continue
            bad.append(f"{name} imports {target}")
    assert not bad, "layering violations:\n" + "\n".join(sorted(bad))


def test_no_import_cycles_at_module_level() -> None:
    graph = nx.DiGraph()
    for name, path in _modules().items():
        graph.add_node(name)
        for target in _imports(path, module_level_only=True):
            if target != name and not name.startswith(target + "."):  # a package's own parent
                graph.add_edge(name, target)
    cycles = [c for c in nx.simple_cycles(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles[:5]}"


_BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r} or name == 'evozero._core':
            raise ImportError('blocked by the test: ' + name)
sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize("blocked", [["gymnasium"], []])
def test_program_layer_needs_neither_native_core_nor_gymnasium(blocked: list[str]) -> None:
    code = _BLOCKER.format(blocked=set(blocked)) + (
        "import evozero.program\n"
        "from evozero.program import dsl, evaluate, canon, mutate\n"
        "text = 'scan:\\n  adv = r\\n  vtarget = v\\nobjective:\\n  loss = -logp * adv\\n'\n"
        "p = dsl.parse(text)\n"
        "print(canon.canonical_key(p)[:2], 'evozero._core' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["s:", "False"]


def test_import_evozero_is_lazy_and_registers_gym_ids() -> None:
    code = (
        "import sys, evozero, gymnasium as gym\n"
        "print(sorted(m for m in sys.modules if m.startswith('evozero')))\n"
        "print('evozero/Breakout-v1' in gym.registry)\n"
        "env = gym.make_vec('evozero/Breakout-v1', num_envs=2)\n"
        "print(type(env).__name__, 'evozero._core' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded, registered, made = out.stdout.splitlines()
    assert "evozero._core" not in loaded and "evozero.search" not in loaded
    assert registered == "True"
    assert made == "MinAtarVecEnv True"


def test_public_api_resolves() -> None:
    assert set(evozero.__all__) == {"__version__", "envs", *evozero._EXPORTS}
    for name in evozero.__all__:
        assert getattr(evozero, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        evozero.nope  # noqa: B018


def test_game_list_matches_native_core() -> None:
    from evozero import _core
    from evozero.native.gym_ids import GAMES

    assert tuple(_core.GAMES) == GAMES


def test_docs_map_every_module() -> None:
    """docs/ARCHITECTURE.md names every module of the package, and nothing that is gone."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:\w+/)?\w+\.py)`", doc))
    modules = {
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "programs" not in p.parts
        and (p.name != "__init__.py" or p.parent == PACKAGE)
        and p.name != "__main__.py"
    }
    assert modules - named == set(), "add these modules to docs/ARCHITECTURE.md"
    gone = {
        n for n in named if "/" in n and n.split("/")[0] in ALLOWED and not (PACKAGE / n).exists()
    }
    assert gone == set(), "docs/ARCHITECTURE.md names modules that do not exist"
