"""Exported numpy/numba/torch modules agree with the reference evaluator."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import itertools
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import sympy

import evozero
from evozero import export
from evozero.export import runtime_numpy
from evozero.export.codegen import PYTHON_OPERATORS, Form
from evozero.export.embed import runtime
from evozero.export.numpy_codegen import NUMPY_FORMS
from evozero.export.simplify import _simplify_bounded
from evozero.export.torch_codegen import TORCH_FORMS
from evozero.program import Program, dsl, random_program
from evozero.program.evaluate import (
    OBJECTIVE_INPUTS,
    POST_INPUTS,
    SCAN_INPUTS,
    ObjectiveResult,
    run_objective,
    run_post,
    run_scan,
)
from evozero.program.ops import OPS

torch = pytest.importorskip("torch")

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
REFERENCE = sorted(p.stem for p in PROGRAMS.glob("*.evz"))
f32 = np.float32

# Names that collide with the generated module's own identifiers and with nn.Module.
CLASHES = """
const np = 2, T = 0.5, keys = 3, forward = 0.25, constants = 1.5
scan:
  carry B = v_next
  carry shape = 0
  range = r * np
  t = range + B * T
  B = t
  shape = shape + 1
  adv = t + shape / keys
  vtarget = v - constants
post:
  torch = mean(adv) + 2
  adv = normalize(torch * vtarget)
objective:
  scan = logp * keys
  loss = forward
  loss = loss + scan * exp(ratio) / v + where(entropy - 1, v, 2) + adv + vtarget
"""

# Statically scalar values: outputs, carries, batch-op arguments, literal arithmetic.
SCALARS = """
const k = 3
scan:
  carry g = 0
  carry h = v_next
  g = 2 * 3
  h = h + g
  adv = progress + 0.5 * 0.25
  vtarget = where(progress, 1, h)
post:
  adv = mean(2) + std(progress) + normalize(k)
  vtarget = -(0.5) - (k * 2)
objective:
  loss = where(progress, adv, vtarget) + min(1, 2) * max(-(1.5), -2)
"""

SCALAR_LOSS = """
scan:
  adv = 0
  vtarget = 1
objective:
  loss = progress * 2 + sigmoid(0.5) / square(3)
"""

SPECIAL = {"clashes": CLASHES, "scalars": SCALARS, "scalar_loss": SCALAR_LOSS}


def program(name: str) -> Program:
    if name in SPECIAL:
        return dsl.parse(SPECIAL[name], name)
    return dsl.load(PROGRAMS / f"{name}.evz")


def load_module(source: str, path: Path) -> ModuleType:
    """Import generated source from a file (never registered in sys.modules)."""
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def exported(p: Program, backend: str, tmp_path: Path, tag: str = "rule") -> ModuleType:
    return load_module(export.export_source(p, backend, name=tag), tmp_path / f"{tag}_{backend}.py")


def batch(seed: int, T: int = 9, B: int = 5, N: int = 33) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    x = {n: rng.normal(size=(T, B)).astype(f32) for n in SCAN_INPUTS}
    x["term"] = (rng.random((T, B)) < 0.1).astype(f32)
    x["reset"] = np.maximum(x["term"], (rng.random((T, B)) < 0.1).astype(f32))
    o = {n: rng.normal(size=N).astype(f32) for n in OBJECTIVE_INPUTS}
    o["logp_old"] = (o["logp"] + rng.normal(scale=0.3, size=N)).astype(f32)
    return x, o


def reference(
    p: Program, x: dict, o: dict, progress: float
) -> tuple[dict, dict, dict, ObjectiveResult]:
    """evaluate.py on the live program (what export implements)."""
    live = p.live()
    sc = run_scan(live, x, progress)
    post_in = {"adv": sc["adv"], "vtarget": sc["vtarget"], "v": x["v"], "r": x["r"]}
    po = run_post(live, post_in, progress)
    return sc, post_in, po, run_objective(live, o, progress)


def assert_close(
    got: object, want: np.ndarray, what: str, rtol: float = 1e-5, atol: float = 1e-6
) -> None:
    """float32 tolerance; equal infinities and NaNs count as equal."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    with np.errstate(all="ignore"):
        ok = (got == want) | np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    if not ok.all():
        i = np.flatnonzero(~ok.ravel())[:3]
        raise AssertionError(f"{what}: {got.ravel()[i]} != {want.ravel()[i]}")


