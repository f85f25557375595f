"""The op table: arity, totality, numpy vs torch values, numpy partials vs torch autograd."""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import pytest
import sympy

from evozero.program import COMPONENTS, ops
from evozero.program.ops import OPS, Op

torch = pytest.importorskip("torch")

F32_MAX = float(np.finfo(np.float32).max)
TINY = float(np.finfo(np.float32).smallest_subnormal)

#: Edge inputs: zeros of both signs, denormals, protection thresholds (exact and just
#: inside), exp's clamp point, sigmoid's overflow region, huge values.
EDGE = np.array(
    [
        0.0,
        -0.0,
        TINY,
        -TINY,
        1e-30,
        -1e-30,
        1e-6,
        -1e-6,
        5e-7,
        -5e-7,
        1e-12,
        0.5,
        -0.5,
        1.0,
        -1.0,
        2.0,
        80.0,
        81.0,
        88.0,
        89.0,
        -88.0,
        -89.0,
        -100.0,
        1e10,
        -1e10,
        3e38,
        -3e38,
        F32_MAX,
        -F32_MAX,
    ],
    dtype=np.float32,
)

#: Ops whose value is bit-exact between numpy and torch (no libm transcendental inside).
EXACT_VALUE = {
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "abs",
    "square",
    "relu",
    "sign",
    "min",
    "max",
    "clip",
    "where",
    "copy",
    "mean",
    "std",
    "normalize",
}
#: Ops whose partials are bit-exact between numpy and torch autograd.
EXACT_GRAD = {
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "abs",
    "square",
    "relu",
    "sign",
    "min",
    "max",
    "clip",
    "where",
    "copy",
    "log",
}
#: Ops promised to return finite values for finite inputs.
BOUNDED = {
    "neg",
    "abs",
    "sqrt",
    "exp",
    "log",
    "tanh",
    "sigmoid",
    "relu",
    "sign",
    "min",
    "max",
    "clip",
    "where",
    "copy",
    "mean",
    "std",
}

ELEMENTWISE = [op for op in OPS.values() if not op.batch]
BATCH = [op for op in OPS.values() if op.batch]


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in float32 ulps (0 where both are the same infinity; NaN counts as huge)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    a, b = np.broadcast_arrays(a, b)

    def ordered(x: np.ndarray) -> np.ndarray:
        i = x.view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    d = np.abs(ordered(a) - ordered(b))
    d = np.where(a == b, 0, d)  # +0 == -0, inf == inf
    return np.where(np.isnan(a) | np.isnan(b), 2**40, d)


def assert_close(a: np.ndarray, b: np.ndarray, maxulp: int, what: str, atol: float = 0.0) -> None:
    """At most ``maxulp`` ulps apart, or within ``atol`` (for results near 0 obtained by
    cancellation, such as tanh' = 1 - t*t near saturation)."""
    d = ulp_distance(a, b)
    if atol:
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.where(np.abs(a.astype(np.float64) - b) <= atol, 0, d)
    if d.size and d.max() > maxulp:
        i = np.unravel_index(int(np.argmax(d)), d.shape)
        raise AssertionError(f"{what}: {d.max()} ulp apart at {i}: {a[i]!r} vs {b[i]!r}")


def grid(arity: int) -> list[np.ndarray]:
    """All combinations of EDGE values for ``arity`` arguments."""
    cols = list(zip(*itertools.product(EDGE, repeat=arity), strict=True))
    return [np.array(c, dtype=np.float32) for c in cols]


