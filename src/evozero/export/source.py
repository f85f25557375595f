"""Standalone Python modules from programs: :func:`export_source` and :func:`write_export`.

An exported module implements a program's live code as ``scan``, ``post`` and
``objective`` functions (numpy/numba or torch) and imports nothing from evozero: it holds
a docstring with the pseudocode, the runtime module's imports, the constants, the
protection constants, the runtime helpers the program uses (copied verbatim,
:mod:`~evozero.export.embed`) and the generated functions
(:mod:`~evozero.export.codegen` and its backends).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import evozero
from evozero.export.codegen import Codegen
from evozero.export.embed import runtime
from evozero.export.numpy_codegen import NumpyCodegen
from evozero.export.pseudocode import live_program, pseudocode
from evozero.export.torch_codegen import TorchCodegen
from evozero.program.model import Program

__all__ = ["BACKENDS", "export_source", "write_export"]

_CODEGENS: dict[str, type[Codegen]] = {"numpy": NumpyCodegen, "torch": TorchCodegen}

#: Export backends.
BACKENDS: tuple[str, ...] = tuple(_CODEGENS)


def _docstring(program: Program, backend: str, name: str, source: str | None) -> str:
    code = textwrap.indent(pseudocode(program).rstrip("\n"), "    ")
    where = f"Source: {source}\n\n" if source else ""
    extra = ""
    if backend == "numpy":
        extra = (
            "\nAll arrays are float32. The functions compile with numba.njit (for\n"
            "example numba.njit(scan)); numba freezes the module's constants at\n"
            "compile time.\n"
        )
    else:
        extra = (
            "\nAll tensors are float32. The constants are float32 tensors in the dict\n"
            "`constants`; every function takes constants=... (any dict of tensors with\n"
            "the same keys), so constants that require grad receive gradients. `Rule`\n"
            "is the same rule as an nn.Module whose constants are nn.Parameters.\n"
        )
    ctor = "torch.Tensor" if backend == "torch" else "np.ndarray"
    name = " ".join(name.split()) or "rule"  # the first line is one sentence
    text = f"""{name}: an RL update rule exported by evozero {evozero.__version__} ({backend}).

{where}Live program (pseudocode; div, log, sqrt and exp are protected, see the helpers):

{code}

Functions ({ctor} arguments; T steps, B envs, N samples; progress is the fraction of
the training budget used, a float in [0, 1]):

    adv, vtarget = scan(r, term, reset, v, v_next, logp, entropy, progress)
        Each input has shape (T, B): reward, 1 if s[t+1] is terminal, 1 if an episode
        ended at t for any reason, V(s[t]), V(s[t+1]) of the true next state,
        behaviour log-prob of a[t], policy entropy. Runs backwards over t; returns
        two (T, B) arrays.
    adv, vtarget = post(adv, vtarget, v, r, progress)
        Inputs of one shape (the whole rollout); returns adv and vtarget of that shape.
    loss = objective(logp, logp_old, adv, v, v_old, vtarget, entropy, progress)
        Inputs of shape (N,): current and behaviour log-probs, the targets from post,
        current and behaviour values, entropy; returns the per-sample loss (N,), which
        the learner minimizes (ratio = exp(logp - logp_old)).
{extra}"""
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def export_source(
    program: Program, backend: str = "numpy", *, name: str = "rule", source: str | None = None
) -> str:
    """A standalone Python module implementing ``program``'s live code.

    Args:
        program: the update rule.
        backend: ``"numpy"`` (numba-compilable) or ``"torch"`` (differentiable; constants
            are tensors that may require grad, plus an ``nn.Module`` ``Rule``).
        name: the program's name, for the module docstring.
        source: where the program came from (a path), for the module docstring.

    Returns:
        The module's source text. It imports only numpy (and, optionally, numba's
        ``register_jitable``) or torch.

    Raises:
        ValueError: an unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    g = _CODEGENS[backend](live_program(program))
    functions = g.functions()  # first: it collects the helpers the code calls
    rt = runtime(g.runtime)
    blocks = [b for b in [g.constants_block(), g.protection_block()] if b is not None]
    blocks += [text for helper, text in rt.functions.items() if helper in g.helpers]
    blocks += [*functions, *g.tail()]
    body = "\n\n\n".join(b.strip("\n") for b in blocks)
    # One blank line after imports (isort), two after a compound statement (PEP 8).
    last = rt.prelude.splitlines()[-1]
    gap = "\n\n" if last.startswith(("import ", "from ")) else "\n\n\n"
    doc = _docstring(program, backend, name, source)
    return f'"""{doc}"""\n\n{rt.prelude}{gap}{body}\n'


def write_export(
    program: Program,
    path: str | os.PathLike[str],
    backend: str = "numpy",
    *,
    name: str | None = None,
    source: str | None = None,
) -> None:
    """Write :func:`export_source` to ``path``.

    ``name`` defaults to the stem of ``source`` when that is a file (``ppo`` for
    ``programs/ppo.evz``), else to the stem of ``path``: a source such as ``runs/x
    candidate 3 (fitness 0.912)`` describes where the program came from and is no file
    name.
    """
    if name is None:
        name = Path(source).stem if source and os.path.isfile(source) else Path(path).stem
    text = export_source(program, backend, name=name, source=source)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