def run_numpy(
    mod: ModuleType, x: dict, post_in: dict, o: dict, progress: float
) -> tuple[object, object, object]:
    with np.errstate(all="ignore"):
        return (
            mod.scan(*[x[n] for n in SCAN_INPUTS], progress),
            mod.post(*[post_in[n] for n in POST_INPUTS], progress),
            mod.objective(*[o[n] for n in OBJECTIVE_INPUTS], progress),
        )


def check_against_reference(p: Program, outs: tuple, ref: tuple, what: str) -> None:
    (adv, vtarget), (padv, pvtarget), loss = outs
    sc, _, po, res = ref
    assert_close(adv, sc["adv"], f"{what} scan adv")
    assert_close(vtarget, sc["vtarget"], f"{what} scan vtarget")
    # post's mean/std accumulate in float64, not with an exact sum: float32 rounding.
    assert_close(padv, po["adv"], f"{what} post adv", rtol=1e-4, atol=1e-5)
    assert_close(pvtarget, po["vtarget"], f"{what} post vtarget", rtol=1e-4, atol=1e-5)
    assert_close(loss, res.loss, f"{what} loss")


# ----------------------------------------------------------------------------- templates


def test_every_op_has_forms() -> None:
    for forms, module in ((NUMPY_FORMS, "runtime_numpy"), (TORCH_FORMS, "runtime_torch")):
        assert set(forms) | {"add", "sub", "mul", "neg"} == set(OPS)
        for form in forms.values():
            assert set(form.helpers) <= set(runtime(module).functions)
    assert {op.name for op in OPS.values() if op.infix} - {"div"} == PYTHON_OPERATORS


MAX32 = float(np.finfo(f32).max)
#: Edge values: zeros, denormals and the smallest normals, the protection thresholds (exact
#: and just inside), exp's clamp point, sigmoid's overflow, huge values, infinities, NaN.
EDGE = np.array(
    [
        0.0,
        -0.0,
        1e-45,
        -1e-45,
        1e-40,
        -1e-40,
        1e-38,
        -1e-38,
        1e-30,
        -1e-30,
        1e-6,
        -1e-6,
        5e-7,
        -5e-7,
        0.5,
        -0.5,
        1.0,
        -1.0,
        2.0,
        80.0,
        81.0,
        89.0,
        -89.0,
        1e10,
        -1e10,
        1e30,
        -1e30,
        3e38,
        -3e38,
        MAX32,
        -MAX32,
        np.inf,
        -np.inf,
        np.nan,
    ],
    dtype=f32,
)
ELEMENTWISE = [op.name for op in OPS.values() if not op.batch]
#: Ops whose float32 value involves no libm function (bitwise equal across backends).
EXACT = {
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
}
#: Batches for the batch ops: every edge value a with some b as [a, b, -a] (so a cancels
#: in the sum, leaving b, or gives inf - inf = NaN), and the edge values together.
EDGE_BATCHES = [
    np.array([a, b, -a], dtype=f32)
    for a in EDGE
    for b in (0.0, 1e-45, -1e-38, 0.5, -1.0, 1e30, -3e38, np.inf, np.nan)
] + [
    EDGE,
    EDGE[~np.isnan(EDGE)],
    EDGE[np.isfinite(EDGE)],
    EDGE[np.isfinite(EDGE)][::-1].copy(),
    np.random.default_rng(3).normal(loc=1.0, size=(64, 16)).astype(f32),
    np.random.default_rng(4).normal(loc=3.0, scale=1000.0, size=(64, 16)).astype(f32),
]


def op_program(name: str) -> Program:
    args = ", ".join(("logp", "v", "entropy")[: OPS[name].arity])
    return dsl.parse(f"scan:\n  adv = r\n  vtarget = v\nobjective:\n  loss = {name}({args})\n")


