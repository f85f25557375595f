"""Every way a program leaves evozero: numpy/numba and torch source, pseudocode, LaTeX."""

from evozero.export.python import (
    BACKENDS,
    export_source,
    latex,
    latex_expr,
    live_program,
    pseudocode,
    simplified,
    simplified_text,
    write_export,
)

__all__ = [
    "BACKENDS",
    "export_source",
    "latex",
    "latex_expr",
    "live_program",
    "pseudocode",
    "simplified",
    "simplified_text",
    "write_export",
]
