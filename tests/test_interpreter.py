"""The native interpreter (csrc/interpreter) against the reference evaluator (evaluate.py).

Two kinds of comparison:

* against the reference as it is: bit for bit where ops.py promises bit-exactness (no
  exp/log/tanh/sigmoid and no ratio; random programs and the baseline programs), else
  within float32 tolerance (the baseline programs only: on random programs an ulp can be
  amplified without bound, or flip a comparison);
* against the reference with its four libm ops (and the ratio's exp) swapped for the C
  library's, the ones the interpreter uses: then everything must agree bit for bit,
  non-finite positions and signed zeros included, on the baseline programs and on random
  programs (hypothesis) fed with extreme inputs.

The per-op kernels are checked against ops.py directly (values and partials).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evozero import _core
from evozero.native import interpreter
from evozero.native.codegen import tables_digest
from evozero.native.compile import OPCODES, check_native_tables, compile_program
from evozero.program import INPUTS, MAX_CARRIES, Program, dsl, evaluate, random_program
from evozero.program.ops import OPS

PROGRAMS = sorted((Path(__file__).parent.parent / "programs").glob("*.evz"))
LIBM = ("exp", "log", "tanh", "sigmoid")
F32_MAX = float(np.finfo(np.float32).max)
TINY = float(np.finfo(np.float32).smallest_subnormal)
EXTREMES = np.array(
    [
        0.0,
        -0.0,
        np.inf,
        -np.inf,
        np.nan,
        F32_MAX,
        -F32_MAX,
        3e38,
        -3e38,
        1e30,
        -1e30,
        TINY,
        -TINY,
        1e-6,
        -1e-6,
        5e-7,
        80.0,
        81.0,
        89.0,
        -89.0,
        1.0,
        -1.0,
        0.5,
    ],
    dtype=np.float32,
)
OUTPUT_FIELDS = ("loss", "dloss_dlogp", "dloss_dv", "dloss_dentropy")


# ----------------------------------------------------------------------------- helpers


def assert_bitwise(actual: np.ndarray, expected: np.ndarray, what: str = "") -> None:
    """Same shape, same NaN positions, identical bits elsewhere (signed zeros included)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float32)
    assert actual.dtype == np.float32, what
    assert actual.shape == expected.shape, what
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    bad = (nan_a != nan_e) | (~nan_e & (actual.view(np.uint32) != expected.view(np.uint32)))
    if bad.any():
        i = np.flatnonzero(bad.ravel())[:5]
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} differ, e.g. at {i.tolist()}:"
            f" native {actual.ravel()[i]} vs reference {expected.ravel()[i]}"
        )


def assert_close(
    actual: np.ndarray, expected: np.ndarray, what: str = "", rtol: float = 1e-5, atol: float = 1e-6
) -> None:
    """Same non-finite positions (and infinities), close values elsewhere."""
    actual, expected = np.asarray(actual), np.asarray(expected, dtype=np.float32)
    assert actual.shape == expected.shape, what
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), what
    assert np.array_equal(np.isinf(actual), np.isinf(expected)), what
    fin = np.isfinite(expected)
    np.testing.assert_allclose(actual[fin], expected[fin], rtol=rtol, atol=atol, err_msg=what)
    inf = np.isinf(expected)
    assert np.array_equal(actual[inf], expected[inf]), what


def uses_libm(program: Program) -> bool:
    """Whether a value some output needs goes through exp/log/tanh/sigmoid or the ratio."""
    compiled = compile_program(program, live=False)
    libm = {OPCODES[name] for name in LIBM}
    ratio = INPUTS["objective"].index("ratio")
    return any(
        int(op) in libm
        for c in (compiled.scan, compiled.post, compiled.objective)
        for op in c.code[:, 0]
    ) or bool((compiled.objective.code[:, 2:] == ratio).any())


def _native_op(name: str) -> object:
    """OPS[name] with numpy/partials computed by the interpreter's kernels."""
    code = OPCODES[name]

    def run(*args: object) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        shape = np.broadcast_shapes(*(np.shape(a) for a in args))
        arrays = [
            np.ascontiguousarray(np.broadcast_to(np.asarray(a, np.float32), shape)) for a in args
        ]
        return _core.testing.apply_op(code, *arrays)

    return dataclasses.replace(
        OPS[name], numpy=lambda *a: run(*a)[0], partials=lambda *a: run(*a)[1]
    )