def edge_samples(arity: int) -> dict[str, np.ndarray]:
    cols = [
        np.array(c, dtype=f32) for c in zip(*itertools.product(EDGE, repeat=arity), strict=True)
    ]
    n = cols[0].size
    o = {k: np.full(n, 0.25, f32) for k in OBJECTIVE_INPUTS}
    for k, c in zip(("logp", "v", "entropy"), cols, strict=False):
        o[k] = c
    return o


@pytest.mark.parametrize("name", list(OPS))
def test_export_forms_match_op_table(name: str, tmp_path: Path) -> None:
    """Every op's numpy, numba and torch export forms equal the op table on edge values:
    values, and torch autograd against the op's partials (numpy has no derivative form).
    Table-driven: an op added to the table is checked here."""
    numba = pytest.importorskip("numba")
    op = OPS[name]
    exact = name in EXACT or op.batch
    tol = {"rtol": 0.0, "atol": 0.0} if exact else {"rtol": 2e-6, "atol": 1e-6}
    if op.batch:
        p = dsl.parse(
            f"scan:\n  adv = r\n  vtarget = v\npost:\n  adv = {name}(adv)\n"
            "objective:\n  loss = adv\n"
        )
        mod, tmod = exported(p, "numpy", tmp_path), exported(p, "torch", tmp_path)
        jitted = numba.njit(mod.post)
        for x in EDGE_BATCHES:
            want = op.numpy(x)
            with np.errstate(all="ignore"):
                forms = {
                    "numpy": mod.post(x, x, x, x, 0.0)[0],
                    "numba": jitted(x, x, x, x, 0.0)[0],
                    "torch": tmod.post(*[torch.tensor(x)] * 4, 0.0)[0].numpy(),
                }
            for form, got in forms.items():
                # std's float64 sum of squares is within rounding of the exact one.
                assert_close(
                    got,
                    want,
                    f"{form} {name}{x.tolist()}",
                    **({"rtol": 1e-6, "atol": 0.0} if name != "mean" else tol),
                )
        return
    p = op_program(name)
    o = edge_samples(op.arity)
    args = [o[k] for k in ("logp", "v", "entropy")[: op.arity]]
    want = op.numpy(*args)
    mod = exported(p, "numpy", tmp_path)
    with np.errstate(all="ignore"):
        assert_close(
            mod.objective(*[o[n] for n in OBJECTIVE_INPUTS], 0.5), want, f"numpy {name}", **tol
        )
    assert_close(
        numba.njit(mod.objective)(*[o[n] for n in OBJECTIVE_INPUTS], 0.5),
        want,
        f"numba {name}",
        **tol,
    )
    tmod = exported(p, "torch", tmp_path)
    t = {
        n: torch.tensor(o[n], requires_grad=n in ("logp", "v", "entropy")[: op.arity])
        for n in OBJECTIVE_INPUTS
    }
    loss = tmod.objective(*[t[n] for n in OBJECTIVE_INPUTS], 0.5)
    assert_close(loss.detach().numpy(), want, f"torch {name}", **tol)
    wrt = [t[n] for n in ("logp", "v", "entropy")[: op.arity]]
    grads = torch.autograd.grad(loss.sum(), wrt, allow_unused=True, materialize_grads=True)
    for g, d, param in zip(grads, op.partials(*args), op.params, strict=True):
        assert_close(g.numpy(), d, f"torch d{name}/d{param}", **tol)


def test_relu_of_nan_in_every_export(tmp_path: Path) -> None:
    """relu(inf - inf) = relu(NaN) = 0 in the op table, so the loss stays finite."""
    p = dsl.parse(
        "scan:\n  adv = r\n  vtarget = v\nobjective:\n"
        "  big = square(v_old * 1e30)\n  loss = -logp * adv + relu(big - big)\n"
    )
    o = {n: np.full(1, 0.25, f32) for n in OBJECTIVE_INPUTS}
    o.update(logp=np.full(1, -0.5, f32), adv=np.ones(1, f32), v_old=np.full(1, 0.3, f32))
    args = [o[n] for n in OBJECTIVE_INPUTS]
    assert run_objective(p, o, 0.0).loss.tolist() == [0.5]
    with np.errstate(all="ignore"):
        assert exported(p, "numpy", tmp_path).objective(*args, 0.0).tolist() == [0.5]
    tmod = exported(p, "torch", tmp_path)
    assert tmod.objective(*map(torch.tensor, args), 0.0).tolist() == [0.5]


