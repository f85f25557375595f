"""A CleanRL-style PyTorch PPO for MinAtar: the baseline of benchmarks/test_trainer.py.

The same algorithm, network and hyperparameters as ``evozero.train`` with
``programs/ppo.evz`` (PureJaxRL's MinAtar PPO), written the way a PyTorch user
would write it today:

- 64 envs x 128 steps per rollout, 4 epochs x 8 shuffled minibatches per update;
- separate actor and critic MLPs, obs (flattened to float32) -> 64 -> 64 -> out,
  ReLU, orthogonal init (gain sqrt 2; 0.01 for the actor's output, 1 for the
  critic's), zero biases; or (``network="conv"``) separate actor and critic
  MinAtar-paper conv nets, Conv2d(C, 16, 3x3) -> ReLU -> Linear(1024, 128) ->
  ReLU -> out, with the same init (evozero's ``TrainConfig(network="conv")``);
- Adam (eps 1e-5), lr 5e-3 annealed linearly to 0 per update, global grad-norm
  clip 0.5 over actor and critic together;
- GAE(0.99, 0.95) where ``term`` cuts the bootstrap and ``reset`` (any episode
  end) cuts the trace, ``v_next`` = V of the true next state (the final
  observation of an episode that just ended); advantages normalized once over the
  whole T x B rollout (population std, + 1e-8);
- loss, per sample and averaged over the minibatch, exactly as ppo.evz's objective:
  ``-min(ratio*adv, clip(ratio, 0.8, 1.2)*adv)
  + 0.5 * 0.5 * max((v - vt)^2, (v_old + clip(v - v_old, -0.2, 0.2) - vt)^2)
  - 0.01 * entropy``.

Two env back-ends: ``native`` (evozero's ``MinAtarVecEnv``, one C++ call per
step) and ``reference`` (``minatar``'s gymnasium envs in a
``gymnasium.vector.SyncVectorEnv``). Both autoreset in the same step.

    python benchmarks/torch_ppo.py --game breakout --envs native --total-steps 1000000
    python benchmarks/torch_ppo.py --learn   # final returns vs evozero.train at 2M steps
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import nn
from torch.distributions.categorical import Categorical


@dataclass
class Args:
    game: str = "breakout"
    envs: str = "native"  # "native" (evozero.envs.MinAtarVecEnv) or "reference" (minatar + gym)
    seed: int = 0
    total_steps: int = 2_000_000
    num_envs: int = 64
    num_steps: int = 128
    update_epochs: int = 4
    num_minibatches: int = 8
    lr: float = 5e-3
    anneal_lr: bool = True
    adam_eps: float = 1e-5
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    hidden: int = 64
    network: str = "mlp"  # or "conv" (or "conv-shared": one torso, benchmarks/conv_torso.py)
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)


def make_envs(args: Args) -> gym.vector.VectorEnv:
    """``num_envs`` MinAtar games with the minimal action set and SAME_STEP autoreset."""
    if args.envs == "native":
        from evozero.envs import MinAtarVecEnv

        return MinAtarVecEnv(args.game, args.num_envs, seed=args.seed, minimal_action_set=True)
    if args.envs == "reference":
        import minatar.gym

        env_id = f"MinAtar/{args.game.title().replace('_', '')}-v1"  # -v1: minimal action set
        if env_id not in gym.registry:
            minatar.gym.register_envs()
        return gym.vector.SyncVectorEnv(
            [lambda: gym.make(env_id) for _ in range(args.num_envs)],
            autoreset_mode=AutoresetMode.SAME_STEP,
        )
    raise ValueError(f"unknown env back-end {args.envs!r}; use 'native' or 'reference'")


def layer_init(layer: nn.Linear | nn.Conv2d, gain: float) -> nn.Linear | nn.Conv2d:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, 0.0)
    return layer


class MinAtarConv(nn.Sequential):
    """The MinAtar paper's network on flattened (n, 10 * 10 * C) bit planes (y, x, c order):
    Conv2d(C, 16, 3x3 valid) -> ReLU -> Linear(16 * 8 * 8, 128) -> ReLU -> Linear(128, out).
    Parameter names as evozero's conv network (csrc/trainer/conv.hpp): 0, 3, 5."""

    def __init__(self, obs_size: int, out: int, out_gain: float = 1.0) -> None:
        self.channels = obs_size // 100
        g = math.sqrt(2)
        super().__init__(
            layer_init(nn.Conv2d(self.channels, 16, 3), g),
            nn.ReLU(),
            nn.Flatten(),
            layer_init(nn.Linear(16 * 8 * 8, 128), g),
            nn.ReLU(),
            layer_init(nn.Linear(128, out), out_gain),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(len(x), 10, 10, self.channels).permute(0, 3, 1, 2))


