"""The program model: vocabulary, validation, normal form, liveness, graph."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from evozero.program import (
    CARRY_INITS,
    COMPONENTS,
    INPUTS,
    MAX_CARRIES,
    OUTPUTS,
    Carry,
    Component,
    Const,
    Instr,
    Loc,
    Program,
    ProgramError,
    expression_forest,
    is_temp,
    normalize_instrs,
    random_parts,
    random_program,
)
from evozero.program.liveness import ComponentLiveness, liveness, program_liveness
from evozero.program.ops import OPS


def run_component(instrs: tuple[Instr, ...], env: dict[str, np.ndarray]) -> dict[str, object]:
    """Reference semantics: execute straight-line code, latest binding wins."""
    env = dict(env)
    with np.errstate(all="ignore"):
        for ins in instrs:
            args = [env[a] if isinstance(a, str) else np.float32(a) for a in ins.args]
            env[ins.target] = OPS[ins.op].numpy(*args)
    return env


def component_env(
    kind: str, constants: tuple[Const, ...], carries: tuple[Carry, ...], seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    env = {n: rng.normal(size=16).astype(np.float32) for n in INPUTS[kind]}
    env.update({c.name: np.float32(c.value) for c in constants})
    env.update({c.name: rng.normal(size=16).astype(np.float32) for c in carries})
    return env


def outputs_of(env: dict[str, object], names: tuple[str, ...]) -> list[np.ndarray]:
    return [np.broadcast_to(np.asarray(env[n], dtype=np.float32), (16,)) for n in names]


PPO_OBJECTIVE = [
    ("_1", "mul", "ratio", "adv"),
    ("_2", "sub", 1, "eps"),
    ("_3", "add", 1, "eps"),
    ("_4", "clip", "ratio", "_2", "_3"),
    ("_5", "mul", "_4", "adv"),
    ("surr", "min", "_1", "_5"),
    ("_6", "neg", "surr"),
    ("_7", "sub", "v", "vtarget"),
    ("_8", "square", "_7"),
    ("_9", "mul", "c_v", "_8"),
    ("loss", "add", "_6", "_9"),
]


def simple(**kw: object) -> Program:
    """A small valid program; keyword arguments override parts of it."""
    parts: dict[str, object] = {
        "constants": {"gamma": 0.99, "eps": 0.2, "c_v": 0.5},
        "scan": [
            ("delta", "sub", "r", "v"),
            ("adv", "copy", "delta"),
            ("vtarget", "add", "delta", "v"),
        ],
        "carries": [],
        "post": [],
        "objective": PPO_OBJECTIVE,
    }
    parts.update(kw)
    constants = parts.pop("constants")
    return Program.build(constants, **parts)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- vocabulary


def test_vocabulary() -> None:
    assert COMPONENTS == ("scan", "post", "objective")
    assert INPUTS["scan"] == ("r", "term", "reset", "v", "v_next", "logp", "entropy", "progress")
    assert INPUTS["post"] == ("adv", "vtarget", "v", "r", "progress")
    assert INPUTS["objective"] == (
        "logp",
        "logp_old",
        "ratio",
        "adv",
        "v",
        "v_old",
        "vtarget",
        "entropy",
        "progress",
    )
    assert OUTPUTS == {
        "scan": ("adv", "vtarget"),
        "post": ("adv", "vtarget"),
        "objective": ("loss",),
    }
    assert MAX_CARRIES == 4 and CARRY_INITS == ("0", "v_next")


# ----------------------------------------------------------------------------- data model


def test_structural_equality_and_hash() -> None:
    a, b = simple(), simple()
    assert a == b and hash(a) == hash(b) and a is not b
    assert len({a, b}) == 1
    c = simple(constants={"gamma": 0.98, "eps": 0.2, "c_v": 0.5})
    assert c != a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.constants = ()  # type: ignore[misc]


def test_locations_do_not_affect_equality() -> None:
    i1 = Instr("x", "add", ("r", 1.0), loc=Loc("a.evz", 1, 2))
    i2 = Instr("x", "add", ("r", 1), loc=Loc("b.evz", 3, 4))
    assert i1 == i2 and hash(i1) == hash(i2)


def test_literals_are_float32() -> None:
    ins = Instr("x", "add", ("r", 0.1))
    assert ins.args[1] == float(np.float32(0.1))
    assert Instr("x", "neg", (-0.0,)).args == (0.0,)
    assert Instr("x", "neg", (np.float64(2),)).args == (2.0,)
    with pytest.raises(ProgramError, match="not a finite float32"):
        Instr("x", "neg", (1e39,))
    with pytest.raises(ProgramError, match="not a finite float32"):
        Instr("x", "neg", (float("nan"),))
    with pytest.raises(ProgramError, match="not a number"):
        Instr("x", "neg", (True,))
    with pytest.raises(ProgramError, match="constant 'k': literal inf is not a finite"):
        Const("k", float("inf"))


def test_accessors() -> None:
    p = simple()
    assert p.components == (p.scan, p.post, p.objective)
    assert p.component("post") is p.post
    with pytest.raises(KeyError):
        p.component("nope")
    assert p.constant_values == {"gamma": np.float32(0.99), "eps": np.float32(0.2), "c_v": 0.5}
    q = p.with_constants({"eps": 0.1})
    assert q.constant_values["eps"] == float(np.float32(0.1)) and q.scan == p.scan
    with pytest.raises(KeyError):
        p.with_constants({"nope": 1.0})
    new_post = Component("post", (Instr("adv", "normalize", ("adv",)),))
    assert p.with_component(new_post).post.instrs == new_post.instrs
    assert p.scan.outputs == ("adv", "vtarget") and p.scan.inputs == INPUTS["scan"]
    assert p.ops_used() >= {"sub", "copy", "add", "clip", "min"}


def test_program_error_format_and_pickle() -> None:
    e = ProgramError("boom", Loc("f.evz", 3, 7))
    assert str(e) == "f.evz:3:7: boom" and e.loc == Loc("f.evz", 3, 7)
    assert str(ProgramError("boom")) == "boom"
    assert str(ProgramError("boom", file="f.evz")) == "f.evz: boom"
    e2 = pickle.loads(pickle.dumps(e))
    assert str(e2) == str(e) and e2.message == "boom"
    assert isinstance(e, ValueError)


# ----------------------------------------------------------------------------- validation

SCAN_MIN = [("adv", "copy", "r"), ("vtarget", "copy", "r")]
OBJ_MIN = [("loss", "mul", "logp", "adv")]

BAD_PROGRAMS = [
    (
        {"scan": [("adv", "exq", "r"), *SCAN_MIN[1:]]},
        "unknown op 'exq' in scan; did you mean 'exp'?",
    ),
    ({"scan": [("adv", "frobnicate", "r"), *SCAN_MIN[1:]]}, "unknown op 'frobnicate' in scan"),
    (
        {"scan": [("adv", "clip", "r", 1.0), *SCAN_MIN[1:]]},
        "clip(x, lo, hi) takes 3 arguments, got 2",
    ),
    ({"scan": [("adv", "neg", "r", "v"), *SCAN_MIN[1:]]}, "neg(x) takes 1 argument, got 2"),
    (
        {"objective": [("loss", "normalize", "adv")]},
        "op 'normalize' is not allowed in objective (only in post)",
    ),
    (
        {"scan": [("adv", "mean", "r"), *SCAN_MIN[1:]]},
        "op 'mean' is not allowed in scan (only in post)",
    ),
    (
        {"scan": [("adv", "copy", "ratio"), *SCAN_MIN[1:]]},
        "'ratio' is not an input of scan (it is an input of objective)",
    ),
    (
        {"post": [("adv", "mul", "adv", "logp")]},
        "'logp' is not an input of post (it is an input of scan and objective)",
    ),
    (
        {"scan": [("adv", "mul", "gama", "r"), *SCAN_MIN[1:]]},
        "unknown name 'gama' in scan; did you mean 'gamma'?",
    ),
    (
        {"scan": [("adv", "mul", "x", "r"), ("x", "copy", "r"), *SCAN_MIN[1:]]},
        "'x' is used before it is assigned in scan",
    ),
    (
        {"scan": [("adv", "add", "adv", 1.0), *SCAN_MIN[1:]]},
        "'adv' is used before it is assigned in scan",
    ),
    ({"scan": [("adv", "copy", "_1"), *SCAN_MIN[1:]]}, "unknown name '_1' in scan"),
    ({"scan": SCAN_MIN[:1]}, "scan never assigns its output 'vtarget'"),
    ({"objective": [("los", "copy", "adv")]}, "objective never assigns its output 'loss'"),
    (
        {"carries": [(f"c{i}", "0") for i in range(5)]},
        "scan declares 5 carries; at most 4 are allowed",
    ),
    ({"carries": [("g", "v")]}, "carry 'g' has initial value 'v'; it must be 0 or v_next"),
    ({"carries": [("g", "0"), ("g", "0")]}, "duplicate carry 'g'"),
    ({"carries": [("v", "0")]}, "carry 'v' has the name of an input of scan"),
    ({"carries": [("adv", "0")]}, "carry 'adv' has the name of an output of scan"),
    ({"carries": [("gamma", "0")]}, "carry 'gamma' has the name of a constant"),
    ({"carries": [("_2", "0")]}, "'_2' is reserved for anonymous temporaries"),
    ({"constants": [("gamma", 0.9), ("gamma", 0.8)]}, "duplicate constant 'gamma'"),
    ({"constants": {"ratio": 1.0}}, "constant 'ratio' has the name of an input (of objective)"),
    ({"constants": {"loss": 1.0}}, "constant 'loss' has the name of an output"),
    ({"constants": {"lambda": 0.95}}, "'lambda' is a Python keyword and cannot be a constant name"),
    ({"constants": {"exp": 1.0}}, "'exp' is an op and cannot be a constant name"),
    ({"constants": {"1x": 1.0}}, "invalid constant name '1x'"),
    ({"scan": [("gamma", "copy", "r"), *SCAN_MIN]}, "cannot assign to constant 'gamma'"),
    ({"scan": [("min", "copy", "r"), *SCAN_MIN]}, "'min' is an op and cannot be a name"),
    ({"scan": [("if", "copy", "r"), *SCAN_MIN]}, "'if' is a Python keyword and cannot be a name"),
    ({"scan": [("a b", "copy", "r"), *SCAN_MIN]}, "invalid name 'a b'"),
]


@pytest.mark.parametrize(("parts", "message"), BAD_PROGRAMS, ids=[m for _, m in BAD_PROGRAMS])
def test_validation_errors(parts: dict[str, object], message: str) -> None:
    kw: dict[str, object] = {"constants": {"gamma": 0.99}, "scan": SCAN_MIN, "objective": OBJ_MIN}
    kw.update(parts)
    constants = kw.pop("constants")
    with pytest.raises(ProgramError) as err:
        Program.build(constants, **kw)  # type: ignore[arg-type]
    assert err.value.message == message


def test_carries_outside_scan_rejected() -> None:
    post = Component("post", (), (Carry("g", "0"),))
    with pytest.raises(ProgramError, match="carries are only allowed in scan, not in post"):
        Program(
            (),
            Component("scan", tuple(Instr(*s[:2], s[2:]) for s in SCAN_MIN)),
            post,
            Component("objective", (Instr("loss", "copy", ("adv",)),)),
        )


def test_component_kind_mismatch() -> None:
    with pytest.raises(ProgramError, match="given as scan"):
        Program((), Component("post"), Component("post"), Component("objective"))


def test_parts_must_have_the_model_types() -> None:
    scan = Component("scan", tuple(Instr(*s[:2], s[2:]) for s in SCAN_MIN))
    obj = Component("objective", (Instr("loss", "copy", ("adv",)),))
    with pytest.raises(ProgramError, match="post must be a Component, got str"):
        Program((), scan, "post", obj)  # type: ignore[arg-type]
    with pytest.raises(ProgramError, match="carries must be Carry objects"):
        Program((), dataclasses.replace(scan, carries=("g",)), Component("post"), obj)
    with pytest.raises(ProgramError, match="instructions must be Instr objects"):
        Program((), scan, Component("post", (("adv", "copy", "adv"),)), obj)


def test_error_carries_location() -> None:
    loc = Loc("x.evz", 4, 9)
    bad = Instr("adv", "mul", ("gama", "r"), loc=Loc("x.evz", 4, 3), arg_locs=(loc, None))
    with pytest.raises(ProgramError) as err:
        Program.build({"gamma": 1.0}, scan=[bad, ("vtarget", "copy", "r")], objective=OBJ_MIN)
    assert str(err.value) == ("x.evz:4:9: unknown name 'gama' in scan; did you mean 'gamma'?")


def test_valid_edge_cases() -> None:
    # post may be empty (outputs pass through); reassigning inputs is allowed; names may
    # be reassigned; a carry that is never reassigned is constant over time.
    p = Program.build(
        scan=[
            ("v", "mul", "v", 2),
            ("v", "add", "v", 1),
            ("adv", "sub", "r", "v"),
            ("vtarget", "copy", "h"),
        ],
        carries=[("h", "v_next"), ("a", "0"), ("b", "0"), ("c", "v_next")],
        objective=[("loss", "copy", 0)],
    )
    assert len(p.scan.carries) == 4
    assert p.post.instrs == ()


# ----------------------------------------------------------------------------- normal form


def test_temporaries_renumbered_and_reordered() -> None:
    raw = [
        ("_7", "mul", "r", 2),  # used once, by vtarget: moves down to its use
        ("x", "add", "r", 1),
        ("_3", "exp", "v"),  # used twice: stays a statement
        ("adv", "add", "_3", "_3"),
        ("vtarget", "add", "_7", "x"),
    ]
    p = Program.build(scan=raw, objective=OBJ_MIN)
    assert [(i.target, i.op, i.args) for i in p.scan.instrs] == [
        ("x", "add", ("r", 1.0)),
        ("_1", "exp", ("v",)),
        ("adv", "add", ("_1", "_1")),
        ("_2", "mul", ("r", 2.0)),
        ("vtarget", "add", ("_2", "x")),
    ]


def test_unsafe_temporary_not_moved() -> None:
    # _1 reads x, which is reassigned before _1's use: moving _1 would change its value.
    raw = [
        ("x", "copy", "r"),
        ("_1", "mul", "x", 2),
        ("x", "add", "x", 1),
        ("adv", "add", "_1", "x"),
        ("vtarget", "copy", "x"),
    ]
    p = Program.build(scan=raw, objective=OBJ_MIN)
    assert [i.target for i in p.scan.instrs] == ["x", "_1", "x", "adv", "vtarget"]
    forest = expression_forest(p.scan)
    assert [t for t, _ in forest] == ["x", "_1", "x", "adv", "vtarget"]


def test_reassigned_temporaries_get_fresh_numbers() -> None:
    raw = [("_1", "neg", "r"), ("_1", "exp", "_1"), ("adv", "copy", "_1"), ("vtarget", "copy", "r")]
    p = Program.build(scan=raw, objective=OBJ_MIN)
    assert [(i.target, i.args) for i in p.scan.instrs] == [
        ("_1", ("r",)),
        ("_2", ("_1",)),
        ("adv", ("_2",)),
        ("vtarget", ("r",)),
    ]


@pytest.mark.parametrize("seed", range(150))
def test_normalization_preserves_semantics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    constants, comps = random_parts(rng, max_instrs=14, p_temp=0.5)
    p = Program(constants, comps["scan"], comps["post"], comps["objective"])
    for kind in COMPONENTS:
        raw, norm = comps[kind], p.component(kind)
        env = component_env(kind, constants, raw.carries, seed)
        names = OUTPUTS[kind] + raw.carry_names
        want = outputs_of(run_component(raw.instrs, env), names)
        got = outputs_of(run_component(norm.instrs, env), names)
        for w, g in zip(want, got, strict=True):
            np.testing.assert_array_equal(g, w)
        # Idempotent, and temporaries numbered 1..n in order of definition.
        assert normalize_instrs(norm.instrs) == norm.instrs
        temps = [i.target for i in norm.instrs if is_temp(i.target)]
        assert temps == [f"_{k}" for k in range(1, len(temps) + 1)]


# ----------------------------------------------------------------------------- liveness


def test_dead_code_and_complexity() -> None:
    p = Program.build(
        {"gamma": 0.99},
        scan=[
            ("dead", "exp", "r"),  # dead
            ("g", "mul", "gamma", "g"),  # live carry: read before reassigned
            ("g", "add", "r", "g"),
            ("h", "add", "h", 1),  # dead carry h
            ("adv", "copy", "g"),
            ("vtarget", "add", "g", "v"),
        ],
        carries=[("g", "0"), ("h", "v_next")],
        post=[
            ("vtarget", "mul", "vtarget", 2),  # dead: objective never reads vtarget
            ("adv", "normalize", "adv"),
        ],
        objective=[("unused", "square", "v"), ("loss", "mul", "logp", "adv")],
    )
    live = p.live()
    assert [i.target for i in live.scan.instrs] == ["g", "g", "adv", "vtarget"]
    assert live.scan.carry_names == ("g",)
    assert [i.op for i in live.post.instrs] == ["normalize"]
    assert [i.target for i in live.objective.instrs] == ["loss"]
    # copy does not count: mul, add, add (scan) + normalize + mul
    assert p.complexity() == live.complexity() == 5
    assert live.live() == live


def test_carry_liveness_is_a_fixpoint() -> None:
    # a feeds b feeds adv: b is live directly, a only through b's update.
    p = Program.build(
        scan=[
            ("b", "add", "b", "a"),
            ("a", "add", "a", "r"),
            ("adv", "copy", "b"),
            ("vtarget", "copy", "r"),
            ("c", "add", "c", 1),
        ],
        carries=[("a", "0"), ("b", "0"), ("c", "0")],
        objective=OBJ_MIN,
    )
    assert p.live().scan.carry_names == ("a", "b")


def test_liveness_of_one_component() -> None:
    instrs = Program.build(
        {"gamma": 0.99},
        scan=[
            ("x", "exp", "r"),  # dead: x is reassigned before any read
            ("x", "mul", "r", "gamma"),  # live, read by the reassignment below
            ("x", "add", "x", "v"),  # live: the final binding of x
            ("y", "neg", "x"),  # dead: y is never read
            ("adv", "copy", "x"),
            ("vtarget", "copy", "r"),
        ],
        objective=OBJ_MIN,
    ).scan.instrs
    assert liveness(instrs, ["adv"]) == ComponentLiveness((1, 2, 4), frozenset({"r", "gamma", "v"}))
    assert liveness(instrs, ["vtarget"]) == ComponentLiveness((5,), frozenset({"r"}))
    # A root that is never assigned (post's pass-through) stays live at entry.
    assert liveness(instrs, ["logp", "y"]) == ComponentLiveness(
        (1, 2, 3), frozenset({"logp", "r", "gamma", "v"})
    )
    assert liveness((), ["adv"]) == ComponentLiveness((), frozenset({"adv"}))


def test_liveness_of_a_program() -> None:
    p = Program.build(
        scan=[
            ("adv", "copy", "g"),  # reads g's value from t+1: g is live
            ("g", "add", "g", "h"),  # g's update, live with g; reads h from t+1
            ("k", "add", "k", 1),  # k is never read: dead
            ("vtarget", "exp", "r"),
        ],  # live: scan's outputs always are
        carries=[("k", "0"), ("h", "0"), ("g", "v_next")],
        post=[("vtarget", "copy", "v")],  # dead: the objective never reads vtarget;
        objective=OBJ_MIN,
    )  # adv passes through post unchanged
    lv = program_liveness(p)
    assert lv.instrs == {"scan": (0, 1, 3), "post": (), "objective": (0,)}
    # Carries in the order the fixpoint finds them: g (read by adv), then h (by g's update).
    assert lv.outputs == {
        "scan": ("adv", "vtarget", "g", "h"),
        "post": ("adv",),
        "objective": ("loss",),
    }
    assert lv.carries == ("g", "h")
    assert lv.live_in == {
        "scan": frozenset({"g", "h", "r"}),
        "post": frozenset({"adv"}),
        "objective": frozenset({"logp", "adv"}),
    }
    live = p.live()
    assert live.scan.carry_names == ("h", "g")  # declaration order is kept
    assert [i.target for i in live.scan.instrs] == ["adv", "g", "vtarget"]
    assert live.post.instrs == ()
    assert program_liveness(live).instrs == {"scan": (0, 1, 2), "post": (), "objective": (0,)}


def _graph_liveness(
    p: Program,
) -> tuple[dict[str, set[int]], dict[str, set[str]], dict[str, set[str]]]:
    """Liveness read off the dataflow graph (an independent oracle for the analysis)."""
    g = p.graph()
    loss = ("objective", "out", "loss")
    reached = nx.ancestors(g, loss)
    post_out = {o for o in OUTPUTS["post"] if ("objective", "in", o) in reached}
    roots = {("post", "out", o) for o in post_out} | {loss}
    roots |= {("scan", "out", o) for o in OUTPUTS["scan"]}
    carries: set[str] = set()
    while True:  # a carry is live when a live node reads its value from t+1
        reached = set().union(*(nx.ancestors(g, r) for r in roots))
        new = {c for c in p.scan.carry_names if ("scan", "carry", c) in reached} - carries
        if not new:
            break
        carries |= new
        roots |= {("scan", "out", c) for c in new}
    instrs = {k: {n[1] for n in reached if n[0] == k and isinstance(n[1], int)} for k in COMPONENTS}
    live_in = {
        k: {n[2] for n in reached if n[0] == k and n[1] in ("in", "carry")} for k in COMPONENTS
    }
    for kind in COMPONENTS:  # constants are shared nodes: those this component's live code reads
        live_in[kind] |= {
            src[1] for i in instrs[kind] for src, _ in g.in_edges((kind, i)) if src[0] == "const"
        }
    outputs = {"scan": set(OUTPUTS["scan"]) | carries, "post": post_out, "objective": {"loss"}}
    return instrs, outputs, live_in


@pytest.mark.parametrize("seed", range(60))
def test_liveness_agrees_with_the_dataflow_graph(seed: int) -> None:
    p = random_program(np.random.default_rng(2000 + seed), max_instrs=12, max_carries=4)
    lv = program_liveness(p)
    instrs, outputs, live_in = _graph_liveness(p)
    for kind in COMPONENTS:
        assert set(lv.instrs[kind]) == instrs[kind]
        assert set(lv.outputs[kind]) == outputs[kind]
        assert lv.live_in[kind] == live_in[kind]
        assert lv.instrs[kind] == tuple(sorted(lv.instrs[kind]))
    # Dropping dead code leaves only live code, and the same live outputs.
    lp = p.live()
    again = program_liveness(lp)
    assert {k: len(v) for k, v in again.instrs.items()} == {
        k: len(lp.component(k).instrs) for k in COMPONENTS
    }
    assert {k: set(v) for k, v in again.outputs.items()} == {
        k: set(v) for k, v in lv.outputs.items()
    }


def test_reference_complexities() -> None:
    p = Program.build({"eps": 0.2, "c_v": 0.5}, scan=SCAN_MIN, objective=PPO_OBJECTIVE)
    assert p.complexity() == 11  # the objective's 11 ops; scan has only copies
    assert Program.build(scan=SCAN_MIN, objective=[("loss", "copy", 0)]).complexity() == 0


@pytest.mark.parametrize("seed", range(40))
def test_live_program_computes_the_same_outputs(seed: int) -> None:
    p = random_program(np.random.default_rng(1000 + seed), max_instrs=12)
    live = p.live()
    assert live.complexity() == p.complexity()
    for kind in COMPONENTS:
        comp, lcomp = p.component(kind), live.component(kind)
        env = component_env(kind, p.constants, comp.carries, seed)
        roots = OUTPUTS[kind] + lcomp.carry_names
        if kind == "post":  # only the outputs the objective reads are kept
            roots = tuple(n for n in roots if any(n in i.args for i in p.live().objective.instrs))
        if kind == "objective" or roots:
            want = outputs_of(run_component(comp.instrs, env), roots)
            got = outputs_of(run_component(lcomp.instrs, env), roots)
            for w, g in zip(want, got, strict=True):
                np.testing.assert_array_equal(g, w)


# ----------------------------------------------------------------------------- graph


def test_graph() -> None:
    p = simple(
        carries=[("g", "0")],
        scan=[("g", "add", "g", "r"), ("adv", "copy", "g"), ("vtarget", "add", "adv", "adv")],
    )
    g = p.graph()
    assert nx.is_directed_acyclic_graph(g)
    assert g.nodes["scan", 0]["op"] == "add"
    assert g.edges[("scan", "carry", "g"), ("scan", 0)]["positions"] == [0]
    assert g.edges[("scan", 1), ("scan", 2)]["positions"] == [0, 1]
    assert g.has_edge(("scan", "out", "adv"), ("post", "in", "adv"))
    assert g.has_edge(("post", "out", "adv"), ("objective", "in", "adv"))
    assert g.has_edge(("scan", 0), ("scan", "out", "g"))
    anc = nx.ancestors(g, ("objective", "out", "loss"))
    assert ("scan", 0) in anc and ("const", "eps") in anc
    assert ("scan", "in", "r") in anc
    assert ("const", "gamma") not in anc


# ----------------------------------------------------------------------------- random programs


@pytest.mark.parametrize("seed", range(30))
def test_random_programs_are_valid_and_deterministic(seed: int) -> None:
    a = random_program(np.random.default_rng(seed))
    b = random_program(np.random.default_rng(seed))
    assert a == b
    assert Program(a.constants, a.scan, a.post, a.objective) == a
    assert len(a.scan.carries) <= MAX_CARRIES
    assert re.fullmatch(r"[\s\S]*objective:[\s\S]*", str(a))


# ----------------------------------------------------------------------------- layout

#: Where each public name of ``evozero.program`` is defined (its docstring's map).
HOMES: dict[str, tuple[str, ...]] = {
    "evozero.program.vocabulary": (
        "CARRY_INITS",
        "COMPONENTS",
        "DIFF_INPUTS",
        "INPUTS",
        "MAX_CARRIES",
        "MAX_DEPTH",
        "MAX_INSTRUCTIONS",
        "OUTPUTS",
    ),
    "evozero.program.model": ("Arg", "Carry", "Component", "Const", "Instr", "Program"),
    "evozero.program.errors": ("Loc", "ProgramError"),
    "evozero.program.normal_form": (
        "Call",
        "Node",
        "expression_forest",
        "inline_plan",
        "is_temp",
        "normalize_instrs",
    ),
    "evozero.program.random_programs": (
        "random_instr",
        "random_literal",
        "random_parts",
        "random_program",
    ),
}


def test_public_names_live_in_their_modules() -> None:
    pkg = importlib.import_module("evozero.program")
    assert sorted(n for names in HOMES.values() for n in names) == sorted(pkg.__all__)
    for home, names in HOMES.items():
        module = importlib.import_module(home)
        for name in names:
            obj = getattr(module, name)
            assert name in module.__all__ and getattr(pkg, name) is obj
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__module__ == home, name


def _runtime_imports(body: list[ast.stmt]) -> Iterator[str]:
    """Modules a module body imports when it runs (not under ``if TYPE_CHECKING``)."""
    for node in body:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.If) and ast.unparse(node.test) != "TYPE_CHECKING":
            yield from _runtime_imports(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _runtime_imports(node.body + [s for h in node.handlers for s in h.body])


def test_no_import_cycles() -> None:
    src = Path(importlib.import_module("evozero").__file__).parent.parent
    modules = {
        ".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__"): p
        for p in sorted((src / "evozero").rglob("*.py"))
    }
    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name)
        g.add_edges_from(
            (name, m)
            for m in _runtime_imports(ast.parse(path.read_text()).body)
            if m in modules and m != name
        )
    assert nx.is_directed_acyclic_graph(g), nx.find_cycle(g)
    # The program model stands alone: no native code, search, export or CLI below it.
    for name in modules:
        if name.startswith("evozero.program"):
            assert all(d.startswith("evozero.program") for d in nx.descendants(g, name)), name
