"""The .evz text format: parsing, printing, round trips, reference programs, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evozero.program import (
    INPUTS,
    Call,
    Instr,
    Program,
    ProgramError,
    random_program,
)
from evozero.program.dsl import dump, format_literal, load, parse, render_expr, to_text
from evozero.program.ops import OPS

PROGRAMS = Path(__file__).resolve().parent.parent / "programs"
REFERENCE = ["reinforce", "a2c", "ppo", "dpo", "td_ac", "noop"]

SKETCH = """\
# PPO with GAE: clipped surrogate, normalized advantages
const gamma = 0.99, lam = 0.95, eps = 0.2, c_v = 0.5, c_h = 0.01

scan:
  carry g = 0
  delta = r + gamma * (1 - term) * v_next - v
  g = delta + gamma * lam * (1 - reset) * g
  adv = g
  vtarget = g + v

post:
  adv = normalize(adv)

objective:
  surr = min(ratio * adv, clip(ratio, 1 - eps, 1 + eps) * adv)
  loss = -surr + c_v * square(v - vtarget) - c_h * entropy
"""


def wrap(
    scan: str = "adv = r\nvtarget = r",
    objective: str = "loss = -logp * adv",
    post: str = "",
    consts: str = "",
) -> str:
    def block(body: str) -> str:
        return "".join(f"  {line}\n" for line in body.splitlines())

    head = f"{consts}\n" if consts else ""
    return f"{head}scan:\n{block(scan)}post:\n{block(post)}objective:\n{block(objective)}"


def body(p: Program, kind: str) -> list[str]:
    """The printed statements of one component."""
    lines = to_text(p).splitlines()
    start = lines.index(f"{kind}:") + 1
    out = []
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        out.append(line.strip())
    return out


# ----------------------------------------------------------------------------- a tiny interpreter
# Reference semantics for the tests: scan runs backwards over time with carries.


def run(instrs: tuple[Instr, ...], env: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    env = dict(env)
    with np.errstate(all="ignore"):
        for ins in instrs:
            vals = [env[a] if isinstance(a, str) else np.float32(a) for a in ins.args]
            env[ins.target] = OPS[ins.op].numpy(*vals)
    return env


def run_program(p: Program, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run scan (backwards over axis 0), post and objective; returns adv, vtarget, loss."""
    consts = {c.name: np.float32(c.value) for c in p.constants}
    steps = data["r"].shape[0]
    adv = np.zeros_like(data["r"])
    vtarget = np.zeros_like(data["r"])
    carry = {
        c.name: (np.zeros_like(data["r"][0]) if c.init == "0" else data["v_next"][steps - 1])
        for c in p.scan.carries
    }
    for t in range(steps - 1, -1, -1):
        env = {n: data[n][t] for n in INPUTS["scan"]} | consts | carry
        out = run(p.scan.instrs, env)
        adv[t], vtarget[t] = out["adv"], out["vtarget"]
        carry = {c.name: out[c.name] for c in p.scan.carries}
    env = {
        "adv": adv,
        "vtarget": vtarget,
        "v": data["v"],
        "r": data["r"],
        "progress": data["progress"],
    } | consts
    out = run(p.post.instrs, env)
    adv, vtarget = out["adv"], out["vtarget"]
    env = {n: data[n] for n in INPUTS["objective"] if n not in ("adv", "vtarget")}
    env |= {"adv": adv, "vtarget": vtarget} | consts
    loss = run(p.objective.instrs, env)["loss"]
    return {"adv": adv, "vtarget": vtarget, "loss": np.broadcast_to(loss, adv.shape)}