def mlp(obs_size: int, hidden: int, out: int, out_gain: float) -> nn.Sequential:
    g = math.sqrt(2)
    return nn.Sequential(
        layer_init(nn.Linear(obs_size, hidden), g),
        nn.ReLU(),
        layer_init(nn.Linear(hidden, hidden), g),
        nn.ReLU(),
        layer_init(nn.Linear(hidden, out), out_gain),
    )


class Headed(nn.Module):
    """A linear head on a (possibly shared) torso."""

    def __init__(self, torso: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.torso, self.head = torso, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.torso(x))


class Agent(nn.Module):
    def __init__(
        self, obs_size: int, num_actions: int, hidden: int = 64, network: str = "mlp"
    ) -> None:
        super().__init__()
        if network == "conv":
            self.actor = MinAtarConv(obs_size, num_actions, 0.01)
            self.critic = MinAtarConv(obs_size, 1, 1.0)
        elif network == "conv-shared":
            # The MinAtar examples' actor-critic (examples/AC_lambda.py): one conv -> FC
            # 128 torso under both heads. Only for benchmarks/conv_torso.py; evozero's
            # conv network has separate torsos.
            torso = MinAtarConv(obs_size, 1)
            torso[-1] = nn.Identity()  # its layers up to the 128 features
            self.actor = Headed(torso, layer_init(nn.Linear(128, num_actions), 0.01))
            self.critic = Headed(torso, layer_init(nn.Linear(128, 1), 1.0))
        else:
            self.actor = mlp(obs_size, hidden, num_actions, 0.01)
            self.critic = mlp(obs_size, hidden, 1, 1.0)

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        dist = Categorical(logits=self.actor(x))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.get_value(x)


def flat(obs: np.ndarray) -> torch.Tensor:
    """A batch of bool (n, 10, 10, C) observations as float32 (n, 100*C)."""
    return torch.from_numpy(np.asarray(obs, dtype=np.float32).reshape(len(obs), -1))


@dataclass
class Progress:
    """Where a run is after an update: cumulative figures."""

    update: int
    steps: int
    seconds: float  # wall time of the updates so far (env creation excluded)
    episode_returns: list[float]
    episode_end_steps: list[int]


