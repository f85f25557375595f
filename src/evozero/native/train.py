"""Train an actor-critic agent with an update program: ``evozero.train``.

The loop is the trainer skeleton of ARCHITECTURE.md and runs in C++ in one
call (GIL released): roll out ``num_steps`` on ``num_envs`` envs, run the
program's ``scan`` and ``post`` to get advantages and value targets, then
``update_epochs`` passes of ``num_minibatches`` shuffled minibatches in which
the program's ``objective`` gives the loss and its derivatives w.r.t. logp, v
and entropy, which are backpropagated through separate actor and critic MLPs
(Adam, global grad-norm clipping, linearly annealed learning rate).
Defaults follow PureJaxRL's MinAtar PPO.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from evozero import _core
from evozero.native.compile import check_native_tables, compile_program
from evozero.native.envs import DIFFICULTY_RAMPING, GAMES, STICKY_ACTION_PROB
from evozero.native.gym_ids import did_you_mean_game
from evozero.program import dsl
from evozero.program.model import Program
from evozero.status import Status

#: Fraction of the budget at the end whose episodes make up the final return.
FINAL_FRACTION = 0.1
#: Number of equal step bins of the learning curve behind the area under it.
CURVE_BINS = 20

#: The :class:`TrainConfig` fields that configure the envs. The C++ trainer reads every
#: other field and has no defaults of its own (tests/test_defaults.py checks both).
ENV_FIELDS: frozenset[str] = frozenset(
    {
        "num_envs",
        "sticky_action_prob",
        "difficulty_ramping",
        "minimal_action_set",
        "max_episode_steps",
    }
)


#: The columns of :attr:`TrainResult.update_stats`, one row per update; each is over every
#: sample of every minibatch of every epoch of the update (pooled, so the mean of a column
#: is the mean of the minibatch means). ``entropy``: the policy's entropy; ``loss``: the
#: program's per-sample ``loss``; ``approx_kl``: ``(ratio - 1) - log(ratio)`` (CleanRL's
#: estimator of KL(old || new)); ``d_logp``, ``d_v``, ``d_entropy``: the per-sample
#: derivatives of the loss with respect to logp, v and entropy, i.e. the coefficients
#: the objective puts on each (PPO: minus the advantage where unclipped, the value error,
#: minus the entropy coefficient), each by mean and (population) std. The C++ order is
#: generated from this tuple (``python -m evozero.native.codegen``).
UPDATE_STATS: tuple[str, ...] = (
    "entropy",
    "loss",
    "approx_kl",
    "d_logp_mean",
    "d_logp_std",
    "d_v_mean",
    "d_v_std",
    "d_entropy_mean",
    "d_entropy_std",
)

#: The actor-critic networks the trainer has (csrc/trainer/network.hpp).
NETWORKS: tuple[str, ...] = ("mlp", "conv")

_INT64_MAX = int(np.iinfo(np.int64).max)
#: The positive integer fields and the largest value of each one's C++ type
#: (csrc/trainer/trainer.hpp: total_steps is int64_t, the rest int).
_INT_FIELDS: dict[str, int] = {
    "total_steps": _INT64_MAX,
    **dict.fromkeys(
        ("num_envs", "num_steps", "update_epochs", "num_minibatches", "hidden"),
        int(np.iinfo(np.int32).max),
    ),
}


@dataclass(frozen=True)
class TrainConfig:
    """The fixed skeleton around an update program (PureJaxRL MinAtar PPO defaults).

    Attributes:
        total_steps: env steps of the whole run (all envs together).
        num_envs: envs stepped in parallel (B).
        num_steps: rollout length per update (T).
        update_epochs: passes over each rollout (E).
        num_minibatches: shuffled minibatches per pass (M); must divide B*T.
        lr: Adam learning rate at the start.
        anneal_lr: decay the learning rate linearly to 0 over the run.
        adam_eps: Adam epsilon (added to sqrt of the second moment, as optax).
        max_grad_norm: global gradient-norm clip over actor and critic together.
        hidden: width of both hidden layers of the actor and of the critic (``mlp``).
        network: ``mlp`` (obs -> hidden -> hidden, ReLU) or ``conv`` (the MinAtar
            paper's Conv2d(16, 3x3) -> ReLU -> Linear 128 -> ReLU, native MinAtar games
            only); the actor and the critic each have their own.
        sticky_action_prob: MinAtar sticky-action probability.
        difficulty_ramping: MinAtar difficulty ramping.
        minimal_action_set: MinAtar minimal action set (the ``-v1`` games).
        max_episode_steps: truncate episodes at this length (None: never).
    """

    total_steps: int = 1_000_000
    num_envs: int = 64
    num_steps: int = 128
    update_epochs: int = 4
    num_minibatches: int = 8
    lr: float = 5e-3
    anneal_lr: bool = True
    adam_eps: float = 1e-5
    max_grad_norm: float = 0.5
    hidden: int = 64
    network: str = "mlp"
    sticky_action_prob: float = STICKY_ACTION_PROB
    difficulty_ramping: bool = DIFFICULTY_RAMPING
    minimal_action_set: bool = True
    max_episode_steps: int | None = None

    def __post_init__(self) -> None:
        for name, most in _INT_FIELDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
            if value > most:
                raise ValueError(
                    f"TrainConfig.{name} must be at most {most:,} (the native "
                    f"trainer's integer type), got {value:,}"
                )
        for name in ("lr", "adam_eps", "max_grad_norm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"TrainConfig.{name} must be a positive number, got {value!r}")
        if self.network not in NETWORKS:
            raise ValueError(
                f"TrainConfig.network must be one of {', '.join(NETWORKS)}, got {self.network!r}"
            )
        if not 0.0 <= self.sticky_action_prob <= 1.0:
            raise ValueError(
                f"TrainConfig.sticky_action_prob must be in [0, 1], got {self.sticky_action_prob}"
            )
        batch = self.num_envs * self.num_steps
        if batch % self.num_minibatches:
            raise ValueError(
                f"TrainConfig.num_minibatches ({self.num_minibatches}) must divide "
                f"num_envs * num_steps ({batch}); e.g. use a power of two"
            )
        if self.total_steps < batch:
            raise ValueError(
                f"TrainConfig.total_steps ({self.total_steps}) is less than one rollout "
                f"(num_envs * num_steps = {batch}); raise it or shrink the rollout"
            )
        if self.max_episode_steps is not None and not 1 <= self.max_episode_steps <= _INT64_MAX:
            raise ValueError(
                f"TrainConfig.max_episode_steps must be >= 1 (and < 2**63) or None, got "
                f"{self.max_episode_steps}"
            )

    @property
    def num_updates(self) -> int:
        """Updates in the run: whole rollouts that fit in ``total_steps``."""
        return self.total_steps // (self.num_envs * self.num_steps)

    @property
    def run_steps(self) -> int:
        """Env steps a run takes: its whole updates (``total_steps`` rounded down)."""
        return self.num_updates * self.num_envs * self.num_steps

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated); unknown names are an error."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; known: {sorted(known)}")
        return TrainConfig(**{**asdict(self), **changes})

    def native_env_args(self, game: str) -> tuple[str, int, float, bool, bool, int]:
        """The native env's arguments, in the order the bindings take them (train_minatar,
        pack_population): game, num_envs, sticky_action_prob, difficulty_ramping,
        minimal_action_set, max_episode_steps (0: none)."""
        return (
            game,
            self.num_envs,
            self.sticky_action_prob,
            self.difficulty_ramping,
            self.minimal_action_set,
            self.max_episode_steps or 0,
        )

    def trainer_options(self) -> dict[str, Any]:
        """The fields the C++ trainer reads (all but :data:`ENV_FIELDS`), by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ENV_FIELDS}


