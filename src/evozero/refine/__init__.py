"""Refinement of a rule's constants after the search finds its structure.

* :mod:`~evozero.refine.constants`: the constants as unconstrained coordinates;
* :mod:`~evozero.refine.twin`: the torch twin of the trainer (needs torch);
* :mod:`~evozero.refine.metagrad`: meta-gradients through unrolled updates (needs torch);
* :mod:`~evozero.refine.schedule`: the updates each meta-step records;
* :mod:`~evozero.refine.es`: antithetic evolution strategies on the search backends;
* :mod:`~evozero.refine.validate`: refined vs original on fresh seeds;
* :mod:`~evozero.refine.run`: the loop behind ``evozero refine``.

torch is optional (``pip install 'evozero[refine]'``); only the meta-gradient modules
import it.
"""

#: What to run when torch is missing.
TORCH_INSTALL_HINT = "pip install 'evozero[refine]'  (PyTorch 2.13, CPU build is enough)"


def torch_available() -> bool:
    """Whether torch can be imported (meta-gradients need it; ES does not)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None
