"""Native batched MinAtar games, as gymnasium environments.

The five games are C++ ports of ``minatar==1.0.15`` that reproduce the
reference step for step: the same seed and actions give the same
observations, rewards and terminations (sticky actions and difficulty
ramping included).

Seeding: ``reset(seed=s)`` seeds env ``i`` with ``(s + i) mod 2**32``, exactly
as ``minatar.Environment.seed`` would with that number; a sequence of seeds
seeds each env with its own entry. ``reset()`` without a seed restarts every
env from its current random stream, as the reference ``reset()`` does.

Autoreset is gymnasium's ``SAME_STEP`` mode: an env that terminates or is
truncated is reset inside ``step``; the observation returned is the first of
the new episode, and the last one of the ended episode is in
``info["final_obs"][i]`` (with mask ``info["_final_obs"]``); ``info`` is ``{}`` in a
step where no env ended.

Every array ``step()`` returns (each ``info["final_obs"][i]`` included) is new and the
caller's: the env never writes it again, so results can be kept as they are (in a
replay buffer, say). For speed it hands out again the arrays of earlier steps that the
caller has dropped (no reference, view or weak reference left), which cannot be seen
from Python.

The compact observation form (for sparse first layers) is
:func:`active_cells`: per env, the flat indices ``(y * 10 + x) * C + c`` of the
cells that are on, in CSR form.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from evozero import _core
from evozero.native.gym_ids import GAMES, check_game, gym_id, register_envs

__all__ = [
    "DIFFICULTY_RAMPING",
    "DeviceStep",
    "GAMES",
    "STICKY_ACTION_PROB",
    "MinAtarEnv",
    "MinAtarVecEnv",
    "active_cells",
    "gym_id",
    "make_vec",
    "register_envs",
]

#: The reference's (``minatar.Environment``) settings: the defaults of the native envs
#: here and of :class:`evozero.TrainConfig` (the C++ core has none of its own).
STICKY_ACTION_PROB = 0.1
DIFFICULTY_RAMPING = True

_SEED_RANGE = 2**32


def _seed_array(seed: int | Sequence[int] | None, num_envs: int) -> np.ndarray:
    """Per-env 32-bit seeds: ``(seed + i) mod 2**32``, or one entry per env."""
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(seed, (int, np.integer)):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        return ((int(seed) + np.arange(num_envs, dtype=np.uint64)) % _SEED_RANGE).astype(np.uint32)
    if isinstance(seed, (str, bytes)) or not isinstance(seed, (Sequence, np.ndarray)):
        raise ValueError(f"seed must be an int, one int per env or None, got {seed!r}")
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"got {len(seeds)} seeds for {num_envs} envs; give one per env or one int")
    if not all(isinstance(s, (int, np.integer)) for s in seeds):
        raise ValueError(f"a seed sequence must hold integers only, got {seeds}")
    if any(not 0 <= int(s) < _SEED_RANGE for s in seeds):
        raise ValueError(f"each seed must be in [0, 2**32), got {seeds}")
    return np.asarray(seeds, dtype=np.uint64).astype(np.uint32)


def active_cells(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The compact form of a batch of observations ``(num_envs, 10, 10, C)``.

    Returns ``(indptr, indices)`` in CSR form: the active cells of env ``i`` are
    ``indices[indptr[i]:indptr[i + 1]]``, each the flat index ``(y*10 + x)*C + c``.
    """
    obs = np.ascontiguousarray(obs, dtype=bool)
    return _core.active_cells(obs)


def _cuda_module() -> Any:
    """evozero._cuda, or a RuntimeError naming what is missing: the extension, or a GPU."""
    try:
        from evozero import _cuda
    except ImportError:
        raise RuntimeError(
            "device='cuda' needs evozero's CUDA extension, which this install was built "
            "without: reinstall with `EVOZERO_CUDA=1 pip install .` (nvcc from PATH or from "
            "`pip install nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-crt`)"
        ) from None
    count, why = _cuda.device_count()
    if count == 0:
        raise RuntimeError(
            f"device='cuda' needs an NVIDIA GPU and a driver for this build's CUDA runtime; "
            f"the CUDA runtime says: {why}"
        )
    return _cuda


