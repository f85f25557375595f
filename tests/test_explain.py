"""`explain`: a rule is described by exactly the edits that separate it from the nearest
reference program. Each test applies known edits to every reference program on purpose
and checks that the explanation names those edits and nothing else."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from evozero.analysis.explain import explain, reference_programs
from evozero.program import dsl
from evozero.program.model import Program
from evozero.program.printer import format_literal

REFS = reference_programs()
#: References with constants, a loss of several terms and an entropy term to remove.
FULL = sorted(n for n in REFS if n != "noop.evz")
#: Op swaps whose arguments stay the same (the first one found in the objective is used).
SWAPS = {"min": "max", "max": "min", "tanh": "sign", "square": "abs"}


def _text(name: str) -> str:
    """The reference's source text (comments dropped)."""
    raw = (resources.files("evozero.programs") / name).read_text()
    return "\n".join(line for line in raw.splitlines() if not line.startswith("#")) + "\n"


def _edited(name: str, old: str, new: str, count: int = 1) -> Program:
    text = _text(name)
    assert old in text, f"{name}: {old!r} not in the program"
    return dsl.parse(text.replace(old, new, count))


def _loss_line(name: str) -> str:
    return next(line for line in _text(name).splitlines() if line.strip().startswith("loss ="))


def _kinds(program: Program, reference: str) -> list[tuple[str, str]]:
    e = explain(program, "edited")
    assert e.reference == reference, e.text()
    assert not e.same_rule
    return [(x.kind, x.component) for x in e.edits]


@pytest.mark.parametrize("name", sorted(REFS))
def test_a_reference_is_the_same_rule_as_itself(name: str) -> None:
    e = explain(REFS[name], name)
    assert e.same_rule and e.reference == name and e.edits == () and e.distance == 0


@pytest.mark.parametrize("name", FULL)
def test_a_changed_constant_is_named_with_old_and_new_value(name: str) -> None:
    const = REFS[name].constants[0]
    value = float(format_literal(const.value * 1.5))
    e = explain(REFS[name].with_constants({const.name: value}), "edited")
    assert e.reference == name
    assert [(x.kind, x.old, x.new) for x in e.edits] == [
        ("constant", f"{const.name} {format_literal(const.value)}", format_literal(value))
    ]
    assert f"{const.name} {format_literal(const.value)} → " in e.summary()


@pytest.mark.parametrize("name", FULL)
def test_a_replaced_op_is_named(name: str) -> None:
    objective = _text(name).split("objective:")[1]
    op = next(m.group(1) for m in re.finditer(r"\b(\w+)\(", objective) if m.group(1) in SWAPS)
    program = _edited(
        name,
        f"objective:{objective}",
        "objective:" + objective.replace(f"{op}(", f"{SWAPS[op]}(", 1),
    )
    e = explain(program, "edited")
    assert e.reference == name
    assert [(x.kind, x.component, x.old, x.new) for x in e.edits] == [
        ("op", "objective", op, SWAPS[op])
    ]


@pytest.mark.parametrize("name", sorted(REFS))
def test_an_added_term_is_named(name: str) -> None:
    line = _loss_line(name)
    program = _edited(name, line, line + " + 0.25 * progress")
    assert _kinds(program, name) == [("term_added", "objective")]
    assert explain(program).edits[0].new == "0.25*progress"


@pytest.mark.parametrize("name", FULL)
def test_a_removed_term_is_named(name: str) -> None:
    line = _loss_line(name)
    program = _edited(name, line, line.replace(" - c_h * entropy", ""))
    assert _kinds(program, name) == [("term_removed", "objective")]
    assert "entropy" in explain(program).edits[0].old


@pytest.mark.parametrize("name", FULL)
def test_a_removed_or_added_post_is_named(name: str) -> None:
    text = _text(name)
    if "post:" in text:
        post = re.search(r"post:\n(?:  .*\n)+", text).group(0)
        program = dsl.parse(text.replace(post, ""))
        assert _kinds(program, name) == [("component_removed", "post")]
    else:
        program = dsl.parse(
            text.replace("objective:", "post:\n  adv = normalize(adv)\n\nobjective:")
        )
        e = explain(program)
        assert [(x.kind, x.component, x.outputs, x.new) for x in e.edits] == [
            ("wrapped", "post", ("adv",), "normalize(adv)")
        ]


@pytest.mark.parametrize("name", FULL)
def test_several_edits_are_each_named_once(name: str) -> None:
    line = _loss_line(name)
    const = REFS[name].constants[-1]
    program = _edited(name, line, line + " + 0.25 * progress").with_constants(
        {const.name: const.value * 2}
    )
    assert sorted(_kinds(program, name)) == [("constant", ""), ("term_added", "objective")]


def test_renamed_constants_are_the_same_rule() -> None:
    text = _text("ppo.evz").replace("eps", "clip_eps")
    e = explain(dsl.parse(text))
    assert e.same_rule and e.reference == "ppo.evz"
    assert "same rule as ppo.evz" in e.text()


def test_the_json_form_holds_every_edit_with_its_sentence() -> None:
    program = REFS["ppo.evz"].with_constants({"lam": 0.725})
    data = json.loads(json.dumps(explain(program).to_dict()))
    assert data["reference"] == "ppo.evz" and data["same_rule"] is False
    assert data["edits"] == [
        {
            "kind": "constant",
            "component": "",
            "outputs": [],
            "old": "lam 0.95",
            "new": "0.725",
            "weight": 1.0,
            "text": "lam 0.95 → 0.725",
        }
    ]


def test_a_changed_argument_inside_a_term_is_one_edit() -> None:
    """A rule an early search found drops PPO's value clipping: the clipped branch of the
    value loss's max becomes -lam; that is one replacement, not a term removed and added."""
    program = _edited("ppo.evz", "square(v_clipped - vtarget)", "-lam")
    e = explain(program)
    assert e.reference == "ppo.evz"
    assert [(x.kind, x.component, x.new) for x in e.edits] == [("replaced", "objective", "-lam")]
    assert "v_old" in e.edits[0].old


def test_a_changed_literal_is_shown_in_its_sum() -> None:
    e = explain(_edited("ppo.evz", "1 + eps", "0.5 + eps"))
    assert e.reference == "ppo.evz"
    assert [(x.kind, x.old, x.new) for x in e.edits] == [("number", "eps + 1", "eps + 0.5")]


def test_an_explanation_that_takes_too_long_is_a_clear_error() -> None:
    """sympy has no bound of its own on an evolved rule; a report must not hang on one."""
    with pytest.raises(ValueError, match=r"edited: comparing took longer than 1e-06 s"):
        explain(REFS["ppo.evz"].with_constants({"lam": 0.5}), "edited", timeout=1e-6)
