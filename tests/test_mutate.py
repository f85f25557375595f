"""Mutation operators: validity, liveness, limits, each kind's effect, determinism."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from evozero.program import COMPONENTS, MAX_CARRIES, Program, dsl, is_temp, random_program
from evozero.program.canon import behaviour
from evozero.program.mutate import MAX_INSTRS, MUTATIONS, Mutation, mutate

PROGRAMS = Path(__file__).resolve().parent.parent / "programs"
REFERENCE = ["ppo", "a2c", "reinforce", "dpo", "td_ac", "noop"]


def reference(name: str) -> Program:
    return dsl.load(PROGRAMS / f"{name}.evz")


def parents() -> list[tuple[str, Program]]:
    """The reference programs and a few random ones."""
    out = [(n, reference(n)) for n in REFERENCE]
    out += [(f"random{s}", random_program(np.random.default_rng(s))) for s in range(10)]
    return out


def ops(p: Program) -> Counter:
    return Counter((k, ins.op) for k in COMPONENTS for ins in p.component(k).instrs)


def size(p: Program) -> int:
    """Number of instructions, not counting unread temporaries (mutations drop those)."""
    total = 0
    for c in p.components:
        read = {a for ins in c.instrs for a in ins.names()}
        total += sum(not is_temp(ins.target) or ins.target in read for ins in c.instrs)
    return total


def literals(p: Program) -> Counter:
    return Counter(
        a for c in p.components for ins in c.instrs for a in ins.args if not isinstance(a, str)
    )


def check_child(parent: Program, child: Program, m: Mutation, max_instrs: int) -> None:
    assert isinstance(child, Program)
    assert dsl.parse(dsl.to_text(child)) == child
    assert child.live() != parent.live()
    assert m.kind in MUTATIONS
    assert m.component in (*COMPONENTS, "constants")
    assert m.detail and str(m).startswith(f"{m.kind} ")
    assert len(child.scan.carries) <= MAX_CARRIES
    for kind in COMPONENTS:
        assert len(child.component(kind)) <= max(max_instrs, len(parent.component(kind))), m


@pytest.mark.parametrize("max_instrs", [MAX_INSTRS, 8])
def test_chained_mutations_are_valid(max_instrs: int) -> None:
    """~3000 mutations in all, each child becoming the parent, from every seed program."""
    rng = np.random.default_rng(max_instrs)
    steps = 150 if max_instrs == MAX_INSTRS else 40
    kinds_seen: Counter = Counter()
    for _, start in parents():
        parent = start
        for _ in range(steps):
            child, m = mutate(parent, rng, max_instrs=max_instrs)
            check_child(parent, child, m, max_instrs)
            kinds_seen[m.kind] += 1
            parent = child
    assert set(kinds_seen) == set(MUTATIONS)


@pytest.mark.parametrize("kind", MUTATIONS)
def test_forced_kind_is_applied_and_visible(kind: str) -> None:
    rng = np.random.default_rng(7)
    applied: Counter = Counter()
    for name, parent in parents():
        for _ in range(3):
            child, m = mutate(parent, rng, kinds=(kind,))
            check_child(parent, child, m, MAX_INSTRS)
            if m.kind != kind:
                assert m.kind == "randomize_component"  # the fallback
                # Only noop's instructions are all needed; random programs' live code is
                # tiny (one instruction per output, sometimes no literal or constant).
                assert name.startswith("random") or (name, kind) == ("noop", "remove")
                continue
            applied[name.startswith("random")] += 1
            if m.component != "constants":  # one component changes, the others stay
                for other in COMPONENTS:
                    if other != m.component:
                        assert child.component(other) == parent.component(other)
            if kind == "insert":
                assert size(child) == size(parent) + 1
            elif kind == "remove":
                assert size(child) < size(parent)
            elif kind == "change_op":
                assert ops(child) != ops(parent)
                assert size(child) <= size(parent)  # dropped arguments may drop subtrees
            elif kind == "rewire":
                assert not ops(child) - ops(parent)
                assert size(child) <= size(parent)
            elif kind in ("perturb_constant", "replace_literal"):
                assert ops(child.live()) == ops(parent.live())
                if m.component == "constants":
                    old, new = parent.constant_values, child.constant_values
                    assert list(old) == list(new)
                    assert sum(old[k] != new[k] for k in old) == 1
                    assert child.with_constants(old) == parent
                else:
                    assert child.constants == parent.constants
                    assert literals(child.live()) != literals(parent.live())
            elif kind == "randomize_component":
                assert len(child.component(m.component)) <= MAX_INSTRS
    assert applied[True] >= 0.6 * 3 * 10


def test_perturb_constant_is_small_and_finite() -> None:
    rng = np.random.default_rng(3)
    ppo = reference("ppo")
    ratios = []
    for _ in range(200):
        child, m = mutate(ppo, rng, kinds=("perturb_constant",))
        if m.component == "constants":
            for k, v in ppo.constant_values.items():
                w = child.constant_values[k]
                assert np.isfinite(w)
                if w != v:
                    ratios.append(w / v)
    assert ratios
    assert np.median(np.abs(np.log(np.abs(ratios)))) < 0.5


def test_insert_respects_max_instrs() -> None:
    rng = np.random.default_rng(4)
    dpo = reference("dpo")
    assert len(dpo.objective) > MAX_INSTRS  # already too long: never grown
    for _ in range(100):
        child, m = mutate(dpo, rng, kinds=("insert",))
        assert len(child.objective) <= len(dpo.objective)
        if m.kind == "insert":
            assert m.component != "objective"


def test_noop_fallback_and_impossible() -> None:
    noop = reference("noop")
    rng = np.random.default_rng(5)
    child, m = mutate(noop, rng, kinds=("remove",))  # nothing can go: falls back
    assert m.kind == "randomize_component"
    check_child(noop, child, m, MAX_INSTRS)
    child, m = mutate(noop, rng, max_tries=0)
    assert m.kind == "randomize_component"
    with pytest.raises(RuntimeError):
        mutate(noop, rng, kinds=("insert",), max_instrs=0)
    with pytest.raises(ValueError):
        mutate(noop, rng, kinds=("crossover",))
    with pytest.raises(ValueError):
        mutate(noop, rng, kinds=())


def test_deterministic() -> None:
    for name, parent in parents()[:8]:
        runs = []
        for _ in range(2):
            rng = np.random.default_rng(11)
            p, trace = parent, []
            for _ in range(15):
                p, m = mutate(p, rng)
                trace.append((dsl.to_text(p), str(m)))
            runs.append(trace)
        assert runs[0] == runs[1], name


def test_mutation_str() -> None:
    m = Mutation("perturb_constant", "constants", "constant eps: 0.2 -> 0.23")
    assert str(m) == "perturb_constant constant eps: 0.2 -> 0.23"


def test_children_of_ppo_evaluate() -> None:
    rng = np.random.default_rng(6)
    ppo = reference("ppo")
    for _ in range(50):
        child, _ = mutate(ppo, rng)
        out = behaviour(child)
        assert any(k.startswith("objective.loss") for k in out)