class DeviceStep(NamedTuple):
    """One step's results on the GPU (:meth:`MinAtarVecEnv.step_on_device`): DLPack
    views of the env's device buffers (``__dlpack__``, ``__dlpack_device__``, ``shape``,
    ``dtype``), valid until the next step or reset."""

    obs: Any
    reward: Any
    terminated: Any
    truncated: Any
    final_obs: Any


class MinAtarVecEnv(VectorEnv):
    """``num_envs`` native MinAtar games stepped in one C++ call (GIL released).

    Args:
        game: one of :data:`GAMES`.
        num_envs: number of independent envs (>= 1).
        seed: seed of the first ``reset()`` (env ``i`` gets ``seed + i``); random if None.
        sticky_action_prob: probability of repeating the previous action (reference: 0.1).
        difficulty_ramping: speed the game up over time (reference: on).
        minimal_action_set: use only the game's distinct actions instead of all 6.
        max_episode_steps: truncate episodes at this length (None: never, as the reference).
        device: ``"cpu"``, or ``"cuda"``: every env stepped by one thread of one CUDA kernel
            launch per step, with the CPU envs' own code (bit-exact with them); needs the
            CUDA build (``EVOZERO_CUDA=1 pip install .``) and a GPU, and says which is
            missing. :meth:`step` brings the results to the host as numpy arrays;
            :meth:`step_on_device` leaves them on the GPU (DLPack, no copy).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        game: str,
        num_envs: int,
        seed: int | None = None,
        sticky_action_prob: float = STICKY_ACTION_PROB,
        difficulty_ramping: bool = DIFFICULTY_RAMPING,
        minimal_action_set: bool = False,
        max_episode_steps: int | None = None,
        device: str = "cpu",
    ) -> None:
        check_game(game)
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise ValueError(f"num_envs must be an integer, got {num_envs!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if not isinstance(sticky_action_prob, Real) or not 0.0 <= sticky_action_prob <= 1.0:
            raise ValueError(f"sticky_action_prob must be in [0, 1], got {sticky_action_prob!r}")
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, (int, np.integer))
            or max_episode_steps < 1
        ):
            raise ValueError(
                f"max_episode_steps must be an integer >= 1 or None, got {max_episode_steps!r}"
            )
        self.device = device
        self._env = (_cuda_module() if device == "cuda" else _core).MinAtarVecEnv(
            game,
            int(num_envs),
            float(sticky_action_prob),
            bool(difficulty_ramping),
            bool(minimal_action_set),
            int(max_episode_steps or 0),
        )
        self.game = game
        self.num_envs = int(num_envs)
        self.action_set: list[int] = list(self._env.action_set)
        self.channel_names: list[str] = list(self._env.channel_names)
        self._obs_shape = (10, 10, self._env.channels)
        self.single_observation_space = spaces.Box(0, 1, self._obs_shape, dtype=bool)
        self.single_action_space = spaces.Discrete(len(self.action_set))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._first_seed = seed
        self._started = False
        self._closed = False
        self._ready = False  # reset() was called and the env is open: step()'s one check

    def _new_obs(self) -> np.ndarray:
        return np.empty((self.num_envs, *self._obs_shape), dtype=bool)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"this {self.game} env is closed; create a new one")

    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env; see the module docstring for how seeds map to envs."""
        self._check_open()
        obs = self._new_obs()
        if seed is None and self._started:
            self._env.restart(obs)
        else:
            seeds = _seed_array(self._first_seed if seed is None else seed, self.num_envs)
            self._env.reset(seeds, obs)
        self._started = self._ready = True
        return obs, {}

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env; ended envs are reset in the same step (SAME_STEP autoreset).

        ``actions``: one integer per env (any integer dtype), indexing :attr:`action_set`.
        The arrays returned are the caller's (see the module docstring).
        """
        if not self._ready:
            self._check_open()
            raise RuntimeError("call reset() before step()")
        if self.device == "cuda":
            return self._step_cuda(actions)
        # One C++ call checks the actions, steps, and builds the arrays and the info dict.
        return self._env.step_gym(actions)

    def step_on_device(self, actions: Any) -> DeviceStep:
        """Step every env (as :meth:`step`) and leave the results on the GPU.

        Needs ``device="cuda"``. Returns a :class:`DeviceStep` ``(obs, reward,
        terminated, truncated, final_obs)`` of views of the env's device buffers, without
        a copy, that any DLPack consumer reads in place (``torch.from_dlpack(out.obs)``,
        ``cupy.from_dlpack``): ``obs`` bool ``(num_envs, 10, 10, C)``; ``reward``
        float32, ``terminated`` and ``truncated`` bool ``(num_envs,)``; ``final_obs`` as
        ``obs``, row ``i`` env ``i``'s last observation where it ended this step, zeros
        elsewhere. The next step or reset overwrites them (after waiting for the
        device's pending reads): copy what you keep.

        Raises:
            ValueError: on the CPU envs, or for actions as :meth:`step` refuses them.
            RuntimeError: before ``reset()``.
        """
        if self.device != "cuda":
            raise ValueError(
                "step_on_device needs MinAtarVecEnv(..., device='cuda'); "
                "on the CPU envs use step(), whose arrays are already in host memory"
            )
        if not self._ready:
            self._check_open()
            raise RuntimeError("call reset() before step_on_device()")
        self._env.step_on_device(self._checked_actions(actions))
        return DeviceStep(*self._env.device_outputs)

    def _checked_actions(self, actions: Any) -> np.ndarray:
        """``actions`` as int64, one per env, each in the action set; else ValueError."""
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or a.dtype.kind not in "iu":
            raise ValueError(
                f"actions must be integers of shape ({self.num_envs},), one per env; "
                f"got {a.dtype} of shape {a.shape}"
            )
        bad = np.flatnonzero((a < 0) | (a >= len(self.action_set)))
        if bad.size:
            raise ValueError(
                f"actions must be in [0, {len(self.action_set)}); env {bad[0]} got {a[bad[0]]}"
            )
        return a.astype(np.int64)

    def _step_cuda(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """step() on the CUDA envs: the same results, built here from the device's copies."""
        a = self._checked_actions(actions)
        n = self.num_envs
        obs, final = self._new_obs(), self._new_obs()
        reward = np.empty(n, dtype=np.float32)
        terminated, truncated = np.empty(n, dtype=bool), np.empty(n, dtype=bool)
        self._env.step(a, obs, reward, terminated, truncated, final)
        ended = terminated | truncated
        if not ended.any():
            return obs, reward, terminated, truncated, {}
        final_obs = np.full(n, None, dtype=object)
        for i in np.flatnonzero(ended):
            final_obs[i] = final[i]
        info = {"final_obs": final_obs, "_final_obs": ended, "final_info": {}, "_final_info": ended}
        return obs, reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self._closed = True
        self._ready = False


class MinAtarEnv(gym.Env):
    """One native MinAtar game as a plain ``gymnasium.Env`` (no autoreset).

    Takes the same arguments as :class:`MinAtarVecEnv` but ``num_envs``;
    ``reset(seed=s)`` seeds the game with ``s`` exactly as the reference.
    """

    metadata = {"render_modes": []}

    def __init__(self, game: str, **kwargs: Any) -> None:
        self._vec = MinAtarVecEnv(game, 1, **kwargs)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self._pending_obs: np.ndarray | None = None  # first obs of the episode autoreset began
        self._ended = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None and self._pending_obs is not None:
            obs = self._pending_obs  # autoreset already drew the new episode from the stream
        else:
            obs = self._vec.reset(seed=seed)[0][0]
        self._pending_obs, self._ended = None, False
        return obs, {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._ended:
            raise RuntimeError("the episode has ended; call reset() before step()")
        obs, reward, terminated, truncated, info = self._vec.step(np.asarray([action]))
        if terminated[0] or truncated[0]:
            self._pending_obs, self._ended = obs[0], True
            obs = info["final_obs"][0]
        else:
            obs = obs[0]
        return obs, float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}

    def close(self) -> None:
        self._vec.close()


def make_vec(game: str, num_envs: int = 1, **kwargs: Any) -> MinAtarVecEnv:
    """The vector entry point of the gymnasium ids (see :mod:`evozero.native.gym_ids`)."""
    return MinAtarVecEnv(game, num_envs, **kwargs)
