"""The Python reference evaluator: the executable specification of program semantics.

The C++ interpreter is tested against these three functions, so every detail below is
part of the contract. Op semantics (values and partial derivatives) come from the one op
table, :mod:`evozero.ops`; nothing here re-implements an op.

Values
------
Everything is float32. Inside a component every value is conceptually an array of the
component's batch shape: ``(B,)`` per step of ``scan``, the rollout's shape in ``post``,
``(N,)`` in ``objective``. Literals, constants and ``progress`` are float32 scalars
broadcast to that shape (here they stay 0-d arrays, which numpy broadcasting makes
equivalent for every elementwise op; the batch ops of ``post`` receive their argument
broadcast to the full shape). Instructions run in program order; a name refers to its
latest binding; a component's outputs are the final bindings of its output names. All
instructions run, dead ones included (they cannot affect the outputs: ops have no side
effects). IEEE overflow to ``inf`` (and a NaN from ``inf - inf`` downstream) is a valid
result; nothing raises on numeric problems and no warnings are emitted.

scan
----
``run_scan`` visits ``t = T-1, ..., 0`` in that order, all ``B`` envs at once. At step
``t`` the inputs ``r, term, reset, v, v_next, logp, entropy`` are row ``t`` of the given
``(T, B)`` arrays and ``progress`` is the scalar. A carry read before it is reassigned at
step ``t`` holds its value at step ``t+1``; at ``t = T-1`` that is its declared initial
value: ``0`` (zeros) or ``v_next[T-1]``. Its final binding at step ``t`` is its value at
``t`` (a carry never reassigned keeps its initial value). ``adv``, ``vtarget`` and each
carry's value at ``t`` are written to row ``t`` of the outputs.

post
----
``run_post`` runs once over the whole rollout (any shape, ``(T, B)`` in the trainer).
``mean``/``std``/``normalize`` reduce over all elements as :mod:`evozero.ops` defines
(exactly rounded sums); an argument holding both ``+inf`` and ``-inf`` makes all three
NaN everywhere (the IEEE value of that sum). An output never assigned passes its input
through.

objective
---------
``run_objective`` runs once over ``N`` samples. ``ratio = exp(logp - logp_old)``: one
float32 subtraction and numpy's float32 ``exp`` (plain, not the clamped op). Besides
values it propagates forward-mode tangents with respect to each of ``logp``, ``v`` and
``entropy`` (``DIFF_INPUTS``):

* seeds: ``d logp/d logp = d v/d v = d entropy/d entropy = 1`` and
  ``d ratio/d logp = ratio``; every other input, constant and literal has a
  *structurally zero* tangent with respect to all three;
* for ``y = op(x_1, ..., x_k)`` and each differentiated input ``w`` separately: if every
  ``x_i`` has a structurally zero tangent w.r.t. ``w``, so has ``y``; otherwise, with
  ``(p_1, ..., p_k) = op.partials(x_1, ..., x_k)`` (float32 arrays), the tangent is the
  float32 sum, in argument order and skipping structurally zero ``x_i``, of
  ``p_i * dx_i`` (``acc = p_i * dx_i`` for the first such ``i``, then
  ``acc = acc + p_j * dx_j``). Skipping matters: a partial may be ``inf`` where the
  argument's tangent is zero (``div``'s ``db`` for huge ``a``), and ``inf * 0`` is NaN.
  A repeated argument (``mul(x, x)``) contributes once per position.

``dloss_dlogp`` etc. are the tangents of the final ``loss`` binding (zeros where
structurally zero), broadcast to ``(N,)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evozero.program.model import Component, Instr, Program
from evozero.program.ops import OPS
from evozero.program.vocabulary import DIFF_INPUTS, INPUTS, OUTPUTS

__all__ = [
    "OBJECTIVE_INPUTS",
    "POST_INPUTS",
    "SCAN_INPUTS",
    "ObjectiveResult",
    "run_objective",
    "run_post",
    "run_scan",
]

#: Array inputs of each runner (``progress`` is a separate scalar argument; the
#: objective's ``ratio`` is computed from ``logp`` and ``logp_old``).
SCAN_INPUTS: tuple[str, ...] = tuple(n for n in INPUTS["scan"] if n != "progress")
POST_INPUTS: tuple[str, ...] = tuple(n for n in INPUTS["post"] if n != "progress")
OBJECTIVE_INPUTS: tuple[str, ...] = tuple(
    n for n in INPUTS["objective"] if n not in ("progress", "ratio")
)

_F32 = np.float32


@dataclass(frozen=True)
class ObjectiveResult:
    """The objective's per-sample loss and its derivatives, float32 arrays of shape (N,)."""

    loss: np.ndarray
    dloss_dlogp: np.ndarray
    dloss_dv: np.ndarray
    dloss_dentropy: np.ndarray


