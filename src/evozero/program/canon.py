"""Canonical keys of update programs: duplicates are never trained twice.

Two programs are the same candidate when the canonical forms of their live outputs agree
(ARCHITECTURE.md, "Duplicates"). This module computes

* :func:`canonical_form`: each component is executed symbolically
  (:func:`evozero.symbolic.component_exprs`, constants replaced by their exact float32
  values) and every live output is brought to a cheap, deterministic normal form;
* :func:`fingerprint`: a behavioural fingerprint, the live outputs (and the objective's
  three derivatives) of the reference evaluator :mod:`evozero.evaluate` on a fixed probe
  batch, quantized to 5 significant digits and hashed;
* :func:`canonical_key`: ``"s:" + sha256`` of the canonical form, or ``"f:" +`` the
  fingerprint where the canonical form is not available in time;
* :func:`same_rule`: whether two programs are the same rule.

The normal form
---------------
Every expression is passed through ``sympy.expand`` (deep; products and integer powers of
sums multiplied out, ``exp(a + b)`` split into ``exp(a)*exp(b)``, no log expansion) and
serialized with ``sympy.srepr``. sympy's automatic evaluation plus its structural
ordering of arguments collapse what the issue asks for: renamed and reordered
intermediates, dead code, ``x*1``, ``x + 0``, ``-(-x)``, ``a - b`` vs ``a + (-b)``,
commuted arguments of ``+ * min max``, nested vs hand-flattened expressions, and
constants: a constant is its value, so renaming one changes nothing, ``gamma * lam``
folds to one exact rational, and a different value is a different rule.
``sympy.simplify`` is not used: it is slow and its output is not stable.

Liveness is semantic: the objective's canonical ``loss`` says which post outputs it reads
(a term that expands to zero reads nothing), post's which scan outputs, and scan's which
carries (closed under the carries' own updates). A carry that is never updated and
starts at 0 is the constant 0 and is substituted away. Carries are canonical up to
renaming and declaration order: they are renamed ``$0, $1, ...`` by the permutation (at
most 4! = 24 of them) whose serialization (outputs, then each carry's initial value and
update) is smallest.

Everything is over the reals: float32 rounding is ignored, so ``(a + b) + c`` and
``a + (b + c)`` are the same rule. So are a few programs that differ only where float32
saturates (``abs(sign(sigmoid(x)))`` is 1, though float32 sigmoid is 0 below -88) or in
the evaluator's derivative conventions at kinks (``relu(v)`` and ``max(v, 0)`` at
``v == 0``; ``clip(x, w, w)``, which sympy folds to ``w`` but whose derivative the
torch convention zeroes where ``x < w``). A number computed from literals only that is
not rational (``exp(0.5)``) is folded to its float32 value (``fold_numbers``).
Constant-only products stay exact. Keys from sympy depend on sympy's printer and
ordering; :data:`CANON_VERSION` is part of what is hashed.

The time bound
--------------
Symbolic execution, expansion and serialization of one program run under a wall-clock
bound (:data:`DEFAULT_TIMEOUT`, 2 s), enforced by
:func:`evozero.program.time_limit.call_with_time_limit`: the work runs in a worker thread
the caller waits for, and is cancelled at the deadline. What cannot be cancelled is a
single long C call; the one sympy makes on program input is exact big-integer arithmetic
(``0.99`` squared 30 times), which a cheap degree bound checked before each op rules out
(:data:`MAX_DEGREE`). On timeout, too large a degree, or any sympy failure (deep
recursion included) :func:`canonical_key` falls back to the fingerprint.

Since the bound is wall-clock time, whether a borderline program gets an ``s:`` or an
``f:`` key can depend on machine load; typical rules canonicalize in well under 0.2 s.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy

from evozero.program.liveness import program_liveness
from evozero.program.model import Program
from evozero.program.symbolic import ExpressionTooLarge, carry_symbol, component_exprs
from evozero.program.time_limit import TimeLimitExceeded, call_with_time_limit
from evozero.program.vocabulary import OUTPUTS

__all__ = [
    "CANON_VERSION",
    "DEFAULT_TIMEOUT",
    "MAX_DEGREE",
    "CanonTimeout",
    "CanonUnavailable",
    "CanonicalForm",
    "behaviour",
    "canonical_form",
    "canonical_key",
    "fingerprint",
    "probe_inputs",
    "same_rule",
]

#: Version of the canonical serialization and of the fingerprint; part of every hash.
CANON_VERSION = 1
#: Default wall-clock bound in seconds for the sympy canonical form of one program.
DEFAULT_TIMEOUT = 2.0
#: Largest degree bound (see :func:`evozero.symbolic.component_exprs`) sympy is given.
MAX_DEGREE = 128

class CanonUnavailable(Exception):  # noqa: N818  (it is a result, not a bug)
    """The sympy canonical form could not be computed (too large, or sympy failed)."""


class CanonTimeout(CanonUnavailable, TimeoutError):
    """The sympy canonical form was not computed within the time bound."""


# ----------------------------------------------------------------------------- canonical form


@dataclass(frozen=True)
class CanonicalForm:
    """The canonical description of a program: per component, its live outputs.

    Each entry is ``(output name, srepr of the canonical expression)``. ``scan`` holds
    the live ``adv``/``vtarget``; ``carries`` holds ``(initial value, srepr of the
    update)`` for the live carries in canonical order; in scan's expressions the value of
    the i-th carry from step t+1 is ``Symbol("$i[t+1]")``. Hashable and comparable.
    """

    objective: tuple[tuple[str, str], ...]
    post: tuple[tuple[str, str], ...]
    scan: tuple[tuple[str, str], ...]
    carries: tuple[tuple[str, str], ...]

    def serialize(self) -> str:
        """A stable text serialization (what :func:`canonical_key` hashes)."""
        return json.dumps({"canon": CANON_VERSION, "objective": self.objective,
                           "post": self.post, "scan": self.scan, "carries": self.carries},
                          separators=(",", ":"))

    def digest(self) -> str:
        """sha256 hex digest of :meth:`serialize`."""
        return hashlib.sha256(self.serialize().encode()).hexdigest()


def _normal(expr: sympy.Expr) -> sympy.Expr:
    """The cheap deterministic normal form of one expression."""
    return sympy.expand(expr, deep=True, mul=True, multinomial=True, power_exp=True,
                        power_base=True, log=False, basic=True)


def _free_names(exprs: Mapping[str, sympy.Expr] | list[sympy.Expr]) -> set[str]:
    values = exprs.values() if isinstance(exprs, Mapping) else exprs
    return {s.name for e in values for s in e.free_symbols}


def _exprs(program: Program, kind: str, outputs: list[str]) -> dict[str, sympy.Expr]:
    if not outputs:
        return {}
    raw = component_exprs(program, kind, substitute_constants=True, outputs=outputs,
                          fold_numbers=True, max_degree=MAX_DEGREE)
    return {n: _normal(e) for n, e in raw.items()}


def _placeholder(i: int) -> sympy.Symbol:
    return sympy.Symbol(f"${i}[t+1]", real=True)


def _canonical_scan(program: Program, outputs: list[str]
                    ) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    comp = program.scan
    init = {c.name: c.init for c in comp.carries}
    sym = {c: carry_symbol(c) for c in init}
    by_symbol = {s.name: c for c, s in sym.items()}
    exprs = _exprs(program, "scan", outputs)

    def carries_read(names: list[str]) -> list[str]:
        return sorted(by_symbol[n] for n in _free_names([exprs[o] for o in names])
                      if n in by_symbol)

    # Live carries: the closure of the carries the live outputs read; a carry never
    # updated with initial value 0 is the constant 0 (substituted, then start over).
    while True:
        used: set[str] = set()
        stack = carries_read(outputs)
        while stack:
            c = stack.pop()
            if c in used:
                continue
            used.add(c)
            if c not in exprs:
                exprs.update(_exprs(program, "scan", [c]))
            stack.extend(carries_read([c]))
        zero = {c for c in used if init[c] == "0" and exprs[c] == sym[c]}
        if not zero:
            break
        reps = {sym[c]: sympy.Integer(0) for c in zero}
        exprs = {n: _normal(e.xreplace(reps)) for n, e in exprs.items() if n not in zero}
        for c in zero:
            del init[c]
    live = [c for c in comp.carry_names if c in used]
    best: tuple | None = None
    for perm in itertools.permutations(live):
        reps = {sym[c]: _placeholder(i) for i, c in enumerate(perm)}

        def ser(e: sympy.Expr, reps: dict = reps) -> str:
            return sympy.srepr(_normal(e.xreplace(reps)) if reps else e)

        cand = (tuple((o, ser(exprs[o])) for o in outputs),
                tuple((init[c], ser(exprs[c])) for c in perm))
        if best is None or cand < best:
            best = cand
    assert best is not None  # permutations of [] yield one empty tuple
    return best


def _canonical_form(program: Program) -> CanonicalForm:
    obj = _exprs(program, "objective", ["loss"])
    read = _free_names(obj)
    post_live = [o for o in OUTPUTS["post"] if o in read]
    post = _exprs(program, "post", post_live)
    read = _free_names(post)
    scan_live = [o for o in OUTPUTS["scan"] if o in read]
    scan, carries = _canonical_scan(program, scan_live)
    return CanonicalForm(
        objective=tuple((n, sympy.srepr(e)) for n, e in obj.items()),
        post=tuple((n, sympy.srepr(e)) for n, e in post.items()),
        scan=scan, carries=carries)


def canonical_form(program: Program, timeout: float | None = DEFAULT_TIMEOUT) -> CanonicalForm:
    """The canonical form of ``program``'s live outputs (see the module docstring).

    Raises:
        CanonTimeout: not computed within ``timeout`` seconds of wall-clock time
            (``math.inf`` or ``None``: no bound).
        CanonUnavailable: the degree bound :data:`MAX_DEGREE` was exceeded or sympy
            failed (e.g. recursion too deep).
    """
    try:
        return call_with_time_limit(lambda: _canonical_form(program), timeout)
    except TimeLimitExceeded:
        raise CanonTimeout(f"canonical form took longer than {timeout} s") from None
    except ExpressionTooLarge as e:
        raise CanonUnavailable(str(e)) from e
    except (RecursionError, MemoryError) as e:
        raise CanonUnavailable(f"sympy failed: {type(e).__name__}") from e
    except Exception as e:  # a sympy bug on some odd expression must not stop a search
        raise CanonUnavailable(f"sympy failed: {type(e).__name__}: {e}") from e


# ----------------------------------------------------------------------------- fingerprint

#: Progress values the fingerprint probes each component at.
PROBE_PROGRESS: tuple[float, ...] = (0.0, 0.625)
_PROBE_SEED = 20240611
_PROBE_T, _PROBE_B, _PROBE_N = 12, 6, 96
#: Edge values mixed into the probe batch.
_EDGE = np.array([0.0, 1.0, -1.0, 0.5, -2.0, 1e-7, -1e-7, 1e-3, 1e3, -1e3, 1e6, -3e4],
                 dtype=np.float32)


def _mixed(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0,
           p_edge: float = 0.25) -> np.ndarray:
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    mask = rng.random(shape) < p_edge
    x[mask] = rng.choice(_EDGE, size=int(mask.sum()))
    # Every edge value at least once, at a fixed random place.
    k = min(x.size, _EDGE.size)
    x.flat[rng.permutation(x.size)[:k]] = rng.permutation(_EDGE)[:k]
    return x


@functools.cache
def _probes() -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(_PROBE_SEED)
    T, B, N = _PROBE_T, _PROBE_B, _PROBE_N
    term = (rng.random((T, B)) < 0.15).astype(np.float32)
    reset = np.maximum(term, (rng.random((T, B)) < 0.1).astype(np.float32))
    term[:, 0] = reset[:, 0] = 0.0  # one env with no boundary at all
    term[T - 1, 1] = reset[T - 1, 1] = 1.0  # a boundary at the last step
    reset[3, 2], term[3, 2] = 1.0, 0.0  # a truncation
    scan = {
        "r": _mixed(rng, (T, B)),
        "term": term,
        "reset": reset,
        "v": _mixed(rng, (T, B), 2.0),
        "v_next": _mixed(rng, (T, B), 2.0),
        "logp": -np.abs(_mixed(rng, (T, B), 1.5)),
        "entropy": np.abs(_mixed(rng, (T, B))),
    }
    post = {n: _mixed(rng, (T, B), 2.0) for n in ("adv", "vtarget", "v", "r")}
    logp = -np.abs(_mixed(rng, (N,), 1.5))
    # logp_old near logp, so the ratio falls inside and outside typical clip ranges.
    shift = (rng.standard_normal(N) * 0.3).astype(np.float32)
    shift[rng.random(N) < 0.15] = np.float32(0.0)
    objective = {
        "logp": logp,
        "logp_old": (logp + shift).astype(np.float32),
        "adv": _mixed(rng, (N,), 1.5),
        "v": _mixed(rng, (N,), 2.0),
        "v_old": _mixed(rng, (N,), 2.0),
        "vtarget": _mixed(rng, (N,), 2.0),
        "entropy": np.abs(_mixed(rng, (N,))),
    }
    for group in (scan, post, objective):
        for a in group.values():
            a.setflags(write=False)
    return {"scan": scan, "post": post, "objective": objective}


def probe_inputs() -> dict[str, dict[str, np.ndarray]]:
    """The fixed probe batch, per component (read-only float32 arrays; deterministic)."""
    return _probes()


def _structural_live(program: Program) -> dict[str, list[str]]:
    """Live outputs per component by dataflow (the fingerprint cannot see through sympy).

    Unlike :meth:`Program.live`, a scan output counts only when post's live code reads it.
    """
    lv = program_liveness(program)
    scan_live = [o for o in OUTPUTS["scan"] if o in lv.live_in["post"]]
    return {"scan": scan_live, "post": list(lv.outputs["post"]), "objective": ["loss"]}


def behaviour(program: Program) -> dict[str, np.ndarray]:
    """The program's live outputs on the probe batch (what :func:`fingerprint` hashes).

    Keys are ``"<component>.<output>@<progress>"``; objective entries are ``loss`` and
    ``dloss_dlogp``, ``dloss_dv``, ``dloss_dentropy``. Scan is run over the whole probe
    rollout, so carries count through the outputs they feed, whatever their names.
    """
    from evozero.program.evaluate import run_objective, run_post, run_scan

    probes = _probes()
    live = _structural_live(program)
    out: dict[str, np.ndarray] = {}
    for p in PROBE_PROGRESS:
        if live["scan"]:
            res = run_scan(program, probes["scan"], p)
            out.update({f"scan.{o}@{p}": res[o] for o in live["scan"]})
        if live["post"]:
            res = run_post(program, probes["post"], p)
            out.update({f"post.{o}@{p}": res[o] for o in live["post"]})
        obj = run_objective(program, probes["objective"], p)
        for name in ("loss", "dloss_dlogp", "dloss_dv", "dloss_dentropy"):
            out[f"objective.{name}@{p}"] = getattr(obj, name)
    return out


def _quantize(a: np.ndarray) -> str:
    """Values rounded to 5 significant digits; NaN, +inf, -inf and zero as fixed tokens."""
    tokens = []
    for x in np.asarray(a, dtype=np.float64).ravel().tolist():
        if math.isnan(x):
            tokens.append("nan")
        elif math.isinf(x):
            tokens.append("inf" if x > 0 else "-inf")
        elif x == 0.0:
            tokens.append("0")  # -0.0 too
        else:
            tokens.append(f"{x:.4e}")
    return ",".join(tokens)


@functools.lru_cache(maxsize=4096)
def fingerprint(program: Program) -> str:
    """Behavioural fingerprint: sha256 hex digest of the quantized :func:`behaviour`.

    Deterministic across runs and processes. Programs whose live outputs and objective
    derivatives agree to 5 significant digits on the probe batch collide; equivalent
    programs whose float32 results differ by rounding can still straddle a rounding
    boundary (:func:`same_rule` compares with a tolerance instead).
    """
    h = hashlib.sha256(f"evozero-fingerprint/{CANON_VERSION}\n".encode())
    for name, values in behaviour(program).items():
        h.update(f"{name}={_quantize(values)}\n".encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------- keys


@functools.lru_cache(maxsize=4096)
def canonical_key(program: Program, timeout: float | None = DEFAULT_TIMEOUT) -> str:
    """A stable key of the rule: ``"s:<sha256>"`` of the canonical form, or, when that is
    unavailable (timeout, too large, sympy failure), ``"f:<fingerprint>"``.

    Never uses Python's salted ``hash()``: the same program gets the same key in every
    process. Results are cached per process (programs are immutable and hashable).
    """
    try:
        return "s:" + canonical_form(program, timeout).digest()
    except CanonUnavailable:
        return "f:" + fingerprint(program)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-4, atol=1e-6,
                                                   equal_nan=True))


def same_rule(p: Program, q: Program, timeout: float | None = DEFAULT_TIMEOUT) -> bool:
    """Whether ``p`` and ``q`` are the same rule.

    True when their canonical keys agree. When at least one key fell back to the
    fingerprint, their behaviours on the probe batch are compared with a tolerance
    (relative 1e-4, absolute 1e-6, NaN equal to NaN), which float32 rounding differences
    between equivalent programs do not defeat. Two different sympy keys mean different
    rules.
    """
    kp, kq = canonical_key(p, timeout), canonical_key(q, timeout)
    if kp == kq:
        return True
    if kp.startswith("s:") and kq.startswith("s:"):
        return False
    bp, bq = behaviour(p), behaviour(q)
    return bp.keys() == bq.keys() and all(_close(bp[k], bq[k]) for k in bp)