def rollout(seed: int = 0, steps: int = 12, envs: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def f(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    term = f(rng.random((steps, envs)) < 0.15)
    reset = np.maximum(term, f(rng.random((steps, envs)) < 0.1))
    logp = f(-rng.random((steps, envs)) * 2)
    logp_old = f(logp + rng.normal(size=(steps, envs)) * 0.2)
    v = f(rng.normal(size=(steps, envs)))
    return {
        "r": f(rng.normal(size=(steps, envs))),
        "term": term,
        "reset": reset,
        "v": v,
        "v_next": f(rng.normal(size=(steps, envs))),
        "logp": logp,
        "logp_old": logp_old,
        "ratio": f(np.exp(logp - logp_old)),
        "entropy": f(rng.random((steps, envs))),
        "v_old": f(v + rng.normal(size=(steps, envs)) * 0.3),
        "progress": np.full((steps, envs), 0.25, np.float32),
    }


def gae(d: dict[str, np.ndarray], gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Straightforward float64 GAE (term cuts the bootstrap, reset cuts the trace)."""
    adv = np.zeros(d["r"].shape)
    g = np.zeros(d["r"].shape[1])
    for t in range(d["r"].shape[0] - 1, -1, -1):
        delta = d["r"][t] + gamma * (1 - d["term"][t]) * d["v_next"][t] - d["v"][t]
        g = delta + gamma * lam * (1 - d["reset"][t]) * g
        adv[t] = g
    return adv, adv + d["v"]


# ----------------------------------------------------------------------------- reference programs


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_programs_parse_and_round_trip(name: str) -> None:
    path = PROGRAMS / f"{name}.evz"
    text = path.read_text()
    assert text.startswith("# "), "each reference program names its source in a header"
    p = load(path)
    assert parse(to_text(p)) == p
    assert to_text(parse(to_text(p))) == to_text(p)
    assert p.live().complexity() == p.complexity()


def test_sketch_from_architecture() -> None:
    p = parse(SKETCH, "sketch.evz")
    assert p.scan.carry_names == ("g",)
    assert [i.op for i in p.post.instrs] == ["normalize"]
    assert (
        to_text(p).split("\n", 2)[0] == "const gamma = 0.99, lam = 0.95, eps = 0.2, "
        "c_v = 0.5, c_h = 0.01"
    )
    assert body(p, "objective") == [
        "surr = min(ratio * adv, clip(ratio, 1 - eps, 1 + eps) * adv)",
        "loss = -surr + c_v * square(v - vtarget) - c_h * entropy",
    ]


def test_ppo_computes_purejaxrl_loss() -> None:
    p = load(PROGRAMS / "ppo.evz")
    assert p.constant_values == pytest.approx(
        {"gamma": 0.99, "lam": 0.95, "eps": 0.2, "c_v": 0.5, "c_h": 0.01}
    )
    d = rollout()
    out = run_program(p, d)
    adv, vtarget = gae(d, 0.99, 0.95)
    np.testing.assert_allclose(out["vtarget"], vtarget, rtol=1e-5, atol=1e-5)
    a = (adv - adv.mean()) / (adv.std() + 1e-8)
    np.testing.assert_allclose(out["adv"], a, rtol=1e-4, atol=1e-5)
    ratio, v, v_old = d["ratio"], d["v"], d["v_old"]
    actor = -np.minimum(ratio * a, np.clip(ratio, 0.8, 1.2) * a)
    v_clipped = v_old + np.clip(v - v_old, -0.2, 0.2)
    value = 0.5 * np.maximum((v - vtarget) ** 2, (v_clipped - vtarget) ** 2)
    want = actor + 0.5 * value - 0.01 * d["entropy"]
    np.testing.assert_allclose(out["loss"], want, rtol=1e-4, atol=1e-5)


def test_dpo_computes_the_paper_objective() -> None:
    p = load(PROGRAMS / "dpo.evz")
    assert p.constant_values["alpha"] == 2 and p.constant_values["beta"] == pytest.approx(0.6)
    d = rollout(1)
    out = run_program(p, d)
    adv, vtarget = gae(d, 0.99, 0.95)
    a = (adv - adv.mean()) / (adv.std() + 1e-8)
    r = d["ratio"].astype(np.float64)
    drift1 = np.maximum((r - 1) * a - 2 * np.tanh((r - 1) * a / 2), 0)
    drift2 = np.maximum(np.log(r) * a - 0.6 * np.tanh(np.log(r) * a / 0.6), 0)
    drift = np.where(a >= 0, drift1, drift2)
    v, v_old = d["v"], d["v_old"]
    v_clipped = v_old + np.clip(v - v_old, -0.2, 0.2)
    value = 0.5 * np.maximum((v - vtarget) ** 2, (v_clipped - vtarget) ** 2)
    want = -(r * a - drift) + 0.5 * value - 0.01 * d["entropy"]
    np.testing.assert_allclose(out["loss"], want, rtol=1e-4, atol=1e-5)


def test_a2c_td_reinforce_noop() -> None:
    d = rollout(2)
    out = run_program(load(PROGRAMS / "a2c.evz"), d)
    adv, vtarget = gae(d, 0.99, 0.95)
    np.testing.assert_allclose(out["adv"], adv, rtol=1e-5, atol=1e-5)
    want = -d["logp"] * adv + 0.5 * (d["v"] - vtarget) ** 2 - 0.01 * d["entropy"]
    np.testing.assert_allclose(out["loss"], want, rtol=1e-5, atol=1e-5)

    out = run_program(load(PROGRAMS / "td_ac.evz"), d)
    target = d["r"] + 0.99 * (1 - d["term"]) * d["v_next"]
    np.testing.assert_allclose(out["vtarget"], target, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["adv"], target - d["v"], rtol=1e-6, atol=1e-6)

    out = run_program(load(PROGRAMS / "reinforce.evz"), d)
    ret = np.zeros(d["r"].shape)
    nxt = d["v_next"][-1].astype(np.float64)
    for t in range(d["r"].shape[0] - 1, -1, -1):
        boot = np.where(d["reset"][t] > 0, d["v_next"][t], nxt)
        ret[t] = nxt = d["r"][t] + 0.99 * (1 - d["term"][t]) * boot
    np.testing.assert_allclose(out["vtarget"], ret, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["adv"], ret - d["v"], rtol=1e-5, atol=1e-5)

    noop = load(PROGRAMS / "noop.evz")
    assert noop.complexity() == 0
    assert np.all(run_program(noop, d)["loss"] == 0)


# ----------------------------------------------------------------------------- syntax details


@pytest.mark.parametrize(
    ("src", "printed"),
    [
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("a + (b + c)", "a + (b + c)"),
        ("a / (b * c)", "a / (b * c)"),
        ("(a * b) / c", "a * b / c"),
        ("(a + b) * c", "(a + b) * c"),
        ("-a * b", "-a * b"),
        ("-(a * b)", "-(a * b)"),
        ("- -a", "--a"),
        ("-(-a)", "--a"),
        ("+a", "a"),
        ("-0.5 * a", "-0.5 * a"),
        ("a - -0.5", "a - -0.5"),
        ("-(0.5)", "-(0.5)"),
        ("-(-0.5)", "-(-0.5)"),
        ("--0.5", "-(-0.5)"),
        ("a * -(2)", "a * -(2)"),
        ("exp(-a + 1)", "exp(-a + 1)"),
        ("copy(a + b)", "copy(a + b)"),
        ("copy(a)", "a"),
        ("a", "a"),
        ("1e-30", "1e-30"),
        ("-3.4028235e38", "-3.4028235e+38"),
        ("100", "100"),
        ("1.0", "1"),
        ("0.1", "0.1"),
        ("2.5e6", "2.5e+06"),
        ("0.00001", "1e-05"),
        ("where(a, b, c) - min(a, clip(b, 0, 1))", "where(a, b, c) - min(a, clip(b, 0, 1))"),
    ],
)
def test_expression_printing(src: str, printed: str) -> None:
    p = parse(wrap(scan=f"a = r\nb = v\nc = term\nx = {src}\nadv = x\nvtarget = r"))
    assert body(p, "scan")[3] == f"x = {printed}"
    assert parse(to_text(p)) == p


def test_negative_literal_versus_neg() -> None:
    p = parse(wrap(scan="x = -0.5\ny = -(0.5)\nz = - 0.5\nadv = x + y + z\nvtarget = r"))
    ins = {i.target: i for i in p.scan.instrs}
    assert (ins["x"].op, ins["x"].args) == ("copy", (-0.5,))
    assert (ins["y"].op, ins["y"].args) == ("neg", (0.5,))
    assert (ins["z"].op, ins["z"].args) == ("copy", (-0.5,))


def test_flattening_into_temporaries() -> None:
    p = parse(wrap(scan="adv = r + 2 * exp(v)\nvtarget = r"))
    assert [(i.target, i.op, i.args) for i in p.scan.instrs] == [
        ("_1", "exp", ("v",)),
        ("_2", "mul", (2.0, "_1")),
        ("adv", "add", ("r", "_2")),
        ("vtarget", "copy", ("r",)),
    ]


def test_explicit_temporaries_are_accepted_and_renumbered() -> None:
    p = parse(wrap(scan="_9 = exp(v)\nadv = _9 * _9 + exp(r)\nvtarget = _9"))
    assert body(p, "scan") == ["_1 = exp(v)", "adv = _1 * _1 + exp(r)", "vtarget = _1"]
    q = parse(wrap(scan="_1 = exp(v)\nadv = _1 * _1 + exp(r)\nvtarget = _1"))
    assert p == q


def test_comments_blank_lines_crlf_tabs_and_order() -> None:
    text = (
        "# header\r\n\r\nobjective:   # the loss\r\n\tloss = -logp * adv  # pg\r\n"
        "const k = 2  # late constant\r\nscan:\r\n\tadv = r * k\r\n\tvtarget = r\r\n"
    )
    p = parse(text)
    assert p.constant_values == {"k": 2.0}
    assert p == parse(wrap(scan="adv = r * k\nvtarget = r", consts="const k = 2"))


def test_const_syntax() -> None:
    p = parse("const a = -1.5, b=2e-3,c = +4\nconst d = 0\n" + wrap())
    assert p.constant_values == {"a": -1.5, "b": float(np.float32(2e-3)), "c": 4.0, "d": 0.0}
    long = ", ".join(f"k{i} = {i}.5" for i in range(30))
    q = parse(f"const {long}\n" + wrap())
    text = to_text(q)
    assert all(len(line) <= 88 for line in text.splitlines())
    assert parse(text) == q


def test_carry_syntax() -> None:
    p = parse(wrap(scan="carry g = 0.0\ncarry h = v_next\ng = g + h\nadv = g\nvtarget = r"))
    assert [(c.name, c.init) for c in p.scan.carries] == [("g", "0"), ("h", "v_next")]
    assert body(p, "scan")[:2] == ["carry g = 0", "carry h = v_next"]


def test_header_and_dump(tmp_path: Path) -> None:
    p = load(PROGRAMS / "td_ac.evz")
    text = to_text(p, header="found by run 7\nscore 1.3")
    assert text.startswith("# found by run 7\n# score 1.3\n\n")
    assert parse(text) == p
    path = tmp_path / "x.evz"
    dump(p, path, header="hello")
    assert load(path) == p
    assert str(p) == to_text(p)


def test_render_expr() -> None:
    assert render_expr(Call("sub", ("a", Call("neg", (0.5,))))) == "a - -(0.5)"
    assert render_expr(Call("mul", (-2.0, "x"))) == "-2 * x"


# ----------------------------------------------------------------------------- round trips


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_format_literal_round_trips(x: float) -> None:
    s = format_literal(x)
    assert float(np.float32(float(s))) == float(np.float32(x))
    p = parse(wrap(scan=f"adv = r * {s}\nvtarget = r"))
    want = 0.0 if x == 0 else float(np.float32(x))
    assert p.scan.instrs[0].args[1] == want


def test_format_literal_round_trips_on_random_bit_patterns() -> None:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    xs = bits.view(np.float32)
    xs = xs[np.isfinite(xs)]
    for x in xs[:50_000]:
        assert np.float32(float(format_literal(float(x)))) == x


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    max_instrs=st.integers(0, 16),
    max_carries=st.integers(0, 4),
    p_temp=st.floats(0, 0.9),
    p_literal=st.floats(0, 0.6),
    p_reassign=st.floats(0, 0.5),
)
def test_random_programs_round_trip(
    seed: int, max_instrs: int, max_carries: int, p_temp: float, p_literal: float, p_reassign: float
) -> None:
    p = random_program(
        np.random.default_rng(seed),
        max_instrs=max_instrs,
        max_carries=max_carries,
        p_temp=p_temp,
        p_literal=p_literal,
        p_reassign=p_reassign,
    )
    text = to_text(p)
    q = parse(text)
    assert q == p
    assert to_text(q) == text
    assert parse(to_text(p.live())) == p.live()


# ----------------------------------------------------------------------------- errors

HEAD = "const gamma = 0.99\n\nscan:\n  carry g = 0\n"
TAIL = "  adv = g\n  vtarget = g + v\n\nobjective:\n  loss = -logp * adv\n"
OBJ = "objective:\n  loss = -logp * adv\n"
ST = "scan:\n  adv = r\n  vtarget = r\n"

BAD_INPUTS = [
    (
        HEAD + "  g = r + gama * g\n" + TAIL,
        "t.evz:5:11: unknown name 'gama' in scan; did you mean 'gamma'?",
    ),
    (
        HEAD + "  g = r + exq(g)\n" + TAIL,
        "t.evz:5:11: unknown op 'exq' in scan; did you mean 'exp'?",
    ),
    (
        "scan:\n  adv = r + 2 * foo(v)\n  vtarget = r\n" + OBJ,
        "t.evz:2:17: unknown op 'foo' in scan",
    ),
    (HEAD + "  g = clip(r, 1)\n" + TAIL, "t.evz:5:7: clip(x, lo, hi) takes 3 arguments, got 2"),
    (
        HEAD + "  g = r * ratio\n" + TAIL,
        "t.evz:5:11: 'ratio' is not an input of scan (it is an input of objective)",
    ),
    (
        ST + "objective:\n  loss = normalize(adv)\n",
        "t.evz:5:10: op 'normalize' is not allowed in objective (only in post)",
    ),
    (
        "scan:\n  adv = x + 1\n  x = r\n  vtarget = r\n" + OBJ,
        "t.evz:2:9: 'x' is used before it is assigned in scan",
    ),
    ("scan:\n  adv = r\n" + OBJ, "t.evz:1:1: scan never assigns its output 'vtarget'"),
    ("scan:\n  adv = r\n  vtarget = r\n", "t.evz: missing section 'objective:'"),
    (
        HEAD + "  g = r ** 2\n" + TAIL,
        "t.evz:5:7: operator '**' is not supported; use square(x), sqrt(x) or exp/log; "
        "expected names, numbers, + - * /, unary -, and op calls",
    ),
    (
        "scan:\n  adv = r % 2\n  vtarget = r\n" + OBJ,
        "t.evz:2:9: operator '%' is not supported; expected names, numbers, + - * /, unary -, "
        "and op calls",
    ),
    (
        HEAD + "  g = r > 0\n" + TAIL,
        "t.evz:5:7: comparisons are not supported; use where(c, a, b), which picks a where c > 0",
    ),
    (
        HEAD + "  g = r if v else 0\n" + TAIL,
        "t.evz:5:7: conditional expressions are not supported; use where(c, a, b)",
    ),
    (
        HEAD + "  g = __import__('os').system('true')\n" + TAIL,
        "t.evz:5:7: only op calls like exp(x) are supported; expected names, numbers, "
        "+ - * /, unary -, and op calls",
    ),
    (
        "scan:\n  adv = r.sum()\n  vtarget = r\n" + OBJ,
        "t.evz:2:9: only op calls like exp(x) are supported; expected names, numbers, "
        "+ - * /, unary -, and op calls",
    ),
    (
        "scan:\n  adv = r[0]\n  vtarget = r\n" + OBJ,
        "t.evz:2:9: subscripts not supported; expected names, numbers, + - * /, unary -, and "
        "op calls",
    ),
    (
        "scan:\n  adv = not r\n  vtarget = r\n" + OBJ,
        "t.evz:2:9: operator 'not' is not supported; expected names, numbers, + - * /, "
        "unary -, and op calls",
    ),
    (
        "scan:\n  adv = (y := r)\n  vtarget = r\n" + OBJ,
        "t.evz:2:10: assignment expressions not supported; expected names, numbers, + - * /, "
        "unary -, and op calls",
    ),
    (
        HEAD + "  g = 'hello'\n" + TAIL,
        "t.evz:5:7: only numbers are allowed as literals, got 'hello'",
    ),
    (
        "scan:\n  adv = r * True\n  vtarget = r\n" + OBJ,
        "t.evz:2:13: only numbers are allowed as literals, got True",
    ),
    (
        "scan:\n  adv = r * 1j\n  vtarget = r\n" + OBJ,
        "t.evz:2:13: only numbers are allowed as literals, got 1j",
    ),
    (HEAD + "  g = min(r, b=2)\n" + TAIL, "t.evz:5:14: min() takes positional arguments only"),
    (
        "scan:\n  adv = min(*r)\n  vtarget = r\n" + OBJ,
        "t.evz:2:13: min() takes positional arguments only",
    ),
    (HEAD + "  g = r + * 2\n" + TAIL, "t.evz:5:11: invalid syntax"),
    (HEAD + "  g = (r + 2\n" + TAIL, "t.evz:5:7: invalid syntax: '(' was never closed"),
    (HEAD + "  g r + 2\n" + TAIL, "t.evz:5:3: expected 'name = expression'"),
    (HEAD + "  g =\n" + TAIL, "t.evz:5:6: expected an expression after '='"),
    (
        "scan:\n  carry g = 1\n  adv = g\n  vtarget = r\n" + OBJ,
        "t.evz:2:13: carry 'g' has initial value '1'; it must be 0 or v_next",
    ),
    (
        ST + "post:\n  carry h = 0\n" + OBJ,
        "t.evz:5:3: carries are only allowed in scan, not in post",
    ),
    (
        "scan:\n  adv = r\n  carry h = 0\n  vtarget = r\n" + OBJ,
        "t.evz:3:3: carry declarations must come before the first instruction of scan",
    ),
    (
        "scan:\n"
        + "".join(f"  carry {c} = 0\n" for c in "abcde")
        + "  adv = r\n  vtarget = r\n"
        + OBJ,
        "t.evz:6:3: scan declares 5 carries; at most 4 are allowed",
    ),
    ("sacn:\n  adv = r\n", "t.evz:1:1: unknown section 'sacn'; did you mean 'scan'?"),
    (ST + "scan:\n" + OBJ, "t.evz:4:1: duplicate section 'scan:' (first at line 1)"),
    (
        "  adv = r\n",
        "t.evz:1:3: indented line outside a section; expected 'scan:', 'post:' "
        "or 'objective:' first",
    ),
    (
        "hello world\n",
        "t.evz:1:1: expected 'const ...', 'scan:', 'post:' or 'objective:' "
        "(section bodies are indented)",
    ),
    ("const gamma = abc\n", "t.evz:1:15: expected a number, got 'abc'"),
    ("const\n", "t.evz:1:6: expected 'name = number' after 'const'"),
    ("const a = 1,\n", "t.evz:1:13: expected 'name = number' in const declaration"),
    (
        "const lambda = 0.95\n",
        "t.evz:1:7: 'lambda' is a Python keyword and cannot be a constant name",
    ),
    ("const gamma = 0.9, gamma = 0.8\n" + ST + OBJ, "t.evz:1:20: duplicate constant 'gamma'"),
    (
        "const v = 0.9\n" + ST + OBJ,
        "t.evz:1:7: constant 'v' has the name of an input (of scan and post and objective)",
    ),
    ("const big = 1e39\n", "t.evz:1:13: number 1e39 is out of float32 range"),
    (
        "scan:\n  adv = r * 1e39\n  vtarget = r\n" + OBJ,
        "t.evz:2:13: number 1e39 is out of float32 range",
    ),
    (
        "scan:\n  adv = r * -1e39\n  vtarget = r\n" + OBJ,
        "t.evz:2:13: number -1e39 is out of float32 range",
    ),
    ("const \u03bb = 0.95\n", "t.evz:1:7: non-ASCII character '\u03bb' (programs are ASCII)"),
    (
        "const gamma = 0.9\nscan:\n  gamma = r\n  adv = r\n  vtarget = r\n" + OBJ,
        "t.evz:3:3: cannot assign to constant 'gamma'",
    ),
    (
        "scan:\n  lambda = r\n  adv = r\n  vtarget = r\n" + OBJ,
        "t.evz:2:3: 'lambda' is a Python keyword and cannot be a name",
    ),
    (
        "scan:\n  exp = r\n  adv = r\n  vtarget = r\n" + OBJ,
        "t.evz:2:3: 'exp' is an op and cannot be a name",
    ),
    ("scan:\n  1x = r\n  adv = r\n  vtarget = r\n" + OBJ, "t.evz:2:3: invalid name '1x'"),
]


@pytest.mark.parametrize(("text", "message"), BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_inputs(text: str, message: str) -> None:
    with pytest.raises(ProgramError) as err:
        parse(text, "t.evz")
    assert str(err.value) == message
    assert err.value.file == "t.evz"


def test_load_reports_the_path(tmp_path: Path) -> None:
    path = tmp_path / "ppo.evz"
    path.write_text("const gamma = 0.99\nscan:\n  adv = r\n  vtarget = r * gama\n" + OBJ)
    with pytest.raises(ProgramError) as err:
        load(path)
    assert str(err.value) == f"{path}:4:17: unknown name 'gama' in scan; did you mean 'gamma'?"
    assert err.value.line == 4 and err.value.col == 17


def test_parser_never_evaluates(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def boom(*args: object, **kw: object) -> None:
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    assert parse(SKETCH) == parse(SKETCH)
    with pytest.raises(ProgramError):
        parse(wrap(scan="adv = exec('1')\nvtarget = r"))