# ----------------------------------------------------------------------------- programs


@pytest.mark.parametrize("name", REFERENCE + list(SPECIAL))
def test_numpy_export_matches_evaluate(name: str, tmp_path: Path) -> None:
    p = program(name)
    mod = exported(p, "numpy", tmp_path, name)
    for seed in range(3):
        x, o = batch(seed)
        ref = reference(p, x, o, 0.1 * seed)
        outs = run_numpy(mod, x, ref[1], o, 0.1 * seed)
        check_against_reference(p, outs, ref, name)


@pytest.mark.parametrize("seed", range(40))
def test_numpy_export_random_programs(seed: int, tmp_path: Path) -> None:
    p = random_program(np.random.default_rng(seed), max_instrs=12)
    mod = exported(p, "numpy", tmp_path)
    x, o = batch(seed)
    ref = reference(p, x, o, 0.7)
    check_against_reference(p, run_numpy(mod, x, ref[1], o, 0.7), ref, str(p))


# Compiling is slow (seconds per function): these cover carries of both kinds, scalars,
# name clashes and batch ops; test_numba_helpers_match_ops covers every op's helper.
@pytest.mark.parametrize("name", ["ppo", "reinforce", "noop", "clashes", "scalars"])
def test_numba_compiles_numpy_export(name: str, tmp_path: Path) -> None:
    numba = pytest.importorskip("numba")
    p = program(name)
    mod = exported(p, "numpy", tmp_path, name)
    jitted = ModuleType("jitted")
    for fn in ("scan", "post", "objective"):
        setattr(jitted, fn, numba.njit(getattr(mod, fn)))
    x, o = batch(1)
    ref = reference(p, x, o, 0.3)
    outs = run_numpy(jitted, x, ref[1], o, 0.3)
    # numba's exp/log/tanh may differ from numpy's by an ulp or two.
    (adv, vt), (padv, pvt), loss = outs
    sc, _, po, res = ref
    for got, want, what in (
        (adv, sc["adv"], "adv"),
        (vt, sc["vtarget"], "vtarget"),
        (padv, po["adv"], "post adv"),
        (pvt, po["vtarget"], "post vt"),
        (loss, res.loss, "loss"),
    ):
        assert np.asarray(got).dtype == np.float32, what
        assert_close(got, want, f"numba {name} {what}", rtol=1e-4, atol=1e-5)


ALL_OPS = (
    "scan:\n  adv = r\n  vtarget = v\npost:\n  adv = "
    + " + ".join(
        f"{n}({', '.join(('adv', 'v', 'r')[: op.arity])})" for n, op in OPS.items() if not op.infix
    )
    + "\nobjective:\n  loss = adv / v\n"
)


@pytest.mark.parametrize("name", REFERENCE + list(SPECIAL))
def test_torch_export_matches_evaluate(name: str, tmp_path: Path) -> None:
    p = program(name)
    mod = exported(p, "torch", tmp_path, name)
    for seed in range(2):
        x, o = batch(seed)
        check_torch(p, mod, x, o, 0.5 * seed, name)


@pytest.mark.parametrize("seed", range(40))
def test_torch_export_random_programs(seed: int, tmp_path: Path) -> None:
    p = random_program(np.random.default_rng(seed), max_instrs=12)
    mod = exported(p, "torch", tmp_path)
    x, o = batch(seed)
    # torch's and numpy's tanh/exp/log differ by an ulp; chains such as tanh'(z) = 1 - t*t
    # near saturation amplify that into the derivatives.
    check_torch(p, mod, x, o, 0.7, str(p), grad_rtol=1e-3, grad_atol=1e-4)