def train(args: Args) -> Iterator[Progress]:
    """PPO on ``args.game``; yields after every update (rollout + learning)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    envs = make_envs(args)
    T, B = args.num_steps, args.num_envs
    batch_size = T * B
    minibatch_size = batch_size // args.num_minibatches
    num_updates = args.total_steps // batch_size
    obs_size = int(np.prod(envs.single_observation_space.shape))
    agent = Agent(obs_size, int(envs.single_action_space.n), args.hidden, args.network)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.lr, eps=args.adam_eps)

    # Rollout storage, (T, B): step t of env i.
    obs = torch.zeros((T, B, obs_size))
    actions = torch.zeros((T, B), dtype=torch.long)
    logprobs, rewards, values, next_values = (torch.zeros((T, B)) for _ in range(4))
    terms, resets = torch.zeros((T, B)), torch.zeros((T, B))

    next_obs = flat(envs.reset(seed=args.seed)[0])
    episode_return = np.zeros(B)
    progress = Progress(0, 0, 0.0, [], [])
    for update in range(num_updates):
        start = time.perf_counter()
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.lr * (1.0 - update / num_updates)

        # Roll out T steps on B envs.
        for t in range(T):
            obs[t] = next_obs
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            actions[t], logprobs[t], values[t] = action, logprob, value
            o, reward, terminated, truncated, info = envs.step(action.numpy())
            progress.steps += B
            next_obs = flat(o)
            ended = terminated | truncated
            rewards[t] = torch.from_numpy(np.asarray(reward, dtype=np.float32))
            terms[t] = torch.from_numpy(terminated.astype(np.float32))
            resets[t] = torch.from_numpy(ended.astype(np.float32))
            episode_return += reward
            for i in np.flatnonzero(ended):
                progress.episode_returns.append(float(episode_return[i]))
                progress.episode_end_steps.append(progress.steps)
                episode_return[i] = 0.0
            if ended.any():  # V of the true final state: next_obs already starts a new episode
                idx = np.flatnonzero(ended)
                final = np.stack([info["final_obs"][i] for i in idx])
                with torch.no_grad():
                    next_values[t, idx] = agent.get_value(flat(final))

        # v_next of the steps that did not end an episode: V of the next step's state.
        with torch.no_grad():
            last_value = agent.get_value(next_obs)
        following = torch.cat([values[1:], last_value[None]])
        next_values = torch.where(resets.bool(), next_values, following)

        # GAE, backwards in time (ppo.evz's scan), then normalize over the rollout (post).
        advantages = torch.zeros((T, B))
        g = torch.zeros(B)
        for t in reversed(range(T)):
            delta = rewards[t] + args.gamma * (1 - terms[t]) * next_values[t] - values[t]
            g = delta + args.gamma * args.gae_lambda * (1 - resets[t]) * g
            advantages[t] = g
        vtargets = advantages + values
        advantages = (advantages - advantages.mean()) / (advantages.std(correction=0) + 1e-8)

        # E epochs of M shuffled minibatches (ppo.evz's objective).
        b_obs = obs.reshape(batch_size, obs_size)
        b_actions, b_logprobs = actions.reshape(-1), logprobs.reshape(-1)
        b_adv, b_vtargets = advantages.reshape(-1), vtargets.reshape(-1)
        b_values = values.reshape(-1)
        for _ in range(args.update_epochs):
            perm = torch.randperm(batch_size)
            for mb in perm.split(minibatch_size):
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b_obs[mb], b_actions[mb]
                )
                ratio = (newlogprob - b_logprobs[mb]).exp()
                adv = b_adv[mb]
                surr = torch.minimum(
                    ratio * adv, ratio.clamp(1 - args.clip_eps, 1 + args.clip_eps) * adv
                )
                v_old, vtarget = b_values[mb], b_vtargets[mb]
                v_clipped = v_old + (newvalue - v_old).clamp(-args.clip_eps, args.clip_eps)
                value_loss = 0.5 * torch.maximum(
                    (newvalue - vtarget).square(), (v_clipped - vtarget).square()
                )
                loss = (-surr + args.vf_coef * value_loss - args.ent_coef * entropy).mean()

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        progress.update = update + 1
        progress.seconds += time.perf_counter() - start
        yield progress
    envs.close()


def run(args: Args) -> Progress:
    """A whole run; returns its last Progress."""
    progress = None
    for p in train(args):
        progress = p
    if progress is None:
        raise ValueError("total_steps is less than one rollout (num_envs * num_steps)")
    return progress


def learn_comparison(games: list[str], total_steps: int, seed: int, threads: int) -> list[dict]:
    """Final returns (last 10% of steps) of this PPO and of evozero.train on the native games."""
    from pathlib import Path

    from evozero.native.train import TrainConfig, final_return, learning_curve
    from evozero.native.train import train as evozero_train

    program = Path(__file__).resolve().parents[1] / "programs" / "ppo.evz"
    rows = []
    for game in games:
        p = run(Args(game=game, envs="native", seed=seed, total_steps=total_steps, threads=threads))
        budget = p.update * 64 * 128
        torch_returns = np.asarray(p.episode_returns)
        torch_ends = np.asarray(p.episode_end_steps)
        r = evozero_train(program, game, TrainConfig(total_steps=total_steps), seed=seed)
        rows.append(
            {
                "game": game,
                "steps": budget,
                "torch_final": final_return(torch_returns, torch_ends, budget),
                "evozero_final": r.final_return,
                "torch_curve": learning_curve(torch_returns, torch_ends, budget, bins=10)[
                    1
                ].tolist(),
                "evozero_curve": learning_curve(
                    r.episode_returns, r.episode_end_steps, r.total_steps, bins=10
                )[1].tolist(),
                "torch_steps_per_s": p.steps / p.seconds,
                "evozero_steps_per_s": r.steps_per_second,
            }
        )
        row = rows[-1]
        print(
            f"{game:15s} {budget:>9,d} steps  final return: torch {row['torch_final']:6.2f}  "
            f"evozero {row['evozero_final']:6.2f}   steps/s: "
            f"torch {row['torch_steps_per_s']:,.0f}  evozero {row['evozero_steps_per_s']:,.0f}",
            flush=True,
        )
        print("  curve torch  ", " ".join(f"{x:5.1f}" for x in row["torch_curve"]))
        print("  curve evozero", " ".join(f"{x:5.1f}" for x in row["evozero_curve"]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--game", default="breakout")
    ap.add_argument("--envs", choices=("native", "reference"), default="native")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--total-steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    ap.add_argument(
        "--learn",
        action="store_true",
        help="compare final returns with evozero.train on native asterix and breakout",
    )
    ap.add_argument("--games", nargs="+", default=["asterix", "breakout"])
    ap.add_argument("--out", default=None, help="write the --learn rows as JSON here")
    a = ap.parse_args()
    if a.learn:
        import json

        rows = learn_comparison(a.games, a.total_steps or 2_000_000, a.seed, a.threads)
        if a.out:
            with open(a.out, "w") as f:
                json.dump(rows, f, indent=2)
        return
    args = Args(
        game=a.game,
        envs=a.envs,
        seed=a.seed,
        total_steps=a.total_steps or 2_000_000,
        threads=a.threads,
    )
    for p in train(args):
        if p.update % 10 == 0 or p.steps + args.num_envs * args.num_steps > args.total_steps:
            recent = p.episode_returns[-100:]
            mean = np.mean(recent) if recent else float("nan")
            print(
                f"update {p.update:4d}  steps {p.steps:>9,d}  "
                f"{p.steps / p.seconds:,.0f} steps/s  return (last 100 episodes) {mean:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
