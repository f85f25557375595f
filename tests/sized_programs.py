"""Valid programs of a chosen size, for the size tests and the size benchmark."""

from __future__ import annotations


def statements_program(n: int) -> str:
    """``.evz`` text with ``n`` statements of three instructions in each component.

    Twenty names are reassigned round-robin, so every statement reads an earlier one and
    all of it is live.
    """

    def body(x: str, outputs: str) -> str:
        init = "".join(f"  y{k} = {x}\n" for k in range(20))
        lines = "".join(f"  y{i % 20} = exp(y{(i + 7) % 20} * a) - {x}\n" for i in range(n))
        return init + lines + outputs

    scan = body("r", "  adv = y0\n  vtarget = y1\n")
    post = body("adv", "  adv = y2\n")
    objective = body("v", "  loss = y3\n")
    return f"const a = 0.5\nscan:\n{scan}post:\n{post}objective:\n{objective}"