def check_torch(
    p: Program,
    mod: ModuleType,
    x: dict,
    o: dict,
    progress: float,
    what: str,
    grad_rtol: float = 1e-4,
    grad_atol: float = 1e-5,
) -> None:
    """Values of all three functions, and autograd derivatives vs the tangents."""
    ref = reference(p, x, o, progress)
    t = {
        n: torch.tensor(o[n], requires_grad=n in ("logp", "v", "entropy")) for n in OBJECTIVE_INPUTS
    }
    scan_out = mod.scan(*[torch.tensor(x[n]) for n in SCAN_INPUTS], progress)
    post_out = mod.post(*[torch.tensor(ref[1][n]) for n in POST_INPUTS], progress)
    loss = mod.objective(*[t[n] for n in OBJECTIVE_INPUTS], progress)
    assert loss.dtype == torch.float32 and loss.shape == (o["logp"].size,)
    outs = (
        tuple(a.numpy() for a in scan_out),
        tuple(a.numpy() for a in post_out),
        loss.detach().numpy(),
    )
    check_against_reference(p, outs, ref, what)
    if loss.requires_grad:
        grads = torch.autograd.grad(
            loss.sum(), [t["logp"], t["v"], t["entropy"]], allow_unused=True, materialize_grads=True
        )
    else:
        grads = [torch.zeros_like(t["logp"])] * 3
    res = ref[3]
    for g, want, w in zip(
        grads,
        (res.dloss_dlogp, res.dloss_dv, res.dloss_dentropy),
        ("logp", "v", "entropy"),
        strict=True,
    ):
        assert_close(g.numpy(), want, f"{what}\nd loss/d {w}", rtol=grad_rtol, atol=grad_atol)


def test_torch_constants_receive_gradients(tmp_path: Path) -> None:
    """Rule's parameters get gradients through scan -> post -> objective; they agree with
    central differences of the reference evaluator."""
    p = program("ppo")
    mod = exported(p, "torch", tmp_path)
    rule = mod.Rule()
    names = [n for n, _ in rule.named_parameters()]
    assert sorted(names) == sorted(f"constants.{c.name}" for c in p.constants)
    x, o = batch(4, T=32, B=8, N=256)
    tx = {n: torch.tensor(a) for n, a in x.items()}
    tor = {n: torch.tensor(a) for n, a in o.items()}

    def mean_loss(rule_or_values: object) -> torch.Tensor:
        r = rule_or_values
        adv, vt = r.scan(*[tx[n] for n in SCAN_INPUTS], 0.0)
        adv, vt = r.post(adv, vt, tx["v"], tx["r"], 0.0)
        # The minibatch takes the first N rollout entries as its targets.
        o2 = {**tor, "adv": adv.reshape(-1)[:256], "vtarget": vt.reshape(-1)[:256]}
        return r(*[o2[n] for n in OBJECTIVE_INPUTS], 0.0).mean()

    loss = mean_loss(rule)
    loss.backward()
    grads = {c.name: rule.constants[c.name].grad for c in p.constants}
    assert all(g is not None and torch.isfinite(g) for g in grads.values())
    assert float(grads["c_h"]) == pytest.approx(-float(tor["entropy"].mean()), rel=1e-5)

    def reference_loss(values: dict[str, float]) -> float:
        q = p.with_constants(values)
        sc = run_scan(q, x, 0.0)
        po = run_post(
            q, {"adv": sc["adv"], "vtarget": sc["vtarget"], "v": x["v"], "r": x["r"]}, 0.0
        )
        o2 = {**o, "adv": po["adv"].reshape(-1)[:256], "vtarget": po["vtarget"].reshape(-1)[:256]}
        return float(np.mean(run_objective(q, o2, 0.0).loss, dtype=np.float64))

    assert float(loss.detach()) == pytest.approx(reference_loss({}), rel=1e-5)
    for name in ("gamma", "lam", "c_v"):
        v0 = p.constant_values[name]
        h = 2e-3
        fd = (reference_loss({name: v0 + h}) - reference_loss({name: v0 - h})) / (2 * h)
        assert float(grads[name]) == pytest.approx(fd, rel=3e-2, abs=1e-3), name

    # The functional form: constants that require grad, in a dict.
    values = {k: v.detach().clone().requires_grad_() for k, v in mod.constants.items()}
    out = mod.objective(*[tor[n] for n in OBJECTIVE_INPUTS], 0.0, constants=values)
    out.mean().backward()
    assert values["eps"].grad is not None and values["c_v"].grad is not None
    assert values["gamma"].grad is None  # not used by the objective


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_empty_rollout(name: str, tmp_path: Path) -> None:
    p = program(name)
    x = {k: v[:0] for k, v in batch(0)[0].items()}
    mod = exported(p, "numpy", tmp_path, name)
    tmod = exported(p, "torch", tmp_path, name)
    for out in (
        mod.scan(*[x[n] for n in SCAN_INPUTS], 0.0),
        tmod.scan(*[torch.tensor(x[n]) for n in SCAN_INPUTS], 0.0),
    ):
        assert [tuple(a.shape) for a in out] == [(0, 5), (0, 5)]