def final_return(returns: np.ndarray, end_steps: np.ndarray, total_steps: int) -> float:
    """Mean return of the episodes that ended in the last 10% of the steps (NaN if none)."""
    late = end_steps >= total_steps * (1 - FINAL_FRACTION)
    return float(np.mean(returns[late])) if late.any() else float("nan")


def learning_curve(
    returns: np.ndarray, end_steps: np.ndarray, total_steps: int, bins: int = CURVE_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Mean episodic return per equal step bin: ``(bin_end_steps, mean_returns)``.

    A bin in which no episode ended repeats the previous bin's value (NaN before the first).
    """
    edges = np.linspace(0, total_steps, bins + 1)
    # Bins are (a, b]: an episode ending exactly at step b belongs to the bin ending at b.
    which = np.clip(np.searchsorted(edges, end_steps, side="left") - 1, 0, bins - 1)
    curve = np.full(bins, np.nan)
    for b in range(bins):
        in_bin = returns[which == b]
        if in_bin.size:
            curve[b] = in_bin.mean()
        elif b:
            curve[b] = curve[b - 1]
    return edges[1:], curve


def area_under_curve(returns: np.ndarray, end_steps: np.ndarray, total_steps: int) -> float:
    """Mean of the binned learning curve over the run (empty leading bins count as NaN-free 0)."""
    _, curve = learning_curve(returns, end_steps, total_steps)
    return float(np.mean(np.nan_to_num(curve, nan=0.0)))


@dataclass(frozen=True)
class TrainResult:
    """What one training run returns.

    Attributes:
        env: the task trained on.
        seed: the run's seed.
        status: ``ok``; ``diverged`` (a non-finite value appeared; the run stopped
            early, what was learned until then is kept); or ``error`` (see message).
        message: why the run did not finish ``ok`` ("" otherwise).
        episode_returns: return of every finished episode, in order of ending.
        episode_end_steps: global env step at which each of those episodes ended.
        steps: env steps actually taken.
        total_steps: env steps the run was configured for.
        seconds: wall time of the training call.
        checkpoints: the updates recorded for refinement (``hooks``; see :func:`train`),
            each a dict of numpy arrays (evozero.refine.twin.Checkpoint reads them).
        update_stats: ``(updates done, len(UPDATE_STATS))`` float32, the learning phase's
            statistics of each completed update, columns named by :data:`UPDATE_STATS`;
            update ``u`` ends at env step ``(u + 1) * num_envs * num_steps``.
    """

    env: str
    seed: int
    status: Status
    message: str
    episode_returns: np.ndarray
    episode_end_steps: np.ndarray
    steps: int
    total_steps: int
    seconds: float
    checkpoints: tuple[dict[str, Any], ...] = ()
    update_stats: np.ndarray = field(
        default_factory=lambda: np.zeros((0, len(UPDATE_STATS)), dtype=np.float32)
    )

    def update_stat(self, name: str) -> np.ndarray:
        """One column of :attr:`update_stats` by its name in :data:`UPDATE_STATS`."""
        return self.update_stats[:, UPDATE_STATS.index(name)]

    @property
    def final_return(self) -> float:
        """Mean return of episodes ending in the last 10% of the configured steps."""
        return final_return(self.episode_returns, self.episode_end_steps, self.total_steps)

    @property
    def auc(self) -> float:
        """Area under the learning curve, as the mean of its binned values."""
        return area_under_curve(self.episode_returns, self.episode_end_steps, self.total_steps)

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        """The run's figures as plain JSON-ready values."""
        return {
            "env": self.env,
            "seed": self.seed,
            "status": self.status,
            "message": self.message,
            "final_return": self.final_return,
            "auc": self.auc,
            "episodes": int(self.episode_returns.size),
            "steps": self.steps,
            "seconds": self.seconds,
            "steps_per_second": self.steps_per_second,
        }


# ----------------------------------------------------------------------------- running


def _as_program(program: Program | str | Path) -> Program:
    """``program`` itself, or the ``.evz`` file it names parsed; a ValueError naming the
    problem for anything else (a missing file, a directory, an int)."""
    if isinstance(program, Program):
        return program
    if not isinstance(program, (str, Path)):
        raise ValueError(f"a program must be a Program or the path of a .evz file, got {program!r}")
    path = Path(program)
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ValueError(
            f"program {str(program)!r} {problem}; give the path of a .evz file or a Program "
            "(evozero.program.dsl.parse reads program text)"
        )
    return dsl.load(program)


def _gym_vector_env(env: str | gym.vector.VectorEnv, config: TrainConfig) -> gym.vector.VectorEnv:
    """A gymnasium vector env with SAME_STEP autoreset, checked for what the trainer supports."""
    if isinstance(env, str):
        try:
            venv = gym.make_vec(
                env,
                num_envs=config.num_envs,
                vectorization_mode="sync",
                vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            )
        except gym.error.Error as e:
            raise ValueError(
                f"unknown env {env!r}: not a native game ({', '.join(GAMES)}) "
                f"and not a gymnasium id ({e}){did_you_mean_game(env)}"
            ) from None
    else:
        venv = env
    mode = venv.metadata.get("autoreset_mode")
    if mode != AutoresetMode.SAME_STEP:
        raise ValueError(
            f"the trainer needs a vector env with SAME_STEP autoreset, got {mode}; create it with "
            "gym.make_vec(id, num_envs, vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP})"
        )
    act, obs = venv.single_action_space, venv.single_observation_space
    if not isinstance(act, gym.spaces.Discrete):
        raise ValueError(f"the trainer supports Discrete action spaces only, got {act}")
    if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        hint = did_you_mean_game(venv.spec.id) if isinstance(env, str) and venv.spec else ""
        raise ValueError(
            f"the trainer supports flat Box observations (shape (n,)) only, got {obs}{hint}"
        )
    return venv


class _GymAdapter:
    """Feeds a SAME_STEP gymnasium vector env to the C++ trainer (called with the GIL held)."""

    def __init__(self, venv: gym.vector.VectorEnv) -> None:
        self.venv = venv
        self.num_envs = venv.num_envs
        self.obs_size = int(venv.single_observation_space.shape[0])
        self.num_actions = int(venv.single_action_space.n)
        self.start = int(venv.single_action_space.start)

    def reset(self, seed: int) -> np.ndarray:
        obs, _ = self.venv.reset(seed=seed % 2**31)
        return np.ascontiguousarray(obs, dtype=np.float32).reshape(self.num_envs, self.obs_size)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        obs, reward, terminated, truncated, info = self.venv.step(actions + self.start)
        obs = np.ascontiguousarray(obs, dtype=np.float32).reshape(self.num_envs, self.obs_size)
        final = obs.copy()
        if "final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                final[i] = np.asarray(info["final_obs"][i], dtype=np.float32).reshape(-1)
        return (
            obs,
            final,
            np.asarray(reward, dtype=np.float32),
            np.asarray(terminated, dtype=bool),
            np.asarray(truncated, dtype=bool),
        )


def _wait_out(finished: threading.Event) -> None:
    """Wait until ``finished`` is set, through further Ctrl-Cs (a cancelled run ends
    within one update; leaving before it does would abort the interpreter at exit)."""
    while True:
        try:
            finished.wait()
            return
        except KeyboardInterrupt:
            continue


def train(
    program: Program | str | Path,
    env: str | gym.vector.VectorEnv = "breakout",
    config: TrainConfig | None = None,
    seed: int = 0,
    *,
    on_progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    hooks: dict[str, Any] | None = None,
) -> TrainResult:
    """Train an agent with ``program`` as its update rule; one native call, GIL released.

    Args:
        program: a :class:`~evozero.program.Program`, or the path of a ``.evz`` file.
        env: a native MinAtar game (``breakout``, ...), a gymnasium id with a Discrete
            action space and a flat Box observation (``CartPole-v1``), or such a vector
            env created with SAME_STEP autoreset.
        config: the trainer skeleton's settings (default: :class:`TrainConfig`).
        seed: seeds the networks, the action sampling and the envs; same seed, same run.
        on_progress: called now and then with the env steps done so far.
        stop: set it (from any thread) to cancel the run: it stops within one update
            and ``train`` raises ``KeyboardInterrupt``, as on Ctrl-C in the calling thread.
        hooks: for refinement (:mod:`evozero.refine`), every key optional:
            ``initial_parameters`` (``{torch name: array}``, as the checkpoints give them)
            starts from these networks instead of the seed's; ``checkpoints`` (ascending
            update indices) records each such update's state, rollout, minibatch order
            and resulting parameters in ``TrainResult.checkpoints``;
            ``stop_after_checkpoints`` ends the run after the last one.

    Returns:
        A :class:`TrainResult`. A program whose values blow up gives status
        ``diverged``; it never raises for that.
    """
    config = config or TrainConfig()
    if (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64
    ):  # the native trainer's uint64
        raise ValueError(f"seed must be a non-negative integer below 2**64, got {seed!r}")
    prog = _as_program(program)
    check_native_tables()
    rule = _core.Interpreter(**compile_program(prog).arrays())
    options = config.trainer_options()
    progress = _core.TrainProgress()
    if isinstance(env, str) and env in GAMES:
        name = env
        call = functools.partial(_core.train_minatar, *config.native_env_args(env))
    else:
        if config.network != "mlp":
            raise ValueError(
                f"network {config.network!r} needs a native MinAtar game ({', '.join(GAMES)}); "
                f"{env if isinstance(env, str) else 'this env'} has flat Box observations: "
                "use network 'mlp'"
            )
        venv = _gym_vector_env(env, config)
        name = env if isinstance(env, str) else str(venv.spec.id if venv.spec else venv)
        adapter = _GymAdapter(venv)
        call = functools.partial(
            _core.train_python_env,
            adapter.reset,
            adapter.step,
            adapter.num_envs,
            adapter.obs_size,
            adapter.num_actions,
        )
    out: dict[str, Any] = {}
    # The calling thread waits on this event, not on Thread.join: on Python 3.11 a Ctrl-C
    # that lands inside Thread.join marks the thread as ended while it still runs
    # (CPython gh-90882), and a native run left behind aborts the interpreter at exit
    # ("terminate called without an active exception").
    finished = threading.Event()
    # A Ctrl-C can land inside thread.start(), before or after the thread was made: the
    # run then either never begins or is cancelled and waited for (``gate`` settles which).
    gate = threading.Lock()
    state = {"began": False, "abandoned": False}

    def run() -> None:
        with gate:
            if state["abandoned"]:
                return
            state["began"] = True
        try:
            out["result"] = call(rule, options, int(seed), progress, hooks)
        except BaseException as e:  # surfaced in the calling thread
            out["error"] = e
        finally:
            finished.set()

    thread = threading.Thread(target=run, name=f"evozero-train-{name}-{seed}", daemon=True)
    try:
        thread.start()
        while not finished.wait(timeout=0.2):
            if on_progress is not None:
                on_progress(progress.steps)
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        progress.cancel()
        with gate:
            state["abandoned"] = True
            began = state["began"]
        if began:
            _wait_out(finished)  # the run stops within one update
        raise
    thread.join()
    if "error" in out:
        raise out["error"]
    raw = out["result"]
    if on_progress is not None:
        on_progress(raw["steps"])
    return TrainResult(
        env=name,
        seed=int(seed),
        status=Status(raw["status"]),
        message=raw["message"],
        episode_returns=np.asarray(raw["episode_returns"], dtype=np.float64),
        episode_end_steps=np.asarray(raw["episode_end_steps"], dtype=np.int64),
        steps=int(raw["steps"]),
        total_steps=config.run_steps,
        seconds=float(raw["seconds"]),
        checkpoints=tuple(raw.get("checkpoints", ())),
        update_stats=np.asarray(raw["update_stats"], dtype=np.float32),
    )
