"""What the GPU benchmarks share: the CUDA extension and a GPU, or a skip that says which
is missing."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def cuda() -> Any:
    """``evozero._cuda`` where it is built and a GPU is present; else the test skips."""
    try:
        from evozero import _cuda
    except ImportError:
        pytest.skip("needs evozero._cuda (EVOZERO_CUDA=1 pip install .) and a CUDA GPU")
    count, why = _cuda.device_count()
    if not count:
        pytest.skip(f"needs a CUDA GPU; the CUDA runtime says: {why}")
    return _cuda