def test_rule_with_clashing_constant_names(tmp_path: Path) -> None:
    mod = exported(program("clashes"), "torch", tmp_path)
    rule = mod.Rule()
    assert rule.keys["forward"] == "forward_" and rule.keys["np"] == "np"
    assert set(rule.named_constants()) == {"np", "T", "keys", "forward", "constants"}
    x, o = batch(0)
    loss = rule(*[torch.tensor(o[n]) for n in OBJECTIVE_INPUTS], 0.2)
    loss.sum().backward()
    assert rule.constants["forward_"].grad is not None


# ----------------------------------------------------------------------------- the module


@pytest.mark.parametrize("backend", export.BACKENDS)
def test_module_is_standalone_and_documented(backend: str) -> None:
    p = program("ppo")
    src = export.export_source(p, backend, name="ppo", source="programs/ppo.evz")
    tree = ast.parse(src)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == ({"numpy", "numba.extending"} if backend == "numpy" else {"torch"})
    doc = ast.get_docstring(tree)
    assert doc is not None
    assert doc.startswith(f"ppo: an RL update rule exported by evozero {evozero.__version__}")
    assert "Source: programs/ppo.evz" in doc
    assert "  g = delta + gamma * lam * (1 - reset) * g" in doc
    assert "scan(r, term, reset, v, v_next, logp, entropy, progress)" in doc
    assert "objective(logp, logp_old, adv, v, v_old, vtarget, entropy, progress)" in doc
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {"scan", "post", "objective", "scan_step"} <= functions
    assert "safe_div" not in functions  # only the helpers the program uses


