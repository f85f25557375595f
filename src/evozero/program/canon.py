"""Canonical keys of update programs: duplicates are never trained twice.

Two programs are the same candidate when the canonical forms of their live outputs agree
(ARCHITECTURE.md, "Duplicates"). This module computes

* :func:`canonical_form`: each component is executed symbolically
  (:func:`evozero.symbolic.component_exprs`, constants replaced by their exact float32
  values) and every live output is brought to a cheap, deterministic normal form;
* :func:`fingerprint`: a behavioural fingerprint, the live outputs (and the objective's
  three derivatives) of the reference evaluator :mod:`evozero.evaluate` on a fixed probe
  batch that covers the ranges inputs reach in training (:func:`probe_batch`), rounded
  to about 5 significant digits and hashed;
* :func:`canonical_key`: ``"s:" + sha256`` of the canonical form, or ``"f:" +`` the
  fingerprint where the canonical form is not available in time;
* :func:`same_rule`: whether two programs are the same rule; :func:`same_keys`: the same
  decision from stored keys, the search driver's duplicate rule. Both trust two
  different ``s:`` keys over agreeing fingerprints: a fingerprint match counts only when
  at least one program has no sympy key.

Versions. ``s:`` keys hash :data:`CANON_VERSION`, fingerprints (and so ``f:`` keys)
:data:`FINGERPRINT_VERSION`; a new probe batch changes only the latter. A run store
resumed across a fingerprint version keeps its ``s:`` keys comparable, and its old
fingerprints never equal new ones: nothing is merged by mistake, and at worst a rule
whose sympy form was unavailable is trained once more.

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
from typing import Protocol

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
    "FINGERPRINT_VERSION",
    "POST_PROGRESS",
    "CanonicalForm",
    "ProbeBatch",
    "RuleKeys",
    "behaviour",
    "canonical_form",
    "canonical_key",
    "fingerprint",
    "probe_batch",
    "probe_inputs",
    "duplicate_keys",
    "same_keys",
    "same_rule",
]

#: Version of the canonical serialization; part of every ``s:`` key's hash (the fingerprint
#: has its own, :data:`FINGERPRINT_VERSION`).
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
        return json.dumps(
            {
                "canon": CANON_VERSION,
                "objective": self.objective,
                "post": self.post,
                "scan": self.scan,
                "carries": self.carries,
            },
            separators=(",", ":"),
        )

    def digest(self) -> str:
        """sha256 hex digest of :meth:`serialize`."""
        return hashlib.sha256(self.serialize().encode()).hexdigest()


def _normal(expr: sympy.Expr) -> sympy.Expr:
    """The cheap deterministic normal form of one expression."""
    return sympy.expand(
        expr,
        deep=True,
        mul=True,
        multinomial=True,
        power_exp=True,
        power_base=True,
        log=False,
        basic=True,
    )


def _free_names(exprs: Mapping[str, sympy.Expr] | list[sympy.Expr]) -> set[str]:
    values = exprs.values() if isinstance(exprs, Mapping) else exprs
    return {s.name for e in values for s in e.free_symbols}


def _exprs(program: Program, kind: str, outputs: list[str]) -> dict[str, sympy.Expr]:
    if not outputs:
        return {}
    raw = component_exprs(
        program,
        kind,
        substitute_constants=True,
        outputs=outputs,
        fold_numbers=True,
        max_degree=MAX_DEGREE,
    )
    return {n: _normal(e) for n, e in raw.items()}


def _placeholder(i: int) -> sympy.Symbol:
    return sympy.Symbol(f"${i}[t+1]", real=True)


def _canonical_scan(
    program: Program, outputs: list[str]
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    comp = program.scan
    init = {c.name: c.init for c in comp.carries}
    sym = {c: carry_symbol(c) for c in init}
    by_symbol = {s.name: c for c, s in sym.items()}
    exprs = _exprs(program, "scan", outputs)

    def carries_read(names: list[str]) -> list[str]:
        return sorted(
            by_symbol[n] for n in _free_names([exprs[o] for o in names]) if n in by_symbol
        )

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

        cand = (
            tuple((o, ser(exprs[o])) for o in outputs),
            tuple((init[c], ser(exprs[c])) for c in perm),
        )
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
        scan=scan,
        carries=carries,
    )


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

#: Version of the fingerprint: its probe batch, progress values and rounding. It is hashed
#: into every fingerprint, so fingerprints of different versions never agree. It is
#: separate from :data:`CANON_VERSION`, so a new probe batch leaves every ``s:`` key as it
#: was. Version 1 probed ~100 values per input, most within a few units of 0 (issue 10:
#: it merged thresholds at 5 and 50 on advantages).
FINGERPRINT_VERSION = 2

# The probe batch. Rules whose outputs differ only where no probe value lies get the same
# fingerprint, so every input is probed densely over the range it reaches in training,
# with tails beyond it. The ranges (benchmarks/fingerprint_merges.py --ranges measures
# the env side on the native games; README's learning-quality table gives the returns):
#
# * r: 0 on most steps (95-99.99% under a random policy), 1 per brick/crossing/kill, more
#   when several invaders are hit in one step or seaquest pays its surfacing bonus (<= 10).
# * v, v_next, v_old, vtarget, and post's raw adv/vtarget (GAE, returns): discounted
#   returns with gamma 0.99 are up to ~100 per unit of reward rate; PPO's undiscounted
#   returns reach ~220 (space_invaders); untrained critics are near 0 and can be negative.
# * objective adv (normalized over the T x B rollout): mostly |adv| < 3, but sparse rewards
#   give long tails: a 128 x 64 random-policy rollout of freeway has max |adv| 31
#   (median over 40 rollouts) and up to 49.
# * logp: log(1/A) >= -1.79 .. 0 for a near-uniform policy over A <= 6 actions; a
#   collapsed policy gives tens to hundreds below 0 for the actions it stopped taking.
# * ratio = exp(logp - logp_old): near 1 (PPO clips at 1 +- 0.2); after several epochs
#   tails from ~0 to 10 and beyond.
# * entropy: 0 .. log 6 = 1.79. term, reset: {0, 1}.
# * progress: u / U for update u of U (U = 122 at 1M steps of 128 x 64), so [0, 1) in
#   steps of ~0.01. Probed per env in scan (1/1023 apart), per sample in the objective,
#   and at the 101 values of POST_PROGRESS in post (whose batch reductions forbid one
#   value per element).
#
# Each real-valued input gets its training range as a fine uniform grid, plus a signed
# log-spaced grid over [1e-4, 1e4] with neighbours 1% apart (_GRID_STEP), and random
# values in the gaps: two thresholds on an input (or on a multiple of it) more than 1%
# apart anywhere in that range are told apart. Post's advantages are normalized in
# training, so one post rollout normalizes to |z| up to 10 with neighbours 2% apart. Edge
# values (_EDGE: 0, +-1e-7 inside the protection bands of div and log, 1e6 and -3e4 for
# overflow) are in every input. Probing beyond the training ranges can only tell apart
# rules that training could not: a split costs a training run, a merge loses a rule.

#: Ratio between neighbours of the log-spaced grids.
_GRID_STEP = 1.01
#: Progress values of post's sweep.
POST_PROGRESS: tuple[float, ...] = tuple(float(x) for x in np.linspace(0.0, 1.0, 101))
_PROBE_SEED = 20240611
_SCAN_T, _SCAN_B = 16, 1024  # scan costs per step, so many envs and few steps
_POST_SHAPE, _POST_SWEEP_SHAPE = (32, 256), (8, 16)
_NORMALIZED_SHAPE = (64, 128)
_OBJECTIVE_N, _OBJECTIVE_NEAR = 6144, 2048
#: Edge values mixed into every real-valued input.
_EDGE = np.array([0.0, 1.0, -1.0, 0.5, -2.0, 1e-7, -1e-7, 1e-3, 1e3, -1e3, 1e6, -3e4])


def _log_grid(lo: float, hi: float) -> np.ndarray:
    """``lo .. hi`` (both > 0), neighbours at most :data:`_GRID_STEP` apart by ratio."""
    return np.geomspace(lo, hi, math.ceil(math.log(hi / lo) / math.log(_GRID_STEP)) + 1)


def _signed(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, -x])


#: Per kind of input: its training range (first) and its tails. logp and entropy take the
#: edges' sign from their range.
_WIDE = _signed(_log_grid(1e-4, 1e4))
_RANGES: dict[str, tuple[np.ndarray, ...]] = {
    "reward": (
        np.repeat([0.0, 1.0, -1.0, 2.0, 3.0, 5.0, 10.0], [600, 200, 50, 20, 20, 20, 20]),
        _WIDE,
    ),
    "value": (np.linspace(-10.0, 300.0, 1241), _WIDE),
    "adv": (np.linspace(-10.0, 10.0, 801), _signed(np.linspace(10.0, 100.0, 181)), _WIDE),
    "logp": (-np.linspace(0.0, math.log(6), 361), -_log_grid(1e-4, 1e3)),
    "entropy": (np.linspace(0.0, math.log(6), 361), _log_grid(1e-6, 1e2)),
    # the ratio exp(logp - logp_old) near 1, and its tails
    "ratio": (1.0 + _signed(_log_grid(1e-4, 0.5)), _log_grid(1e-4, 1e3)),
    # differences v - v_old, vtarget - v for the pairs built below
    "diff": (_signed(_log_grid(1e-4, 1e2)),),
}


def _column(
    rng: np.random.Generator, size: int, kind: str, edges: bool = True, sample: bool = False
) -> np.ndarray:
    """``size`` float32 values in random order: every value of ``kind``'s range and tails
    (and the edges), then random values in their gaps; ``sample``: a random subset."""
    parts = list(_RANGES[kind])
    if edges:
        sign = {"logp": -1.0, "entropy": 1.0}.get(kind)
        parts.append(_EDGE if sign is None else sign * np.abs(_EDGE))
    values = np.concatenate(parts)
    if sample:
        return rng.choice(values, size, replace=False).astype(np.float32)
    assert values.size <= size, (kind, values.size, size)
    # The rest in the gaps: a random value times up to one grid step.
    fill = rng.choice(values, size - values.size) * _GRID_STEP ** rng.random(size - values.size)
    x = np.concatenate([values, fill])
    return rng.permutation(x).astype(np.float32)


def _normalized_advantages(rng: np.random.Generator, size: int) -> np.ndarray:
    """A rollout whose ``normalize`` covers |z| up to 10 densely, like normalized
    advantages (not further: n values of variance 1 hold only n / z**2 values beyond z)."""
    tails = _signed(np.geomspace(1e-3, 10.0, 467))  # neighbours 2% apart
    body = rng.standard_normal(size - tails.size)
    body *= math.sqrt((size - np.sum(tails**2)) / np.sum(body**2))  # total variance 1
    z = np.concatenate([tails, body])
    return rng.permutation(3.7 * z + 0.4).astype(np.float32)  # any affine map: normalize undoes it


@dataclass(frozen=True)
class ProbeBatch:
    """The inputs :func:`behaviour` runs each component on (float32, read-only).

    ``scan`` is a ``(T, B)`` rollout run with one progress value per env
    (``scan_progress``); ``post`` holds named rollouts, each but ``sweep`` run at
    ``post_progress``, and, when post's live code reads ``progress``, ``sweep`` at every
    value of ``post_sweep``; ``objective`` holds ``N`` samples run with one progress value
    each (``objective_progress``).
    """

    scan: Mapping[str, np.ndarray]
    scan_progress: np.ndarray
    post: Mapping[str, Mapping[str, np.ndarray]]
    post_progress: float
    post_sweep: tuple[float, ...]
    objective: Mapping[str, np.ndarray]
    objective_progress: np.ndarray


@functools.cache
def probe_batch() -> ProbeBatch:
    """The fixed probe batch (deterministic; see the ranges above)."""
    rng = np.random.default_rng(_PROBE_SEED)
    T, B = _SCAN_T, _SCAN_B
    term = (rng.random((T, B)) < 0.15).astype(np.float32)
    reset = np.maximum(term, (rng.random((T, B)) < 0.1).astype(np.float32))
    term[:, 0] = reset[:, 0] = 0.0  # one env with no boundary at all
    term[T - 1, 1] = reset[T - 1, 1] = 1.0  # a boundary at the last step
    reset[3, 2], term[3, 2] = 1.0, 0.0  # a truncation

    def rollout(
        shape: tuple[int, ...], sample: bool = False, **kinds: str
    ) -> dict[str, np.ndarray]:
        return {
            n: _column(rng, math.prod(shape), k, sample=sample).reshape(shape)
            for n, k in kinds.items()
        }

    scan = {
        **rollout((T, B), r="reward", v="value", v_next="value", logp="logp", entropy="entropy"),
        "term": term,
        "reset": reset,
    }
    post = {
        "wide": rollout(_POST_SHAPE, adv="value", vtarget="value", v="value", r="reward"),
        "sweep": rollout(
            _POST_SWEEP_SHAPE, sample=True, adv="value", vtarget="value", v="value", r="reward"
        ),
    }
    normalized = rollout(_NORMALIZED_SHAPE, vtarget="value", v="value", r="reward")
    normalized["adv"] = _normalized_advantages(rng, math.prod(_NORMALIZED_SHAPE)).reshape(
        _NORMALIZED_SHAPE
    )
    post["normalized"] = normalized
    N, M = _OBJECTIVE_N, _OBJECTIVE_NEAR
    objective = rollout(
        (N,), logp="logp", adv="adv", v="value", v_old="value", vtarget="value", entropy="entropy"
    )
    # logp_old from the ratio's own spread, so ratio = exp(logp - logp_old) covers it.
    ratio = _column(rng, N, "ratio", edges=False)
    objective["logp_old"] = (objective["logp"] - np.log(ratio)).astype(np.float32)
    # Then M samples like the first M but with v_old and vtarget close to v (PPO's value
    # clipping, small value errors): their differences cover "diff".
    near = {n: x[:M].copy() for n, x in objective.items()}
    for name in ("v_old", "vtarget"):
        near[name] = near["v"] + _column(rng, M, "diff", edges=False, sample=True)
    objective = {n: np.concatenate([x, near[n]]).astype(np.float32) for n, x in objective.items()}
    N += M
    batch = ProbeBatch(
        scan=scan,
        scan_progress=rng.permutation(np.linspace(0, 1, B, dtype=np.float32)),
        post=post,
        post_progress=0.625,
        post_sweep=POST_PROGRESS,
        objective=objective,
        objective_progress=rng.permutation(np.linspace(0, 1, N, dtype=np.float32)),
    )
    for a in (
        *scan.values(),
        *(x for r in post.values() for x in r.values()),
        *objective.values(),
        batch.scan_progress,
        batch.objective_progress,
    ):
        a.setflags(write=False)
    return batch


@functools.cache
def probe_inputs() -> dict[str, dict[str, np.ndarray]]:
    """The main probe arrays per component (post: its ``wide`` rollout; read-only float32
    arrays; deterministic). :func:`probe_batch` has all of it."""
    b = probe_batch()
    return {"scan": dict(b.scan), "post": dict(b.post["wide"]), "objective": dict(b.objective)}


def _structural_live(program: Program) -> tuple[dict[str, list[str]], bool]:
    """Live outputs per component by dataflow (the fingerprint cannot see through sympy),
    and whether post's live code reads ``progress``.

    Unlike :meth:`Program.live`, a scan output counts only when post's live code reads it.
    """
    lv = program_liveness(program)
    scan_live = [o for o in OUTPUTS["scan"] if o in lv.live_in["post"]]
    live = {"scan": scan_live, "post": list(lv.outputs["post"]), "objective": ["loss"]}
    return live, "progress" in lv.live_in["post"]


def behaviour(program: Program, probes: ProbeBatch | None = None) -> dict[str, np.ndarray]:
    """The program's live outputs on the probe batch (what :func:`fingerprint` hashes).

    Keys are ``"scan.<output>@per-env"``, ``"post.<rollout>.<output>@<progress>"`` and
    ``"objective.<name>@per-sample"`` with names ``loss``, ``dloss_dlogp``, ``dloss_dv``
    and ``dloss_dentropy``. Scan is run over the whole probe rollout, so carries count through
    the outputs they feed, whatever their names. ``probes`` defaults to
    :func:`probe_batch`.
    """
    from evozero.program.evaluate import run_objective, run_post, run_scan

    probes = probes or probe_batch()
    live, post_reads_progress = _structural_live(program)
    out: dict[str, np.ndarray] = {}
    if live["scan"]:
        res = run_scan(program, probes.scan, probes.scan_progress)
        out.update({f"scan.{o}@per-env": res[o] for o in live["scan"]})
    if live["post"]:
        runs = [(name, probes.post_progress) for name in probes.post if name != "sweep"]
        if post_reads_progress:
            runs += [("sweep", p) for p in probes.post_sweep]
        for name, p in runs:
            res = run_post(program, probes.post[name], p)
            out.update({f"post.{name}.{o}@{p}": res[o] for o in live["post"]})
    obj = run_objective(program, probes.objective, probes.objective_progress)
    for name in ("loss", "dloss_dlogp", "dloss_dv", "dloss_dentropy"):
        out[f"objective.{name}@per-sample"] = getattr(obj, name)
    return out


#: Of float32's 23 fraction bits, the fingerprint keeps this many: values are rounded to
#: a relative 2**-17 (about 5 significant digits).
_KEEP_BITS = 16


def _quantize(a: np.ndarray) -> bytes:
    """Values rounded to :data:`_KEEP_BITS` fraction bits (to nearest, ties away from
    zero, on the bit pattern: exact and the same on every platform); -0.0 is 0.0 and
    every NaN one NaN. Little-endian bytes."""
    x = np.ascontiguousarray(a, dtype=np.float32).ravel()
    drop = 23 - _KEEP_BITS
    bits = x.view(np.uint32)
    # Rounding up from the largest finite magnitude carries into +-inf, as it should.
    q = ((bits + np.uint32(1 << (drop - 1))) >> np.uint32(drop)) << np.uint32(drop)
    q = np.where(np.isinf(x), bits, q)
    q = np.where(x == 0, np.uint32(0), q)
    q = np.where(np.isnan(x), np.uint32(0x7FC00000), q)
    return q.astype("<u4").tobytes()


@functools.lru_cache(maxsize=4096)
def fingerprint(program: Program) -> str:
    """Behavioural fingerprint: sha256 hex digest of the quantized :func:`behaviour`.

    Deterministic across runs and processes (given numpy's float32 ``exp``, ``log``,
    ``tanh``). Programs whose live outputs and objective derivatives agree to about 5
    significant digits on the probe batch collide; equivalent programs whose float32
    results differ by rounding can still straddle a rounding boundary (:func:`same_rule`
    compares with a tolerance instead). :data:`FINGERPRINT_VERSION` is part of the hash.
    """
    h = hashlib.sha256(f"evozero-fingerprint/{FINGERPRINT_VERSION}\n".encode())
    for name, values in behaviour(program).items():
        h.update(f"{name}={np.shape(values)}\n".encode())
        h.update(_quantize(values))
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


class RuleKeys(Protocol):
    """What a run store keeps of a program to find its duplicates (a store row)."""

    @property
    def key(self) -> str: ...  # canonical_key: "s:..." or "f:..."

    @property
    def fingerprint(self) -> str: ...


def _both_sympy(key_a: str, key_b: str) -> bool:
    return key_a.startswith("s:") and key_b.startswith("s:")


def same_keys(a: RuleKeys, b: RuleKeys) -> bool:
    """Whether two programs, known by their stored keys, are the same rule: the
    duplicate rule of the search driver.

    Their canonical keys agree, or at least one of them has no sympy key (an ``f:`` key:
    timeout, too large) and their fingerprints agree. A fingerprint match never overrides
    two sympy keys that differ: sympy tells rules apart on all reals, the fingerprint only
    on the probe batch.
    """
    return a.key == b.key or (not _both_sympy(a.key, b.key) and a.fingerprint == b.fingerprint)


def duplicate_keys(
    rule: RuleKeys,
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """:func:`same_keys` as hashable keys, for lookups in a table of trained rules:
    ``(published, probes)``. ``same_keys(a, b)`` holds exactly when a probe of ``a`` is
    among the published keys of ``b`` (tests/test_canon.py checks every case).

    A rule publishes its canonical key and its fingerprint, and its fingerprint again as a
    fallback when it has no sympy key. A rule with a sympy key probes its key and the
    fallbacks only (a fingerprint never overrides two sympy keys); one without probes its
    key and every fingerprint.
    """
    key, fp = ("key", rule.key), rule.fingerprint
    if rule.key.startswith("s:"):
        return (key, ("fingerprint", fp)), (key, ("fallback", fp))
    return (key, ("fingerprint", fp), ("fallback", fp)), (key, ("fingerprint", fp))


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-4, atol=1e-6, equal_nan=True))


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
    if _both_sympy(kp, kq):
        return False
    bp, bq = behaviour(p), behaviour(q)
    return bp.keys() == bq.keys() and all(_close(bp[k], bq[k]) for k in bp)
