"""torch code generation: the ops' torch forms, torch's spellings and the ``Rule`` module.

Literals are Python numbers, which torch rounds to the tensor's float32; where a helper
argument or a statement would be a Python number it is made a float32 tensor with
``as_f32`` (two Python numbers would otherwise be combined in float64). The constants are
float32 tensors in a dict every function takes (``constants=...``), so constants that
require grad receive gradients; ``Rule`` is the rule as an ``nn.Module`` whose constants
are ``nn.Parameter``\\ s.
"""

from __future__ import annotations

from collections.abc import Mapping

from evozero.export.codegen import (
    OBJECTIVE_ARGS,
    POST_ARGS,
    SCAN_ARGS,
    Codegen,
    Form,
    literal_text,
    wrap_call,
)
from evozero.program.model import Program
from evozero.program.normal_form import Call, Node
from evozero.program.ops import PREC_ATOM, PREC_UNARY

__all__ = ["TORCH_FORMS", "TorchCodegen"]

#: torch forms of the non-infix ops; arguments that would be Python numbers are wrapped
#: in ``as_f32`` by the generator, so templates see tensors.
TORCH_FORMS: Mapping[str, Form] = {
    "div": Form("safe_div({0}, {1})", ("safe_div",)),
    "abs": Form("absolute({0})", ("absolute",)),
    "square": Form("square({0})", ("square",)),
    "sqrt": Form("safe_sqrt({0})", ("safe_sqrt",)),
    "exp": Form("safe_exp({0})", ("safe_exp",)),
    "log": Form("safe_log({0})", ("safe_log",)),
    "tanh": Form("torch.tanh({0})"),
    "sigmoid": Form("torch.sigmoid({0})"),
    "relu": Form("relu({0})", ("relu",)),
    "sign": Form("sign({0})", ("sign",)),
    "min": Form("minimum({0}, {1})", ("minimum",)),
    "max": Form("maximum({0}, {1})", ("maximum",)),
    "clip": Form("clip({0}, {1}, {2})", ("clip",)),
    "where": Form("torch.where({0} > 0, {1}, {2})"),
    "copy": Form("{0}"),
    "mean": Form("mean({0})", ("mean64", "mean")),
    "std": Form("std({0})", ("mean64", "std32", "std")),
    "normalize": Form("normalize({0})", ("mean64", "std32", "normalize")),
}


class TorchCodegen(Codegen):
    """Python source over float32 tensors, differentiable."""

    backend = "torch"
    forms = TORCH_FORMS
    runtime = "runtime_torch"
    always_helpers = ("as_f32",)
    progress_cast = "as_f32(progress)"
    constants_param = ", constants=constants"
    exp_module = "torch"

    def literal(self, x: float) -> tuple[str, int]:
        s = literal_text(x)
        return s, PREC_UNARY if s.startswith("-") else PREC_ATOM

    def is_py_number(self, node: Node) -> bool:
        """Whether ``node`` renders as a Python number (a literal, possibly negated or
        copied)."""
        if isinstance(node, float):
            return True
        return (
            isinstance(node, Call)
            and node.op in ("neg", "copy")
            and self.is_py_number(node.args[0])
        )

    def argument(self, node: Node) -> str:
        text = self.text(node)
        return f"as_f32({text})" if self.is_py_number(node) else text

    def operands(self, node: Call) -> list[tuple[str, int]]:
        out = super().operands(node)
        if len(node.args) == 2 and all(self.is_py_number(a) for a in node.args):
            # Two Python numbers would be combined in float64: make one a float32 tensor.
            out[0] = (f"as_f32({out[0][0]})", PREC_ATOM)
        return out

    def broadcast(self, text: str) -> str:
        return f"as_f32({text}).expand(shape)"

    def constant_lines(self, kind: str) -> list[str]:
        used = self.used(kind)
        return [
            f"    {self.py[c.name]} = constants[{c.name!r}]"
            for c in self.program.constants
            if c.name in used
        ]

    def zeros(self) -> str:
        return "r.new_zeros(B)"

    def last_v_next(self) -> str:
        return "v_next[T - 1]"

    def scan_outputs(self) -> list[str]:
        return ["    adv = [None] * T", "    vtarget = [None] * T"]

    def scan_loop(self, carries: str, args: list[str]) -> list[str]:
        return [
            *wrap_call(f"adv[t], vtarget[t]{carries} = scan_step", [*args, "constants"], " " * 8),
            "    if T == 0:",
            "        return torch.zeros_like(r), torch.zeros_like(r)",
            "    return torch.stack(adv), torch.stack(vtarget)",
        ]

    def constants_block(self) -> str:
        items = "".join(
            f"\n    {c.name!r}: torch.tensor({literal_text(c.value)}, dtype=torch.float32),"
            for c in self.program.constants
        )
        return (
            "#: The rule's constants (float32 tensors); call .requires_grad_() on them to\n"
            "#: differentiate through the rule, or pass another dict as constants=... .\n"
            + (f"constants = {{{items}\n}}" if items else "constants = {}")
        )

    def tail(self) -> list[str]:
        return [_rule_class(self.program)]


def _rule_class(program: Program) -> str:
    """The ``Rule`` nn.Module: the functions with the module's constants as parameters."""
    module_attrs = _module_attributes()
    keys = {c.name: c.name + "_" if c.name in module_attrs else c.name for c in program.constants}
    items = "".join(f"\n        {k!r}: {v!r}," for k, v in keys.items())
    keys_text = f"{{{items}\n    }}" if items else "{}"
    return f'''class Rule(torch.nn.Module):
    """The rule as a module whose constants are trainable nn.Parameters."""

    #: Parameter key in self.constants of each constant (nn.Module attribute names get "_").
    keys = {keys_text}

    def __init__(self, values=None):
        super().__init__()
        values = constants if values is None else values
        self.constants = torch.nn.ParameterDict({{
            key: torch.nn.Parameter(as_f32(values[name]).detach().clone())
            for name, key in self.keys.items()}})

    def named_constants(self):
        """{{constant name: parameter}}, as the functions take it (constants=...)."""
        return {{name: self.constants[key] for name, key in self.keys.items()}}

    def scan(self, {SCAN_ARGS}):
        """scan() with this module's constants."""
        c = self.named_constants()
        return scan({SCAN_ARGS}, constants=c)

    def post(self, {POST_ARGS}):
        """post() with this module's constants."""
        return post({POST_ARGS}, constants=self.named_constants())

    def objective(self, {OBJECTIVE_ARGS}):
        """objective() with this module's constants."""
        c = self.named_constants()
        return objective({OBJECTIVE_ARGS}, constants=c)

    def forward(self, {OBJECTIVE_ARGS}):
        """The per-sample loss (the objective)."""
        return self.objective({OBJECTIVE_ARGS})
'''


def _module_attributes() -> frozenset[str]:
    """Attribute names of ``nn.ParameterDict`` (keys must avoid them)."""
    try:
        import torch
    except ImportError:  # generating code does not need torch; a conservative list
        return frozenset(
            {
                "keys",
                "values",
                "items",
                "update",
                "get",
                "pop",
                "clear",
                "forward",
                "training",
                "type",
                "float",
                "double",
                "half",
                "cuda",
                "cpu",
                "to",
                "train",
                "eval",
                "apply",
                "setdefault",
                "fromkeys",
                "popitem",
                "parameters",
                "buffers",
                "children",
                "modules",
            }
        )
    return frozenset(dir(torch.nn.ParameterDict()))