def test_numpy_module_works_without_numba(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.setitem(sys.modules, "numba.extending", None)
    p = program("dpo")
    mod = exported(p, "numpy", tmp_path, "nonumba")
    assert mod._jitable(len) is len
    x, o = batch(2)
    ref = reference(p, x, o, 0.0)
    check_against_reference(p, run_numpy(mod, x, ref[1], o, 0.0), ref, "dpo")


def test_export_drops_dead_code() -> None:
    p = dsl.parse(
        "scan:\n  carry dead = 0\n  dead = dead + 1\n  unused = exp(r)\n"
        "  adv = r\n  vtarget = v\nobjective:\n  loss = logp * adv\n"
    )
    src = export.export_source(p, "numpy")
    assert "unused" not in src and "dead" not in src.split('"""', 2)[2]
    assert "safe_exp" not in src


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        export.export_source(program("ppo"), "jax")


def test_write_export(tmp_path: Path) -> None:
    out = tmp_path / "rule.py"
    export.write_export(program("a2c"), out, "torch", source="programs/a2c.evz")
    text = out.read_text()
    assert text.startswith('"""a2c: an RL update rule')
    assert "class Rule(torch.nn.Module)" in text


@pytest.mark.parametrize(
    "source",
    [
        str(PROGRAMS / "ppo.evz"),
        None,
        "runs/r1 candidate 0 (fitness 1.000)",
        "runs/r1 candidate 7",
        "runs/r1 candidate 2 (fitness nan)",
        "runs/r1 candidate 2 (fitness None)",
        "runs/v1.2 candidate 3 (fitness 0.5)",
    ],
)
@pytest.mark.parametrize("backend", export.BACKENDS)
def test_docstring_first_line_is_a_sentence(
    source: str | None, backend: str, tmp_path: Path
) -> None:
    """The rule's name is the program file's stem, or else the output file's: a run's
    candidate is described in the Source line, never cut at a '.' of its fitness."""
    out = tmp_path / "rule_2.py"
    export.write_export(program("ppo"), out, backend, source=source)
    doc = ast.get_docstring(ast.parse(out.read_text()))
    assert doc is not None
    name = "ppo" if source and source.endswith(".evz") else "rule_2"
    assert doc.splitlines()[0] == (
        f"{name}: an RL update rule exported by evozero {evozero.__version__} ({backend})."
    )
    assert doc.splitlines()[1] == ""
    if source:
        assert f"\nSource: {source}\n" in doc


# ----------------------------------------------------------------------------- runtime modules


def _own_functions(module: ModuleType) -> dict[str, object]:
    return {
        n: f
        for n, f in vars(module).items()
        if inspect.isfunction(f) and f.__module__ == module.__name__
    }


def test_runtime_modules_are_what_exports_copy() -> None:
    """Exports copy the runtime modules' functions verbatim, and their imports."""
    from evozero.export import runtime_torch

    for module in (runtime_numpy, runtime_torch):
        rt = runtime(module.__name__.rsplit(".", 1)[1])
        functions = _own_functions(module)
        assert set(rt.functions) == set(functions) - {"_jitable"}  # _jitable: no numba
        for name, text in rt.functions.items():
            assert text == inspect.getsource(functions[name]), name
    numpy_src = export.export_source(dsl.parse(ALL_OPS), "numpy")
    torch_src = export.export_source(dsl.parse(ALL_OPS), "torch")
    for src, module in ((numpy_src, "runtime_numpy"), (torch_src, "runtime_torch")):
        rt = runtime(module)
        assert rt.prelude in src and "evozero" not in rt.prelude
        used = {
            h for forms in (NUMPY_FORMS, TORCH_FORMS) for f in forms.values() for h in f.helpers
        } | {"as_f32"}
        for name, text in rt.functions.items():
            assert (text in src) == (name in used), (module, name)


def called(form: Form) -> str:
    """The helper a form calls (its other helpers are what that one calls)."""
    return form.template.split("(", 1)[0]


@pytest.mark.parametrize("name", [n for n, f in NUMPY_FORMS.items() if f.helpers])
def test_runtime_helpers_match_ops(name: str) -> None:
    """The runtime modules themselves (not a copy) compute the ops' definitions."""
    from evozero.export import runtime_torch

    op = OPS[name]
    if op.batch:
        x = np.random.default_rng(1).normal(loc=2.0, size=(16, 4)).astype(f32)
        samples = [x]
    else:
        o = edge_samples(op.arity)
        samples = [o[k] for k in ("logp", "v", "entropy")][: op.arity]
    with np.errstate(all="ignore"):
        want = op.numpy(*samples)
        got = getattr(runtime_numpy, called(NUMPY_FORMS[name]))(*samples)
    exact = {"rtol": 0.0, "atol": 0.0} if name in EXACT else {"rtol": 1e-6, "atol": 1e-7}
    assert_close(got, want, f"runtime_numpy {name}", **exact)
    torch_form = TORCH_FORMS[name]
    if torch_form.helpers:
        got = getattr(runtime_torch, called(torch_form))(*map(torch.tensor, samples))
        assert_close(
            got.numpy(),
            want,
            f"runtime_torch {name}",
            **({"rtol": 2e-6, "atol": 1e-6} if name not in EXACT else exact),
        )


def test_torch_export_needs_no_torch(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
    src = export.export_source(program("ppo"), "torch")
    assert "class Rule(torch.nn.Module)" in src


# ----------------------------------------------------------------------------- show


def test_pseudocode_is_live_text() -> None:
    p = dsl.parse(
        "const k = 2, unused = 3\nscan:\n  carry c = 0\n  c = c + 1\n"
        "  junk = exp(r)\n  adv = r * k\n  vtarget = v\n"
        "objective:\n  loss = logp * adv\n"
    )
    text = export.pseudocode(p)
    assert "junk" not in text and "carry" not in text and "unused" not in text
    assert dsl.parse(text) == dsl.parse(
        "const k = 2\nscan:\n  adv = r * k\n  vtarget = v\nobjective:\n  loss = logp * adv\n"
    )


def test_latex_blocks() -> None:
    text = export.latex(program("dpo"))
    assert text.count(r"\begin{aligned}") == 3  # scan, post, objective
    assert r"\delta &\leftarrow r + \gamma \cdot \left(1 - term\right) \cdot v_{next} - v" in text
    assert r"\tanh{\left(\frac{ra}{\alpha} \right)}" in text
    assert r"\begin{cases}" in text
    assert "% scan: backwards over t = T-1, ..., 0; carry g = 0 at t = T-1" in text
    text = export.latex(program("td_ac"))
    assert "% (outputs pass through)" in text


def test_latex_of_every_op() -> None:
    for name in OPS:
        arity = OPS[name].arity
        args = ", ".join(("adv", "v", "r")[:arity])
        src = (
            f"scan:\n  adv = r\n  vtarget = v\npost:\n  adv = {name}({args})\n"
            "objective:\n  loss = adv\n"
        )
        text = export.latex(dsl.parse(src))
        assert "adv &\\leftarrow" in text, name
        assert not any(f in text for f in ("pdiv", "plog", "pexp")), text


def test_latex_of_powers_of_protected_and_batch_ops() -> None:
    src = (
        "scan:\n  adv = r\n  vtarget = v\n"
        "post:\n  adv = square(normalize(adv)) + square(mean(adv))\n"
        "objective:\n  loss = square(exp(v)) + square(log(v)) + square(v / adv)\n"
    )
    text = export.latex(dsl.parse(src))
    assert r"\left(\operatorname{normalize}\left(adv\right)\right)^{2}" in text
    assert (
        r"loss &\leftarrow \left(\exp\left(v\right)\right)^{2} + \left(\log\left|v"
        r"\right|\right)^{2} + \left(\frac{v}{adv}\right)^{2}"
    ) in text


def test_latex_falls_back_to_program_text_where_sympy_fails(monkeypatch) -> None:
    latex = sys.modules["evozero.export.latex"]  # the package's `latex` is the function
    build = latex._sympy_statement

    def failing(node):
        if getattr(node, "op", None) == "where":
            raise RecursionError("sympy")
        return build(node)

    monkeypatch.setattr(latex, "_sympy_statement", failing)
    src = (
        "scan:\n  adv = r\n  vtarget = v\n"
        "objective:\n  loss = where(v_old - 1.5, v, adv) + 1\n  loss = loss * 2\n"
    )
    text = export.latex(dsl.parse(src))
    assert r"loss &\leftarrow \texttt{where(v\_old - 1.5, v, adv) + 1}" in text
    assert r"loss &\leftarrow loss \cdot 2" in text


def test_simplified_outputs() -> None:
    out = export.simplified(program("ppo"), timeout=20)
    assert set(out) == {"scan", "post", "objective"}
    adv = out["scan"]["adv"]
    assert adv.simplified and adv.expr is not None
    g1, gamma, lam, reset = sympy.symbols("g[t+1] gamma lam reset", real=True)
    assert sympy.expand(adv.expr).coeff(g1) == sympy.expand(gamma * lam * (1 - reset))
    assert out["post"]["vtarget"].simplified  # an atom: nothing to do


def test_simplify_timeout_falls_back() -> None:
    # A zero time budget: every non-trivial output comes back unsimplified.
    out = export.simplified(program("ppo"), timeout=0)
    loss = out["objective"]["loss"]
    assert not loss.simplified and loss.expr is not None
    assert _simplify_bounded(sympy.Symbol("x") + 1, 0.0)[1] is False


def test_simplify_is_abandoned_after_timeout(monkeypatch) -> None:
    """A simplify that would never finish (nor heed a cancellation: it sleeps in C) is
    abandoned after the time bound."""
    import time

    def forever(expr: object, **kwargs: object) -> object:
        time.sleep(60)
        return expr

    monkeypatch.setattr(sympy, "simplify", forever)
    expr = sympy.Symbol("x") * 2 + 1
    start = time.perf_counter()
    got, ok = _simplify_bounded(expr, 0.5)
    assert (got, ok) == (expr, False)
    assert time.perf_counter() - start < 10