def random_args(op: Op, n: int = 2000, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    args = []
    for _ in range(op.arity):
        scale = 10.0 ** rng.integers(-3, 4, size=n)
        args.append((rng.normal(size=n) * scale).astype(np.float32))
    if op.name in ("min", "max"):  # ties
        args[1][: n // 4] = args[0][: n // 4]
    if op.name == "clip":  # at the bounds, equal bounds, crossed bounds
        k = n // 8
        args[1][:k] = args[0][:k]
        args[2][k : 2 * k] = args[0][k : 2 * k]
        args[2][2 * k : 3 * k] = args[1][2 * k : 3 * k]
    if op.name == "where":
        args[0][: n // 8] = 0.0
    return args


def edge_and_random(op: Op) -> list[np.ndarray]:
    g = grid(op.arity)
    r = random_args(op)
    return [np.concatenate([a, b]) for a, b in zip(g, r, strict=True)]


# ----------------------------------------------------------------------------- the table


def test_components_match_program_vocabulary() -> None:
    assert frozenset(COMPONENTS) == ops.ALL_COMPONENTS
    for op in OPS.values():
        assert op.components <= ops.ALL_COMPONENTS
        assert op.batch == (op.components == {"post"})
    assert {op.name for op in BATCH} == {"mean", "std", "normalize"}
    assert {op.name for op in ops.ops_for("post")} == set(OPS)
    assert {op.name for op in ops.ops_for("scan")} == set(OPS) - {"mean", "std", "normalize"}


def test_required_ops_present() -> None:
    required = {
        "add",
        "sub",
        "mul",
        "div",
        "neg",
        "abs",
        "square",
        "sqrt",
        "exp",
        "log",
        "tanh",
        "sigmoid",
        "relu",
        "sign",
        "min",
        "max",
        "clip",
        "where",
        "mean",
        "std",
        "normalize",
    }
    assert required <= set(OPS)


@pytest.mark.parametrize("op", OPS.values(), ids=lambda o: o.name)
def test_arity_matches_functions(op: Op) -> None:
    assert op.arity == len(op.params)
    for fn in (op.numpy, op.torch):
        assert len(inspect.signature(fn).parameters) == op.arity
    if op.partials is not None:
        assert len(inspect.signature(op.partials).parameters) == op.arity
        out = op.partials(*[np.float32(0.5)] * op.arity)
        assert len(out) == op.arity
    syms = sympy.symbols(f"x0:{op.arity}", real=True)
    assert isinstance(op.sympy(*syms), sympy.Basic)
    assert op.partials is not None or op.batch


def test_printing_info() -> None:
    assert {(op.name, op.infix, op.prec) for op in OPS.values() if op.infix} == {
        ("add", "+", ops.PREC_ADD),
        ("sub", "-", ops.PREC_ADD),
        ("mul", "*", ops.PREC_MUL),
        ("div", "/", ops.PREC_MUL),
        ("neg", "-", ops.PREC_UNARY),
    }
    assert all(op.prec == ops.PREC_ATOM for op in OPS.values() if op.infix is None)
    assert ops.INFIX[("-", 1)] == "neg" and ops.INFIX[("-", 2)] == "sub"
    assert [ops.opcode(n) for n in OPS] == list(range(len(OPS)))


def test_constants_are_float32() -> None:
    for c in (ops.DIV_EPS, ops.LOG_EPS, ops.EXP_MAX, ops.NORM_EPS):
        assert isinstance(c, np.float32)


# ----------------------------------------------------------------------------- exact definitions


def f32(x: float) -> np.float32:
    return np.float32(x)


def test_protected_definitions() -> None:
    eps = f32(1e-6)
    assert ops.np_div(1, 0) == f32(1) / eps
    assert ops.np_div(1, -0.0) == f32(1) / eps  # sign(0) is +
    assert ops.np_div(1, -1e-7) == f32(1) / -eps
    assert ops.np_div(1, 5e-7) == f32(1) / eps
    assert ops.np_div(3, 1e-6) == f32(3) / eps
    assert ops.np_div(3, -2) == f32(-1.5)
    assert ops.np_log(0) == np.log(eps)
    assert ops.np_log(-math.e) == np.log(f32(math.e))
    assert ops.np_log(-1e-7) == np.log(eps)
    assert ops.np_exp(1000) == np.exp(f32(80)) and np.isfinite(ops.np_exp(1000))
    assert ops.np_exp(-1000) == 0
    assert ops.np_sqrt(-4) == 2 and ops.np_sqrt(0) == 0
    assert ops.np_sigmoid(-100) == 0 and ops.np_sigmoid(100) == 1
    assert ops.np_relu(0) == 0 and ops.np_relu(-1) == 0 and ops.np_relu(2) == 2
    assert ops.np_sign(0) == 0 and ops.np_sign(-3) == -1
    assert ops.np_clip(5, 1, 2) == 2 and ops.np_clip(0, 1, 2) == 1
    assert ops.np_clip(1.5, 2, 1) == 1  # crossed bounds: hi wins, like torch.clamp
    assert ops.np_where(0, 1, 2) == 2 and ops.np_where(1e-30, 1, 2) == 1
    assert ops.np_min(1, 2) == 1 and ops.np_max(1, 2) == 2


def test_batch_ops() -> None:
    x = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)
    np.testing.assert_array_equal(ops.np_mean(x), np.full((2, 2), 3.0, np.float32))
    s = np.float32(math.sqrt((4 + 1 + 0 + 9) / 4))
    np.testing.assert_array_equal(ops.np_std(x), np.full((2, 2), s, np.float32))
    np.testing.assert_array_equal(ops.np_normalize(x), (x - np.float32(3)) / (s + np.float32(1e-8)))
    np.testing.assert_array_equal(ops.np_normalize(np.full(5, 7.0, np.float32)), np.zeros(5))
    # The exact sum does not depend on order, even with cancellation.
    y = np.array([3e38, 1.0, -3e38, 80.0, 1e-30], dtype=np.float32)
    assert ops.np_mean(y)[0] == np.float32(81.0 / 5)
    rng = np.random.default_rng(0)
    z = (rng.normal(size=4096) * 10.0 ** rng.integers(-5, 6, size=4096)).astype(np.float32)
    for _ in range(3):
        w = rng.permutation(z)
        assert ops.np_mean(w)[0] == ops.np_mean(z)[0]
        assert ops.np_std(w)[0] == ops.np_std(z)[0]
    assert ops.np_mean(x).dtype == np.float32 and ops.np_std(x).dtype == np.float32


# ----------------------------------------------------------------------------- totality


@pytest.mark.parametrize("op", ELEMENTWISE, ids=lambda o: o.name)
def test_total_on_edge_inputs(op: Op) -> None:
    args = grid(op.arity)
    out = op.numpy(*args)
    assert out.dtype == np.float32
    assert not np.isnan(out).any(), f"{op.name} gave NaN"
    if op.name in BOUNDED:
        assert np.isfinite(out).all(), f"{op.name} gave inf"
    for p in op.partials(*args):
        assert p.dtype == np.float32 and p.shape == out.shape
        assert not np.isnan(p).any(), f"{op.name} partial gave NaN"


@pytest.mark.parametrize("op", BATCH, ids=lambda o: o.name)
def test_batch_ops_total(op: Op) -> None:
    for x in (
        EDGE,
        EDGE[np.abs(EDGE) < 1e30],
        np.zeros(7, np.float32),
        np.full(3, F32_MAX, np.float32),
        np.array([1e-45], np.float32),
    ):
        out = op.numpy(x)
        assert out.shape == x.shape and out.dtype == np.float32
        assert not np.isnan(out).any()
        if op.name in BOUNDED:
            assert np.isfinite(out).all()


# ----------------------------------------------------------------------------- numpy vs torch


@pytest.mark.parametrize("op", OPS.values(), ids=lambda o: o.name)
def test_torch_values_match_numpy(op: Op) -> None:
    args = [EDGE] if op.batch else edge_and_random(op)
    want = op.numpy(*args)
    got = op.torch(*[torch.from_numpy(a) for a in args]).numpy()
    assert got.dtype == np.float32
    # torch's vectorized float32 exp/log/tanh/sqrt are not always correctly rounded.
    assert_close(got, want, 0 if op.name in EXACT_VALUE else 4, op.name)
    if op.batch:
        r = np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32)
        assert_close(op.torch(torch.from_numpy(r)).numpy(), op.numpy(r), 0, op.name)


def test_torch_forms_accept_python_scalars() -> None:
    x = torch.tensor([0.25, 3.0])
    assert torch.equal(ops.t_min(x, 1.0), torch.tensor([0.25, 1.0]))
    assert torch.equal(ops.t_clip(x, 0.5, 1.0), torch.tensor([0.5, 1.0]))
    assert torch.equal(ops.t_where(x, 1.0, 2.0), torch.tensor([1.0, 1.0]))
    assert torch.equal(ops.t_div(1.0, x), torch.tensor([4.0, 1.0 / 3.0]))


@pytest.mark.parametrize("op", [o for o in ELEMENTWISE], ids=lambda o: o.name)
def test_partials_match_torch_autograd(op: Op) -> None:
    args = np.broadcast_arrays(*edge_and_random(op))
    # Only finite-valued points: autograd through an overflowed value is meaningless.
    keep = np.isfinite(op.numpy(*args))
    args = [np.ascontiguousarray(a[keep]) for a in args]
    want = op.partials(*args)
    ts = [torch.tensor(a, requires_grad=True) for a in args]
    op.torch(*ts).sum().backward()
    for i, t in enumerate(ts):
        got = t.grad.numpy() if t.grad is not None else np.zeros_like(args[i])
        exact = op.name in EXACT_GRAD
        assert_close(
            got,
            want[i],
            0 if exact else 4,
            f"d{op.name}/d{op.params[i]}",
            atol=0.0 if exact else 1e-6,
        )


@pytest.mark.parametrize(
    ("name", "args", "want"),
    [
        ("relu", (0.0,), (0.0,)),
        ("abs", (0.0,), (0.0,)),
        ("abs", (-0.0,), (0.0,)),
        ("sign", (0.0,), (0.0,)),
        ("sqrt", (0.0,), (0.0,)),
        ("sqrt", (4.0,), (0.25,)),
        ("sqrt", (-4.0,), (-0.25,)),
        ("log", (0.0,), (0.0,)),
        ("log", (1e-6,), (float(np.float32(1) / np.float32(1e-6)),)),
        ("log", (-2.0,), (-0.5,)),
        ("exp", (80.0,), (float(np.exp(np.float32(80))),)),
        ("exp", (81.0,), (0.0,)),
        ("min", (1.0, 1.0), (0.5, 0.5)),
        ("max", (1.0, 1.0), (0.5, 0.5)),
        ("min", (1.0, 2.0), (1.0, 0.0)),
        ("max", (1.0, 2.0), (0.0, 1.0)),
        ("clip", (1.0, 1.0, 2.0), (1.0, 0.0, 0.0)),
        ("clip", (2.0, 1.0, 2.0), (1.0, 0.0, 0.0)),
        ("clip", (0.0, 1.0, 2.0), (0.0, 1.0, 0.0)),
        ("clip", (3.0, 1.0, 2.0), (0.0, 0.0, 1.0)),
        ("clip", (1.5, 2.0, 1.0), (0.0, 0.0, 1.0)),
        ("clip", (1.0, 1.0, 1.0), (1.0, 0.0, 0.0)),
        ("clip", (0.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
        ("where", (0.0, 1.0, 2.0), (0.0, 0.0, 1.0)),
        ("where", (1.0, 1.0, 2.0), (0.0, 1.0, 0.0)),
        ("div", (1.0, 0.0), (1e6, 0.0)),
        ("div", (1.0, 2.0), (0.5, -0.25)),
        ("div", (1.0, -1e-7), (-1e6, 0.0)),
    ],
)
def test_documented_kink_conventions(
    name: str, args: tuple[float, ...], want: tuple[float, ...]
) -> None:
    got = OPS[name].partials(*[np.float32(a) for a in args])
    np.testing.assert_allclose([float(g) for g in got], want, rtol=1e-6)


# ----------------------------------------------------------------------------- sympy forms

NONPROTECTED = [op for op in ELEMENTWISE if op.name not in ("div", "log", "exp")]


@pytest.mark.parametrize("op", NONPROTECTED, ids=lambda o: o.name)
def test_sympy_values(op: Op) -> None:
    rng = np.random.default_rng(3)
    syms = sympy.symbols(f"x0:{op.arity}", real=True)
    expr = op.sympy(*syms)
    for _ in range(20):
        vals = [float(np.float32(v)) for v in rng.normal(size=op.arity) * 3]
        if op.name == "min" or op.name == "max":
            vals[1] = vals[0] if rng.random() < 0.3 else vals[1]
        got = float(expr.subs(dict(zip(syms, vals, strict=True))).evalf())
        want = float(op.numpy(*[np.float32(v) for v in vals]))
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_sympy_protected_forms() -> None:
    x, y = sympy.symbols("x y", real=True)
    assert OPS["div"].sympy(x, y) == ops.pdiv(x, y)
    assert OPS["div"].sympy(x, y) != OPS["div"].sympy(y, x)
    assert ops.pdiv(x, y).is_real
    assert OPS["div"].sympy(x, sympy.Integer(2)) == x / 2
    assert OPS["div"].sympy(sympy.Integer(1), sympy.Integer(3)) == sympy.Rational(1, 3)
    assert float(OPS["div"].sympy(sympy.Integer(1), sympy.Integer(0))) == pytest.approx(1e6)
    assert float(OPS["log"].sympy(sympy.Integer(0))) == pytest.approx(math.log(1e-6))
    assert OPS["log"].sympy(sympy.Integer(1)) == 0
    assert OPS["exp"].sympy(sympy.Integer(100)) == sympy.exp(80)
    assert OPS["exp"].sympy(x) == ops.pexp(x) and OPS["log"].sympy(x) == ops.plog(x)
    assert OPS["sqrt"].sympy(x) == sympy.sqrt(sympy.Abs(x))
    # Equal programs must map to equal expressions: the forms are deterministic.
    assert OPS["where"].sympy(x, y, 1) == OPS["where"].sympy(x, y, 1)
    assert set(ops.sympy_functions()) == {"pdiv", "plog", "pexp", "mean", "std", "normalize"}
    assert OPS["normalize"].sympy(x) == ops.normalize(x)
