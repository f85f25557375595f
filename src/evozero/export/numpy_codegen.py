"""numpy (and numba) code generation: the ops' numpy forms and numpy's spellings.

Literals are float32 (``np.float32(0.5)``). The module compiles with ``numba.njit``: the
helpers (:mod:`~evozero.export.runtime_numpy`) and ``scan_step`` are decorated with
numba's ``register_jitable`` when numba is installed, and scan is an explicit loop over
``t``. The batch reductions sum exactly as :mod:`evozero.program.ops` specifies
(``exact_sum``; std's sum of squares, which cannot cancel, is a float64 sum).
"""

from __future__ import annotations

from collections.abc import Mapping

from evozero.export.codegen import Codegen, Form, literal_text, wrap_call
from evozero.program.ops import PREC_ATOM

__all__ = ["NUMPY_FORMS", "NumpyCodegen"]

#: numpy forms of the non-infix ops (``copy`` writes its argument as is).
NUMPY_FORMS: Mapping[str, Form] = {
    "div": Form("safe_div({0}, {1})", ("safe_div",)),
    "abs": Form("np.abs({0})"),
    "square": Form("square({0})", ("square",)),
    "sqrt": Form("safe_sqrt({0})", ("safe_sqrt",)),
    "exp": Form("safe_exp({0})", ("safe_exp",)),
    "log": Form("safe_log({0})", ("safe_log",)),
    "tanh": Form("np.tanh({0})"),
    "sigmoid": Form("sigmoid({0})", ("sigmoid",)),
    "relu": Form("relu({0})", ("relu",)),
    "sign": Form("np.sign({0})"),
    "min": Form("minimum({0}, {1})", ("minimum",)),
    "max": Form("maximum({0}, {1})", ("maximum",)),
    "clip": Form("clip({0}, {1}, {2})", ("clip",)),
    "where": Form("where({0}, {1}, {2})", ("where",)),
    "copy": Form("{0}"),
    "mean": Form("mean({0})", ("exact_sum", "mean64", "mean")),
    "std": Form("std({0})", ("exact_sum", "mean64", "std32", "std")),
    "normalize": Form("normalize({0})", ("exact_sum", "mean64", "std32", "normalize")),
}


class NumpyCodegen(Codegen):
    """Python source over float32 numpy arrays, numba-compilable."""

    backend = "numpy"
    forms = NUMPY_FORMS
    runtime = "runtime_numpy"
    progress_cast = "np.float32(progress)"
    step_decorator = "@_jitable"
    exp_module = "np"

    def literal(self, x: float) -> tuple[str, int]:
        return f"np.float32({literal_text(x)})", PREC_ATOM

    def broadcast(self, text: str) -> str:
        return f"np.full(shape, {text}, np.float32)"

    def zeros(self) -> str:
        return "np.zeros(B, dtype=np.float32)"

    def last_v_next(self) -> str:
        return "v_next[T - 1].copy()"

    def scan_outputs(self) -> list[str]:
        return [
            "    adv = np.empty((T, B), dtype=np.float32)",
            "    vtarget = np.empty((T, B), dtype=np.float32)",
        ]

    def scan_loop(self, carries: str, args: list[str]) -> list[str]:
        return [
            *wrap_call(f"adv_t, vtarget_t{carries} = scan_step", args, " " * 8),
            "        adv[t] = adv_t",
            "        vtarget[t] = vtarget_t",
            "    return adv, vtarget",
        ]

    def constants_block(self) -> str | None:
        if not self.program.constants:
            return None
        return "\n".join(
            [
                "# Constants (float32).",
                *[
                    f"{self.py[c.name]} = {self.literal(c.value)[0]}"
                    for c in self.program.constants
                ],
            ]
        )
