"""What the CLI tests of printed programs and ``--json`` share: programs with long lines,
the terminals they are printed on, and a JSON parser that refuses NaN and infinities."""

# ruff: noqa: E501  (the programs are about lines too long for a terminal)
from __future__ import annotations

import json
import re
from typing import Any

import pytest

from evozero.cli.app import console

#: ``(width, is a terminal)``: narrow and standard, on a terminal and piped.
TERMINALS = [(40, True), (40, False), (80, True), (80, False)]

#: Programs whose lines are longer than a terminal: many terms, long constant names, long
#: literals (every constant is used, so the live program keeps them all).
LONG_PROGRAMS = {
    "issue": """scan:
  adv = r
  vtarget = v
objective:
  loss = -logp * adv + 0.5 * square(v - vtarget) - 0.01 * entropy + 0.251111 * v_old
""",
    "many_terms": """const c1 = 0.333333343, c2 = -1.17549435e-38, c3 = 3.40282347e+38
scan:
  adv = r + 0.123456789 * v_next - v + 1e-07 * term + 2.5e-05 * reset - 0.987654321 * progress + c1 * r
  vtarget = v + r * c2 + 0.5 * (v_next - v) + 0.25 * (v_next - v) + 0.125 * (v_next - v) + 0.0625
objective:
  loss = -logp * adv + square(v - vtarget) - 0.01 * entropy + 0.02 * entropy * entropy - 0.03 * logp * logp + min(v_old, c3) * 1e-30
""",
    # programs/ppo.evz with every statement inlined and long names: trains like PPO.
    "long_ppo": """const discount_factor_gamma = 0.99, gae_trace_decay_lambda = 0.95, probability_ratio_clip_epsilon = 0.2, value_loss_coefficient = 0.5, entropy_bonus_coefficient = 0.0123456789
scan:
  carry g = 0
  g = r + discount_factor_gamma * (1 - term) * v_next - v + discount_factor_gamma * gae_trace_decay_lambda * (1 - reset) * g
  adv = g
  vtarget = g + v
post:
  adv = normalize(adv)
objective:
  loss = -min(ratio * adv, clip(ratio, 1 - probability_ratio_clip_epsilon, 1 + probability_ratio_clip_epsilon) * adv) + value_loss_coefficient * 0.5 * max(square(v - vtarget), square(v_old + clip(v - v_old, -probability_ratio_clip_epsilon, probability_ratio_clip_epsilon) - vtarget)) - entropy_bonus_coefficient * entropy
""",
}

#: A rule whose first update is not finite: its training run ends ``diverged``.
DIVERGES = "scan:\n  adv = r\n  vtarget = v\nobjective:\n  loss = square(1e20 + v * 1e20)\n"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def as_terminal(monkeypatch: pytest.MonkeyPatch, width: int, tty: bool) -> None:
    """Make the CLI's console ``width`` columns wide and a terminal or a pipe."""
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("TTY_COMPATIBLE", "1" if tty else "0")
    monkeypatch.setenv("TERM", "xterm-256color")  # a dumb terminal would be 80 wide
    assert (console.width, console.is_terminal) == (width, tty)


def plain(output: str) -> str:
    """``output`` without colours: what a terminal shows (and copies)."""
    return _ANSI.sub("", output)


def strict_json(text: str) -> Any:
    """``text`` parsed as JSON, refusing what the standard does not allow (NaN, Infinity)."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)
