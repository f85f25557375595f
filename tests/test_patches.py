"""The conv network's patch index (csrc/trainer/patches.hpp) against a numpy reference.

The index lists a batch's distinct (position, 3x3 patch) pairs; the conv network computes
each once. Its gradients are checked against torch in test_networks.py; here, that it
merges exactly the equal patches (an index that merged none would pass those too).
"""

from __future__ import annotations

import numpy as np
import pytest

from evozero import _core
from evozero.envs import MinAtarVecEnv


def reference_index(obs: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """(first, per sample its patch numbers) as patches.hpp defines them: per position
    (row-major over the 8x8 valid positions) the distinct non-empty patches in order of
    first appearance; equal means equal values (-0.0 is zero)."""
    n, size = obs.shape
    grid = (obs.reshape(n, 10, 10, size // 100) + 0.0).astype(np.float32)
    first, numbers = [0], [[] for _ in range(n)]
    for q in range(64):
        oy, ox = divmod(q, 8)
        seen: dict[bytes, int] = {}
        for i in range(n):
            patch = grid[i, oy : oy + 3, ox : ox + 3]
            if patch.any():
                numbers[i].append(first[-1] + seen.setdefault(patch.tobytes(), len(seen)))
        first.append(first[-1] + len(seen))
    # each sample's patches in position order: numbers ascend with the position
    return np.array(first), [sorted(p) for p in numbers]


def assert_index(got, obs: np.ndarray) -> None:
    first, indptr, indices = got
    expected_first, expected = reference_index(obs)
    np.testing.assert_array_equal(first, expected_first)
    for i, patches in enumerate(expected):
        assert indices[indptr[i] : indptr[i + 1]].tolist() == patches, f"sample {i}"


def csr(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indptr int64, indices int32) of the non-zero entries of float rows."""
    indptr = np.concatenate([[0], np.cumsum((obs != 0).sum(1))]).astype(np.int64)
    return indptr, np.nonzero(obs)[1].astype(np.int32)


def game_frames(game: str, n: int) -> np.ndarray:
    """n frames of random play (32 envs), as float32 rows."""
    env = MinAtarVecEnv(game, 32, seed=1, minimal_action_set=True)
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(1)
    frames = []
    while len(frames) * 32 < n:
        obs, *_ = env.step(rng.integers(0, env.single_action_space.n, 32))
        frames.append(obs.reshape(32, -1).astype(np.float32))
    return np.concatenate(frames)[:n]


@pytest.mark.parametrize("game", ["breakout", "seaquest"])
def test_index_of_game_frames(game: str) -> None:
    obs = game_frames(game, 256)
    got = _core.testing.patch_index_sparse(*csr(obs), obs.shape[1])
    assert_index(got, obs)
    # MinAtar frames repeat most patches: far fewer patches than (sample, position) pairs
    assert got[0][-1] < len(got[2]) / 2
    for a, b in zip(got, _core.testing.patch_index_dense(obs), strict=True):
        np.testing.assert_array_equal(a, b)


def test_index_of_random_bits_many_patches() -> None:
    # dense bit planes: nearly every patch distinct, so the table grows many times
    dense = (np.random.default_rng(2).random((300, 700)) < 0.6).astype(np.float32)
    got = _core.testing.patch_index_sparse(*csr(dense), 700)
    assert got[0][-1] > 10_000
    assert_index(got, dense)


def test_dense_index_compares_values() -> None:
    rng = np.random.default_rng(3)
    obs = (rng.standard_normal((40, 400)) * (rng.random((40, 400)) < 0.05)).astype(np.float32)
    obs[20:] = obs[:20]  # every patch twice
    obs[25, 3] = -obs[25, 3] if obs[25, 3] else 1.5  # one value differs
    obs[30, obs[30] == 0] = -0.0  # negative zeros are zeros
    got = _core.testing.patch_index_dense(obs)
    assert_index(got, obs)


def test_index_refuses_inputs_that_are_not_bit_planes() -> None:
    with pytest.raises(ValueError, match="100 \\* C inputs"):
        _core.testing.patch_index_dense(np.zeros((2, 150), np.float32))
