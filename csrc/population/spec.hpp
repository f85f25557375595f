// What a population run is made of, as plain data that host and device code share:
// the settings every agent has (PopConfig), each agent's compiled program in a flat,
// pointer-free form (FlatComponent ...), and where each of an agent's buffers lies in
// its memory arena (Layout). The host builds it (pack.cpp); the block code (agent.hpp)
// reads it on the CPU or in a CUDA kernel.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/hd.hpp"
#include "generated/update_stats.hpp"
#include "minatar/env_step.hpp"

namespace evozero::population {

// The games, in the order of minatar::game_names() (the kernel switches on the index).
enum GameId : int32_t { kAsterix, kBreakout, kFreeway, kSeaquest, kSpaceInvaders, kNumGames };

// The settings shared by every agent: trainer::TrainConfig's, the env's and the
// numerics of the CPU kernels the block code follows (mlp.hpp there).
struct PopConfig {
  int32_t game;
  int32_t B, T, A, obs_size;  // envs, rollout length, actions, 100 * channels
  int32_t hidden, H;          // hidden width and its padded stride (multiple of 16)
  int32_t n;                  // minibatch size = T * B / minibatches
  int32_t epochs, minibatches;
  int64_t updates;
  float lr, adam_eps, b1, b2, max_grad_norm;
  int32_t anneal_lr;
  minatar::EnvOptions env;
  int32_t action_set[6];
  // The CPU kernels' dispatch to reproduce: vector lanes (4, 8, 16) of the output
  // layer's dot products and whether multiply-adds are fused (trainer/kernels.cpp).
  int32_t lanes, fma;
  int64_t actor_size, params;  // floats of the actor's MLP; of both (flat layout, mlp.hpp)
  int64_t episode_capacity;    // room for episode returns per agent
};

// One agent's seeds: its run seed (train()'s `seed`).
struct AgentSeed {
  uint64_t seed;
};

// A component of a compiled program with its interpreter plan (interpreter.hpp), in
// int32 fields; the arrays are at offsets (in int32s) from the agent's program start.
struct FlatComponent {
  int32_t kind, num_regs, ncode, num_slots, reads_ratio, num_carries, ni, first_const;
  int32_t progress_reg;
  int32_t off_instr, off_regs, off_order, n_order, off_step, n_step, off_after, n_after;
  int32_t off_outputs, n_outputs, off_carry_init;
  int32_t off_sval;  // into the agent's program floats: each register's initial value
};
struct FlatInstr {
  int32_t op, dst, src[3], mode, arity, batch;
};
struct FlatReg {
  int32_t scalar, slot, tmask, tslot[3];
};
// An agent's program: 3 FlatComponents (scan, post, objective) then their arrays.
constexpr int kFlatHeaderInts = 3 * int(sizeof(FlatComponent) / sizeof(int32_t));

// The per-agent status block (int64): how its run ended and what it did.
enum Info : int { kInfoStatus, kInfoReason, kInfoSteps, kInfoEpisodes, kInfoUpdates, kNumInfo };
// Why a run stopped early (the messages of trainer.cpp, in pack.cpp).
enum Reason : int {
  kReasonNone,
  kReasonPolicy,     // the policy or value network produced a non-finite output
  kReasonTargets,    // the program's advantages or value targets are not finite
  kReasonLoss,       // the program's loss or its derivatives are not finite
  kReasonGradNorm,   // the gradient norm is not finite
  kReasonEpisodes,   // more episodes than episode_capacity
};

// Byte offsets of an agent's buffers in its arena; every offset is 16-byte aligned.
struct Layout {
  // floats
  std::size_t params, grads, adam_m, adam_v;
  std::size_t r, term, reset, v, v_next, logp, entropy, adv, vtarget;  // (T, B)
  std::size_t step_reward, ended_v, ep_return, uniforms;                 // B
  std::size_t mb[11];  // n each: logp, v, ent, logp_old, adv, v_old, vtarget, loss, dl, dv, dh
  std::size_t h1[2], h2[2], d1[2], d2[2];  // (N, H) per network (actor, critic)
  std::size_t logits, log_probs, probs, dlogits;  // (N, A)
  std::size_t ent_n, value;                       // N
  std::size_t ws;                                 // interpreter workspace floats
  // doubles
  std::size_t sums;   // 12: StatSums of trainer.cpp, then 8 norm lanes
  // ints
  std::size_t actions, perm, rows, ended;  // int32: T*B, T*B, N, B
  std::size_t active, count, col_ptr, col_samples;  // int32: N*S, N, S+1, N*S
  std::size_t last_action;                  // int32 B
  std::size_t episode_steps;                // int64 B
  std::size_t control;                      // int64 8: shared flags
  // bytes
  std::size_t obs;      // (T + 1) * B * obs_size
  std::size_t final_obs;  // B * obs_size
  std::size_t terminated, truncated;  // B
  std::size_t rng;      // Mt64
  std::size_t env_rngs;  // B RandomState
  std::size_t games;    // B Game
  std::size_t total;
};

EVOZERO_HD inline std::size_t align16(std::size_t x) { return (x + 15) / 16 * 16; }

// The layout for config c, an interpreter workspace of ws_floats, a Mt64 of mt_bytes
// and games of game_bytes each (sizes passed in: the same on host and device).
EVOZERO_HD inline Layout make_layout(const PopConfig& c, std::size_t ws_floats,
                                     std::size_t mt_bytes, std::size_t rng_bytes,
                                     std::size_t game_bytes) {
  Layout l{};
  std::size_t at = 0;
  auto take = [&at](std::size_t bytes) {
    const std::size_t here = at;
    at = align16(at + bytes);
    return here;
  };
  const std::size_t F = sizeof(float), P = std::size_t(c.params);
  const std::size_t TB = std::size_t(c.T) * c.B, B = std::size_t(c.B);
  const std::size_t N = std::size_t(c.n > c.B ? c.n : c.B), H = std::size_t(c.H);
  const std::size_t A = std::size_t(c.A);
  l.params = take(P * F), l.grads = take(P * F), l.adam_m = take(P * F), l.adam_v = take(P * F);
  l.r = take(TB * F), l.term = take(TB * F), l.reset = take(TB * F), l.v = take(TB * F);
  l.v_next = take(TB * F), l.logp = take(TB * F), l.entropy = take(TB * F);
  l.adv = take(TB * F), l.vtarget = take(TB * F);
  l.step_reward = take(B * F), l.ended_v = take(B * F), l.ep_return = take(B * F);
  l.uniforms = take(B * F);
  for (std::size_t& m : l.mb) m = take(std::size_t(c.n) * F);
  for (int k = 0; k < 2; ++k) {
    l.h1[k] = take(N * H * F), l.h2[k] = take(N * H * F);
    l.d1[k] = take(N * H * F), l.d2[k] = take(N * H * F);
  }
  l.logits = take(N * A * F), l.log_probs = take(N * A * F), l.probs = take(N * A * F);
  l.dlogits = take(N * A * F), l.ent_n = take(N * F), l.value = take(N * F);
  l.ws = take(ws_floats * F);
  l.sums = take(20 * sizeof(double));
  l.actions = take(TB * 4), l.perm = take(TB * 4), l.rows = take(N * 4), l.ended = take(B * 4);
  const std::size_t S = std::size_t(c.obs_size);
  l.active = take(N * S * 4), l.count = take(N * 4), l.col_ptr = take((S + 1) * 4);
  l.col_samples = take(N * S * 4);
  l.last_action = take(B * 4);
  l.episode_steps = take(B * 8);
  l.control = take(8 * 8);
  l.obs = take((TB + B) * std::size_t(c.obs_size));
  l.final_obs = take(B * std::size_t(c.obs_size));
  l.terminated = take(B), l.truncated = take(B);
  l.rng = take(mt_bytes);
  l.env_rngs = take(B * rng_bytes);
  l.games = take(B * game_bytes);
  l.total = at;
  return l;
}

// Where an agent's results go (host or device memory, per agent).
struct AgentOut {
  int64_t* info;            // kNumInfo
  float* episode_returns;   // episode_capacity
  int64_t* episode_end_steps;
  float* update_stats;      // updates * trainer::kNumUpdateStats
  float* params;            // the final parameters
};

}  // namespace evozero::population
