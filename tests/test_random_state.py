"""The C++ RandomState reproduces numpy's legacy RandomState bit for bit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evozero import _core

SEEDS = [0, 1, 42, 123456789, 2**31, 2**32 - 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_raw_stream_matches_numpy(seed: int) -> None:
    ours = _core.testing.RandomState(seed)
    ref = np.random.RandomState(seed)
    expected = ref.randint(0, 2**32, size=2000, dtype=np.uint64)  # one 32-bit draw each
    assert [ours.next_u32() for _ in range(2000)] == expected.tolist()


@pytest.mark.parametrize("seed", SEEDS)
def test_rand_matches_numpy(seed: int) -> None:
    ours = _core.testing.RandomState(seed)
    ref = np.random.RandomState(seed)
    assert [ours.rand() for _ in range(1500)] == [ref.rand() for _ in range(1500)]


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bounds=st.lists(st.tuples(st.integers(-50, 50), st.integers(1, 40)), min_size=1, max_size=30),
)
def test_randint_and_rand_interleaved_match_numpy(seed: int, bounds: list) -> None:
    ours = _core.testing.RandomState(seed)
    ref = np.random.RandomState(seed)
    for lo, width in bounds:
        assert ours.randint(lo, lo + width) == ref.randint(lo, lo + width)
        assert ours.rand() == ref.rand()


def test_randint_array_form_draws_element_by_element() -> None:
    ours = _core.testing.RandomState(7)
    ref = np.random.RandomState(7)
    expected = ref.randint(1, 6, 8).tolist() + ref.rand(8).tolist()
    got = [ours.randint(1, 6) for _ in range(8)] + [ours.rand() for _ in range(8)]
    assert got == expected


def test_randint_with_one_value_draws_nothing() -> None:
    ours = _core.testing.RandomState(3)
    ref = np.random.RandomState(3)
    assert ours.randint(5, 6) == 5
    assert ours.next_u32() == int(ref.randint(0, 2**32, dtype=np.uint64))


def test_randint_rejects_empty_range() -> None:
    with pytest.raises(ValueError, match="lo < hi"):
        _core.testing.RandomState(0).randint(3, 3)