# ----------------------------------------------------------------------------- helpers


def _inputs(
    inputs: Mapping[str, np.ndarray], names: Sequence[str], what: str, ndim: int | None = None
) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """Check presence and identical shapes; convert to float32 arrays."""
    missing = [n for n in names if n not in inputs]
    if missing:
        raise ValueError(f"{what}: missing inputs {missing}")
    arrays = {n: np.asarray(inputs[n], dtype=_F32) for n in names}
    shapes = {n: a.shape for n, a in arrays.items()}
    shape = shapes[names[0]]
    if any(s != shape for s in shapes.values()):
        raise ValueError(f"{what}: inputs must all have the same shape; got {shapes}")
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"{what}: inputs must have {ndim} dimensions; got shape {shape}")
    return arrays, shape


def _scalar(x: float) -> np.ndarray:
    return np.asarray(x, dtype=_F32)


def _constants(program: Program) -> dict[str, np.ndarray]:
    return {c.name: _scalar(c.value) for c in program.constants}


def _args(ins: Instr, env: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    return [env[a] if isinstance(a, str) else _scalar(a) for a in ins.args]


def _apply(ins: Instr, args: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    op = OPS[ins.op]
    if op.batch:
        # Batch ops reduce over the whole batch: a scalar argument stands for a full array.
        args = [np.broadcast_to(a, shape) for a in args]
    return np.asarray(op.numpy(*args), dtype=_F32)


def _run(comp: Component, env: dict[str, np.ndarray], shape: tuple[int, ...]) -> None:
    """Execute ``comp``'s instructions in order, binding targets in ``env``."""
    for ins in comp.instrs:
        env[ins.target] = _apply(ins, _args(ins, env), shape)


def _full(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.array(np.broadcast_to(np.asarray(x, dtype=_F32), shape), dtype=_F32)


# ----------------------------------------------------------------------------- scan


def run_scan(
    program: Program, inputs: Mapping[str, np.ndarray], progress: float | np.ndarray
) -> dict[str, np.ndarray]:
    """Run the scan component backwards over a ``(T, B)`` rollout.

    Args:
        program: the update rule.
        inputs: ``r, term, reset, v, v_next, logp, entropy``, each of shape ``(T, B)``
            (converted to float32).
        progress: fraction of the training budget used (a float32 scalar), or one value
            per env, shape ``(B,)`` (as B runs of one env each: scan has no batch ops).

    Returns:
        ``{"adv": ..., "vtarget": ..., <carry>: ...}``, float32 arrays of shape ``(T, B)``;
        each carry's entry holds its value at every step ``t``.
    """
    arrays, shape = _inputs(inputs, SCAN_INPUTS, "run_scan", ndim=2)
    T, B = shape
    comp = program.scan
    names = OUTPUTS["scan"] + comp.carry_names
    out = {n: np.zeros(shape, dtype=_F32) for n in names}
    consts = _constants(program)
    prog = _scalar(progress)
    carry: dict[str, np.ndarray] = {}
    if T:
        for c in comp.carries:
            carry[c.name] = (
                np.zeros(B, dtype=_F32) if c.init == "0" else arrays["v_next"][T - 1].copy()
            )
    with np.errstate(all="ignore"):
        for t in range(T - 1, -1, -1):
            env = dict(consts)
            env.update({n: arrays[n][t] for n in SCAN_INPUTS})
            env["progress"] = prog
            env.update(carry)
            _run(comp, env, (B,))
            for n in names:
                out[n][t] = np.broadcast_to(env[n], (B,))
            carry = {c: _full(env[c], (B,)) for c in comp.carry_names}
    return out


# ----------------------------------------------------------------------------- post


def run_post(
    program: Program, inputs: Mapping[str, np.ndarray], progress: float
) -> dict[str, np.ndarray]:
    """Run the post component once over the whole rollout.

    Args:
        program: the update rule.
        inputs: ``adv, vtarget, v, r`` of one identical shape (the T x B rollout).
        progress: fraction of the training budget used.

    Returns:
        ``{"adv": ..., "vtarget": ...}``, float32 arrays of the inputs' shape.
    """
    arrays, shape = _inputs(inputs, POST_INPUTS, "run_post")
    env: dict[str, np.ndarray] = _constants(program)
    env.update(arrays)
    env["progress"] = _scalar(progress)
    with np.errstate(all="ignore"):
        _run(program.post, env, shape)
    return {n: _full(env[n], shape) for n in OUTPUTS["post"]}


# ----------------------------------------------------------------------------- objective

#: A value with its tangents w.r.t. DIFF_INPUTS (None: structurally zero).
_Tangents = tuple[np.ndarray | None, ...]


def _combine(partials: Sequence[np.ndarray], tangents: Iterable[_Tangents]) -> _Tangents:
    """Chain rule for one instruction, per differentiated input (see module docstring)."""
    tangents = list(tangents)
    out: list[np.ndarray | None] = []
    for k in range(len(DIFF_INPUTS)):
        acc: np.ndarray | None = None
        for p, tan in zip(partials, tangents, strict=True):
            if tan[k] is None:
                continue
            term = np.asarray(p * tan[k], dtype=_F32)
            acc = term if acc is None else np.asarray(acc + term, dtype=_F32)
        out.append(acc)
    return tuple(out)


def run_objective(
    program: Program, inputs: Mapping[str, np.ndarray], progress: float | np.ndarray
) -> ObjectiveResult:
    """Run the objective with forward-mode tangents w.r.t. ``logp``, ``v`` and ``entropy``.

    Args:
        program: the update rule.
        inputs: ``logp, logp_old, adv, v, v_old, vtarget, entropy`` of shape ``(N,)``
            (any identical shape works; results have that shape).
        progress: fraction of the training budget used, or one value per sample (the
            objective has no batch ops, so that is N runs of one sample each).

    Returns:
        An :class:`ObjectiveResult` of float32 arrays: the per-sample loss and
        dloss/dlogp, dloss/dv, dloss/dentropy.
    """
    arrays, shape = _inputs(inputs, OBJECTIVE_INPUTS, "run_objective")
    none: _Tangents = (None,) * len(DIFF_INPUTS)
    ones = np.ones(shape, dtype=_F32)
    env: dict[str, np.ndarray] = _constants(program)
    tan: dict[str, _Tangents] = {}
    env.update(arrays)
    env["progress"] = _scalar(progress)
    with np.errstate(all="ignore"):
        env["ratio"] = np.asarray(np.exp(arrays["logp"] - arrays["logp_old"]), dtype=_F32)
        for k, name in enumerate(DIFF_INPUTS):
            seed = [None] * len(DIFF_INPUTS)
            seed[k] = ones
            tan[name] = tuple(seed)
        ratio_tan: list[np.ndarray | None] = [None] * len(DIFF_INPUTS)
        ratio_tan[DIFF_INPUTS.index("logp")] = env["ratio"].copy()
        tan["ratio"] = tuple(ratio_tan)
        for ins in program.objective.instrs:
            args = _args(ins, env)
            arg_tan = [tan.get(a, none) if isinstance(a, str) else none for a in ins.args]
            env[ins.target] = _apply(ins, args, shape)
            if all(t is None for at in arg_tan for t in at):
                tan[ins.target] = none
            else:
                partials = OPS[ins.op].partials(*args)
                tan[ins.target] = _combine(partials, arg_tan)
    dloss = [
        np.zeros(shape, dtype=_F32) if t is None else _full(t, shape) for t in tan.get("loss", none)
    ]
    return ObjectiveResult(_full(env["loss"], shape), *dloss)
