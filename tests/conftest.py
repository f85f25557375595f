"""Fixtures shared by the test files."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_gpu() -> None:
    """Skips the test where a CUDA GPU is usable (tests/test_cuda.py covers that case): the
    test checks what a machine without one is told."""
    try:
        from evozero import _cuda
    except ImportError:
        return
    if _cuda.device_count()[0] > 0:
        pytest.skip("a GPU is present: tests/test_cuda.py covers the GPU path")