class _NumpyWithLibmExp:
    """numpy, but ``exp`` is the C library's float32 exp (the interpreter's ratio)."""

    def __getattr__(self, name: str) -> object:
        return getattr(np, name)

    @staticmethod
    def exp(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return _core.testing.exp_diff(x, np.zeros_like(x))


@pytest.fixture
def libm_reference(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """evaluate.py with exp/log/tanh/sigmoid (and the ratio's exp) from the C library."""
    ops = dict(OPS)
    for name in LIBM:
        ops[name] = _native_op(name)
    monkeypatch.setattr(evaluate, "OPS", ops)
    monkeypatch.setattr(evaluate, "np", _NumpyWithLibmExp())
    return evaluate


def random_inputs(
    rng: np.random.Generator, names: tuple[str, ...], shape: tuple[int, ...], p_extreme: float = 0.0
) -> dict[str, np.ndarray]:
    """Normal-ish values with some exact 0/1 flags, and extremes sprinkled in."""
    out = {}
    for n in names:
        scale = float(rng.choice([0.1, 1.0, 10.0]))
        x = (rng.normal(size=shape) * scale).astype(np.float32)
        if n in ("term", "reset"):
            x = (rng.random(shape) < 0.2).astype(np.float32)
        if p_extreme:
            mask = rng.random(shape) < p_extreme
            x[mask] = rng.choice(EXTREMES, size=int(mask.sum()))
        out[n] = x
    return out


def all_inputs(
    rng: np.random.Generator, T: int, B: int, N: int, p_extreme: float = 0.0
) -> tuple[dict, dict, dict]:
    return (
        random_inputs(rng, evaluate.SCAN_INPUTS, (T, B), p_extreme),
        random_inputs(rng, evaluate.POST_INPUTS, (T, B), p_extreme),
        random_inputs(rng, evaluate.OBJECTIVE_INPUTS, (N,), p_extreme),
    )


def compare(
    program: Program,
    ref: types.ModuleType,
    inputs: tuple[dict, dict, dict],
    progress: float,
    exact: bool,
) -> None:
    """Run every component natively and with ``ref``; compare all outputs."""
    check = assert_bitwise if exact else assert_close
    scan_in, post_in, obj_in = inputs
    native = interpreter.NativeProgram(program)
    want, got = ref.run_scan(program, scan_in, progress), native.run_scan(scan_in, progress)
    assert set(got) == set(want)
    for k in want:
        check(got[k], want[k], f"scan {k}")
    want, got = ref.run_post(program, post_in, progress), native.run_post(post_in, progress)
    assert set(got) == set(want)
    for k in want:
        check(got[k], want[k], f"post {k}")
    want = ref.run_objective(program, obj_in, progress)
    got = native.run_objective(obj_in, progress)
    for k in OUTPUT_FIELDS:
        check(getattr(got, k), getattr(want, k), f"objective {k}")


# ----------------------------------------------------------------------------- tables


def test_native_tables_match_python() -> None:
    # The core's op table and input slots are generated from the Python ones (csrc/generated,
    # kept current by tests/test_codegen.py); the core reports the digest of what it was
    # built from, so this fails for a core built before the tables changed.
    check_native_tables()
    assert tables_digest() == _core.TABLES_DIGEST
    from evozero.program.ops import opcode

    assert all(OPCODES[name] == opcode(name) for name in OPS)


# ----------------------------------------------------------------------------- ops


def _op_grid(arity: int) -> list[np.ndarray]:
    """Every combination of the extreme values, plus random values, for each argument."""
    rng = np.random.default_rng(arity)
    edge = np.concatenate([EXTREMES, [2.0, -2.0, 1e-7, -1e-7, 1e10]]).astype(np.float32)
    combos = list(itertools.product(edge, repeat=arity))
    grid = [np.array(c, dtype=np.float32) for c in zip(*combos, strict=True)]
    extra = rng.normal(size=(arity, 3000)).astype(np.float32) * np.float32(3)
    extra[:, :1000] = np.round(extra[:, :1000])  # ties for min/max/clip
    return [np.concatenate([g, e]) for g, e in zip(grid, extra, strict=True)]


@pytest.mark.parametrize("name", [n for n, op in OPS.items() if not op.batch])
def test_op_kernels_match_ops_table(name: str) -> None:
    op = OPS[name]
    args = _op_grid(op.arity)
    value, partials = _core.testing.apply_op(OPCODES[name], *args)
    ref_value = op.numpy(*args)
    ref_partials = op.partials(*args)
    assert len(partials) == op.arity
    if name in LIBM:
        assert_close(value, ref_value, name, rtol=4e-7, atol=0)  # a few ulps
        for j, (p, rp) in enumerate(zip(partials, ref_partials, strict=True)):
            # 1 - t*t and (1 - s)*s cancel: an ulp in t is an absolute error of ~1e-7.
            assert_close(p, rp, f"d{name}/d{j}", rtol=1e-6, atol=3e-7)
    else:
        assert_bitwise(value, ref_value, name)
        for j, (p, rp) in enumerate(zip(partials, ref_partials, strict=True)):
            assert_bitwise(p, rp, f"d{name}/d{j}")


# ----------------------------------------------------------------------------- programs


def realistic_inputs(rng: np.random.Generator, T: int, B: int, N: int) -> tuple[dict, dict, dict]:
    """Inputs as a trainer produces them (log-probabilities, small policy changes)."""
    scan_in, post_in, obj_in = all_inputs(rng, T, B, N)
    for d in (scan_in, obj_in):
        d["logp"] = np.log(rng.uniform(0.05, 1.0, d["logp"].shape)).astype(np.float32)
        d["entropy"] = rng.uniform(0.0, 2.0, d["entropy"].shape).astype(np.float32)
    obj_in["logp_old"] = (obj_in["logp"] + rng.normal(0, 0.1, N)).astype(np.float32)
    return scan_in, post_in, obj_in


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_baseline_programs_match_reference(path: Path) -> None:
    program = dsl.load(path)
    rng = np.random.default_rng(0)
    inputs = realistic_inputs(rng, 32, 16, 512)
    compare(program, evaluate, inputs, 0.25, exact=not uses_libm(program))


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_baseline_programs_bitwise_with_libm(path: Path, libm_reference) -> None:
    program = dsl.load(path)
    rng = np.random.default_rng(1)
    for p_extreme in (0.0, 0.05):
        compare(program, libm_reference, all_inputs(rng, 12, 8, 256, p_extreme), 0.5, exact=True)


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_live_form_gives_same_training_signal(path: Path) -> None:
    """The trainer's form (Program.live) computes the same adv/vtarget and loss terms."""
    program = dsl.load(path)
    full, live = interpreter.NativeProgram(program), interpreter.NativeProgram(program, live=True)
    scan_in, post_in, obj_in = all_inputs(np.random.default_rng(2), 16, 8, 128, 0.02)
    a, b = full.run_scan(scan_in, 0.1), live.run_scan(scan_in, 0.1)
    for k in ("adv", "vtarget"):
        assert_bitwise(b[k], a[k], k)
    a, b = full.run_objective(obj_in, 0.1), live.run_objective(obj_in, 0.1)
    for k in OUTPUT_FIELDS:
        assert_bitwise(getattr(b, k), getattr(a, k), k)


_SEED = st.integers(0, 2**32 - 1)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=_SEED,
    p_extreme=st.sampled_from([0.0, 0.02, 0.3]),
    shape=st.sampled_from([(1, 1), (3, 2), (5, 4), (2, 33)]),
    progress=st.sampled_from([0.0, 0.37, 1.0]),
)
def test_random_programs_bitwise(
    seed: int, p_extreme: float, shape: tuple[int, int], progress: float
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        ops = dict(OPS)
        for name in LIBM:
            ops[name] = _native_op(name)
        mp.setattr(evaluate, "OPS", ops)
        mp.setattr(evaluate, "np", _NumpyWithLibmExp())
        rng = np.random.default_rng(seed)
        program = random_program(rng, max_instrs=12, max_carries=MAX_CARRIES)
        T, B = shape
        compare(
            program, evaluate, all_inputs(rng, T, B, T * B + 3, p_extreme), progress, exact=True
        )


@settings(max_examples=40, deadline=None)
@given(seed=_SEED)
def test_random_programs_match_plain_reference(seed: int) -> None:
    """Against numpy's own libm: bitwise unless a libm op is live, else close."""
    rng = np.random.default_rng(seed)
    program = random_program(rng, max_instrs=8)
    if uses_libm(program):
        return  # an ulp through a comparison can flip a branch: covered by the libm test
    compare(program, evaluate, all_inputs(rng, 4, 3, 17, 0.05), 0.5, exact=True)


def test_scan_phases() -> None:
    """Carries read before/after reassignment, unassigned carries, carry-free parts."""
    program = dsl.parse(
        "const gamma = 0.9\n"
        "scan:\n"
        "  carry g = 0\n  carry h = v_next\n  carry k = v_next\n  carry z = 0\n"
        "  before = g + r\n"  # reads g from t+1
        "  g = r + gamma * (1 - term) * g\n"
        "  after = g * 2\n"  # reads g at t: computed after the recurrence
        "  h = h * 0.5 + k\n"  # k is never reassigned: v_next[T-1] at every t
        "  z = r\n"  # reassigned without reading itself
        "  adv = before + after + h + z\n"
        "  vtarget = 1.5\n"
        "objective:\n"
        "  loss = v\n"
    )
    rng = np.random.default_rng(3)
    scan_in = random_inputs(rng, evaluate.SCAN_INPUTS, (9, 5))
    want = evaluate.run_scan(program, scan_in, 0.0)
    got = interpreter.run_scan(program, scan_in, 0.0)
    assert set(got) == {"adv", "vtarget", "g", "h", "k", "z"}
    for k in want:
        assert_bitwise(got[k], want[k], k)


def test_post_batch_statistics_are_exact() -> None:
    """fsum-exact mean/std: cancellation across magnitudes, scalars, inf and -inf."""
    program = dsl.parse(
        "scan:\n  adv = r\n  vtarget = v\n"
        "post:\n"
        "  adv = normalize(adv) + mean(r) * std(vtarget)\n"
        "  vtarget = std(v) + normalize(progress) + mean(2) + std(3)\n"
        "objective:\n  loss = adv * vtarget\n"
    )
    rng = np.random.default_rng(4)
    big = np.array([3e38, 1.0, -3e38, 1e-45, 7.0, -1e30, 1e30, 2.5e-8] * 37, np.float32)
    cases = [
        {n: rng.permutation(big).reshape(37, 8) for n in evaluate.POST_INPUTS},
        {
            n: (rng.normal(size=(64, 64)) * 1e4 + 1e7).astype(np.float32)
            for n in evaluate.POST_INPUTS
        },
    ]
    with_infs = {n: rng.normal(size=(4, 4)).astype(np.float32) for n in evaluate.POST_INPUTS}
    with_infs["adv"][0, 0], with_infs["adv"][1, 1] = np.inf, -np.inf
    with_infs["r"][2, 2] = np.inf
    with_infs["v"][3, 3] = np.nan
    cases.append(with_infs)
    for inputs in cases:
        for progress in (0.0, 0.5):
            want = evaluate.run_post(program, inputs, progress)
            got = interpreter.run_post(program, inputs, progress)
            for k in want:
                assert_bitwise(got[k], want[k], k)
    assert np.isnan(interpreter.run_post(program, with_infs, 0.0)["adv"]).all()


def test_workspace_reuse_across_sizes() -> None:
    """One interpreter, calls of growing and shrinking sizes: no stale state."""
    program = dsl.load(PROGRAMS[[p.stem for p in PROGRAMS].index("ppo")])
    native = interpreter.NativeProgram(program)
    rng = np.random.default_rng(5)
    for T, B, N in [(8, 4, 16), (64, 32, 2048), (3, 2, 5), (64, 32, 2048), (1, 1, 1)]:
        scan_in, post_in, obj_in = all_inputs(rng, T, B, N)
        for k, v in evaluate.run_scan(program, scan_in, 0.2).items():
            assert_bitwise(native.run_scan(scan_in, 0.2)[k], v, k)
        for k, v in evaluate.run_post(program, post_in, 0.2).items():
            assert_bitwise(native.run_post(post_in, 0.2)[k], v, k)
        want = evaluate.run_objective(program, obj_in, 0.2)
        got = native.run_objective(obj_in, 0.2)
        for k in OUTPUT_FIELDS:
            assert_close(getattr(got, k), getattr(want, k), k)


def test_post_in_place() -> None:
    """The trainer's post: outputs written over the adv and vtarget inputs."""
    for path in PROGRAMS:
        program = dsl.load(path)
        native = interpreter.NativeProgram(program)
        _, post_in, _ = all_inputs(np.random.default_rng(9), 16, 8, 1, 0.01)
        want = evaluate.run_post(program, post_in, 0.3)
        args = [post_in[n].copy() for n in evaluate.POST_INPUTS]
        adv, vtarget = native.interpreter.run_post(*args, 0.3, out=(args[0], args[1]))
        assert adv is args[0] and vtarget is args[1]
        for k, got in (("adv", args[0]), ("vtarget", args[1])):
            assert_bitwise(got, want[k], k)


@settings(max_examples=60, deadline=None)
@given(seed=_SEED)
def test_random_live_form_gives_same_training_signal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    program = random_program(rng, max_instrs=10, max_carries=MAX_CARRIES)
    full = interpreter.NativeProgram(program)
    live = interpreter.NativeProgram(program, live=True)
    scan_in, post_in, obj_in = all_inputs(rng, 4, 3, 20, 0.05)
    a, b = full.run_scan(scan_in, 0.4), live.run_scan(scan_in, 0.4)
    for k in ("adv", "vtarget"):
        assert_bitwise(b[k], a[k], k)
    a, b = full.run_objective(obj_in, 0.4), live.run_objective(obj_in, 0.4)
    for k in OUTPUT_FIELDS:
        assert_bitwise(getattr(b, k), getattr(a, k), k)


def test_empty_batches() -> None:
    program = dsl.load(PROGRAMS[0])
    native = interpreter.NativeProgram(program)
    for T, B in [(0, 4), (4, 0)]:
        scan_in, post_in, _ = all_inputs(np.random.default_rng(6), T, B, 0)
        assert native.run_scan(scan_in, 0.0)["adv"].shape == (T, B)
        assert native.run_post(post_in, 0.0)["adv"].shape == (T, B)
    _, _, obj_in = all_inputs(np.random.default_rng(6), 1, 1, 0)
    assert native.run_objective(obj_in, 0.0).loss.shape == (0,)


# ----------------------------------------------------------------------------- errors


def _ppo_arrays() -> dict[str, np.ndarray]:
    return compile_program(
        dsl.load(PROGRAMS[[p.stem for p in PROGRAMS].index("ppo")]), live=False
    ).arrays()


def test_bad_compiled_arrays_raise_value_error() -> None:
    good = _ppo_arrays()
    _core.Interpreter(**good)

    def bad(match: str, **changes: np.ndarray) -> None:
        with pytest.raises(ValueError, match=match):
            _core.Interpreter(**{**good, **changes})

    code = good["objective_code"]
    bad("int32", objective_code=code.astype(np.int64))
    bad("float32", objective_consts=good["objective_consts"].astype(np.float64))
    bad("shape \\(n, 5\\)", objective_code=code[:, :4].copy())
    bad("C-contiguous", objective_code=np.asfortranarray(code))

    def patched(row: int, col: int, value: int) -> np.ndarray:
        c = code.copy()
        c[row, col] = value
        return c

    bad("bad opcode", objective_code=patched(0, 0, len(OPS)))
    bad("bad opcode", objective_code=patched(0, 0, -1))
    bad("only allowed in post", objective_code=patched(0, 0, OPCODES["mean"]))
    bad("writes register", objective_code=patched(0, 1, 0))
    bad("not defined before it", objective_code=patched(0, 2, int(code[0, 1])))
    bad("not defined before it", objective_code=patched(0, 2, -1))
    bad("past its arity", objective_code=patched(0, 4, 0))
    bad("out of range", objective_outputs=np.array([10**6], np.int32))
    bad("outputs, expected", objective_outputs=np.array([0, 1], np.int32))
    bad("must be input 0", post_outputs=np.array([1, 1], np.int32))
    bad("init code", scan_carry_init=np.array([7], np.int32))
    bad("at most 4", scan_carry_init=np.zeros(5, np.int32), scan_outputs=np.zeros(7, np.int32))


def test_bad_inputs_raise_value_error() -> None:
    native = interpreter.native(dsl.load(PROGRAMS[0]))
    scan_in, post_in, obj_in = all_inputs(np.random.default_rng(7), 4, 3, 6)
    interp = native.interpreter
    args = [scan_in[n] for n in evaluate.SCAN_INPUTS]
    with pytest.raises(ValueError, match="float32"):
        interp.run_scan(*[a.astype(np.float64) for a in args], 0.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        interp.run_scan(*[np.asfortranarray(a) for a in args], 0.0)
    with pytest.raises(ValueError, match="v_next has shape \\(3, 4\\), expected \\(4, 3\\)"):
        interp.run_scan(*args[:4], args[4].T.copy(), *args[5:], 0.0)
    with pytest.raises(ValueError, match="\\(T, B\\)"):
        interp.run_scan(*[a.ravel() for a in args], 0.0)
    with pytest.raises(ValueError, match="numpy array"):
        interp.run_post(*[post_in[n].tolist() for n in evaluate.POST_INPUTS], 0.0)
    obj = [obj_in[n] for n in evaluate.OBJECTIVE_INPUTS]
    with pytest.raises(ValueError, match="entropy has shape"):
        interp.run_objective(*obj[:-1], obj[-1][:-1].copy(), 0.0)
    with pytest.raises(ValueError, match="missing inputs"):
        native.run_objective({"logp": obj[0]}, 0.0)
    # The Python wrapper converts dtypes and layouts before the strict native call.
    got = native.run_scan({k: v.astype(np.float64) for k, v in scan_in.items()}, 0.0)
    want = evaluate.run_scan(native.program, scan_in, 0.0)
    assert_bitwise(got["adv"], want["adv"])


def test_apply_op_checks_arguments() -> None:
    x = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="elementwise"):
        _core.testing.apply_op(OPCODES["mean"], x)
    with pytest.raises(ValueError, match="takes 2 arguments"):
        _core.testing.apply_op(OPCODES["add"], x)
    value = _core.testing.apply_op(OPCODES["exp"], x)[0][0]
    assert math.isclose(float(value), math.e, rel_tol=1e-7)


def _fsum_cases(rng: np.random.Generator) -> list[np.ndarray]:
    cases = [np.array([]), np.array([-0.0]), np.array([-0.0, -0.0])]
    for it in range(3000):
        k = int(rng.integers(0, 30))
        mode = it % 6
        if mode == 0:  # wide exponents
            x = rng.normal(size=k) * 10.0 ** rng.integers(-300, 300, size=k)
        elif mode == 1:  # any finite bit pattern
            x = rng.integers(0, 2**64, size=k, dtype=np.uint64).view(np.float64)
            x = x[np.isfinite(x)]
        elif mode == 2:  # cancellation
            a = rng.normal(size=k) * 10.0 ** rng.integers(-20, 20, size=k)
            x = np.concatenate([a, -a[: k // 2], rng.normal(size=2) * 1e-300])
        elif mode == 3:  # exactly halfway, then nudged either way (round half to even)
            b = float(rng.normal())
            e = math.ulp(b) / 2
            x = np.array([b, e, e * 2.0 ** -int(rng.integers(1, 80)) * rng.choice([-1, 0, 1])])
        elif mode == 4:  # subnormals
            x = rng.integers(-(2**52), 2**52, size=k).astype(np.float64) * 5e-324
        else:  # special values
            x = rng.choice([1.0, -2.5, np.inf, -np.inf, np.nan, 0.0, -0.0, 1e300], size=k)
        cases.append(x)
    return cases


def test_exact_sum_matches_math_fsum() -> None:
    """The long accumulator behind mean/std returns math.fsum's value, bit for bit."""
    for x in _fsum_cases(np.random.default_rng(8)):
        x = np.ascontiguousarray(x, dtype=np.float64)
        try:
            want = math.fsum(x.tolist())
        except ValueError:  # inf - inf: the interpreter gives NaN
            want = math.nan
        except OverflowError:  # math.fsum gives up on an intermediate overflow
            continue
        got = _core.testing.fsum(x)
        if math.isnan(want):
            assert math.isnan(got), x
        else:
            assert got == want and math.copysign(1, got) == math.copysign(1, want), x
    # Where math.fsum overflows in between, the exact sum is still returned.
    assert _core.testing.fsum(np.array([1e308, 1e308, -1e308, -1e308, 1.0])) == 1.0
