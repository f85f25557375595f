// One agent's whole training run as block code (block.hpp): trainer.cpp's algorithm,
// step for step, for the MLP actor-critic on a native MinAtar game. run_agent<Game> runs
// on the host with a HostBlock (evozero.train_many(device="cpu"), and the tests that
// compare it with train()) and in CUDA with one thread block per agent (cuda/
// train_many.cu). What differs from trainer.cpp is only who does the work: elementwise
// work is split over the block's threads, sequential work (sampling, the shuffle, the
// episode bookkeeping, the statistics) is done by thread 0 in trainer.cpp's order.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "common/hd.hpp"
#include "minatar/env_step.hpp"
#include "minatar/random_state.hpp"
#include "population/interp.hpp"
#include "population/mt64.hpp"
#include "population/net.hpp"
#include "population/spec.hpp"
#include "trainer/adam.hpp"
#include "trainer/policy_head.hpp"

namespace evozero::population {

EVOZERO_HD inline uint64_t splitmix64(uint64_t x) {  // trainer.cpp's
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Everything one agent's run reads and writes.
struct AgentTask {
  const PopConfig* config;
  uint64_t seed;
  const float* params0;          // initial parameters (ActorCritic's, from the seed)
  const float* bias_correction;  // (2, adam steps): Adam's bc1, bc2 of step t + 1
  const int32_t* program_ints;   // the agent's flat program (spec.hpp)
  const float* program_floats;
  std::size_t ws_floats;         // its interpreter workspace (workspace_floats)
  char* arena;                   // agent_layout(...).total bytes
  AgentOut out;
};

namespace detail {

template <class T>
EVOZERO_HD T* at(char* arena, std::size_t offset) {
  return reinterpret_cast<T*>(arena + offset);
}

EVOZERO_HD inline bool finite(float x) { return std::isfinite(x); }

}  // namespace detail

// The arena layout of an agent of this game.
template <class Game>
EVOZERO_HD Layout agent_layout(const PopConfig& c, std::size_t ws_floats) {
  return make_layout(c, ws_floats, sizeof(Mt64), sizeof(evozero::RandomState), sizeof(Game));
}

template <class Game, class Blk>
EVOZERO_HD void run_agent(const Blk& blk, const AgentTask& task) {
  using detail::at;
  const PopConfig& c = *task.config;
  const Layout L = agent_layout<Game>(c, task.ws_floats);
  char* ar = task.arena;
  const AgentProgram program{task.program_ints, task.program_floats, at<float>(ar, L.ws)};
  const int B = c.B, T = c.T, A = c.A, S = c.obs_size, n = c.n, H = c.H;
  const std::size_t TB = std::size_t(T) * B, P = std::size_t(c.params);
  const int tid = blk.tid(), nt = blk.size();
  const Numerics num{c.lanes, c.fma != 0};
  const MlpShape actor = MlpShape::make(S, c.hidden, H, A, 0);
  const MlpShape critic = MlpShape::make(S, c.hidden, H, 1, std::size_t(c.actor_size));

  float* params = at<float>(ar, L.params);
  float* grads = at<float>(ar, L.grads);
  float* adam_m = at<float>(ar, L.adam_m);
  float* adam_v = at<float>(ar, L.adam_v);
  float *r = at<float>(ar, L.r), *term = at<float>(ar, L.term), *reset = at<float>(ar, L.reset);
  float *v = at<float>(ar, L.v), *v_next = at<float>(ar, L.v_next), *logp = at<float>(ar, L.logp);
  float *entropy = at<float>(ar, L.entropy), *adv = at<float>(ar, L.adv);
  float* vtarget = at<float>(ar, L.vtarget);
  float* step_reward = at<float>(ar, L.step_reward);
  float* ep_return = at<float>(ar, L.ep_return);
  float* mb[11];
  for (int k = 0; k < 11; ++k) mb[k] = at<float>(ar, L.mb[k]);
  float *mb_logp = mb[0], *mb_v = mb[1], *mb_ent = mb[2], *mb_logp_old = mb[3], *mb_adv = mb[4];
  float *mb_v_old = mb[5], *mb_vtarget = mb[6], *loss = mb[7], *d_logp = mb[8], *d_v = mb[9];
  float* d_ent = mb[10];
  int32_t *active = at<int32_t>(ar, L.active), *count = at<int32_t>(ar, L.count);
  int32_t *col_ptr = at<int32_t>(ar, L.col_ptr), *col_samples = at<int32_t>(ar, L.col_samples);
  const MlpBuffers nets[2] = {{at<float>(ar, L.h1[0]), at<float>(ar, L.h2[0]),
                               at<float>(ar, L.d1[0]), at<float>(ar, L.d2[0]), active, count,
                               col_ptr, col_samples},
                              {at<float>(ar, L.h1[1]), at<float>(ar, L.h2[1]),
                               at<float>(ar, L.d1[1]), at<float>(ar, L.d2[1]), active, count,
                               col_ptr, col_samples}};
  float *logits = at<float>(ar, L.logits), *log_probs = at<float>(ar, L.log_probs);
  float *probs = at<float>(ar, L.probs), *dlogits = at<float>(ar, L.dlogits);
  float *ent_n = at<float>(ar, L.ent_n), *value = at<float>(ar, L.value);
  double* sums = at<double>(ar, L.sums);  // 0..8 StatSums, 9..10 scratch, 12..19 norm lanes
  int32_t *actions = at<int32_t>(ar, L.actions), *perm = at<int32_t>(ar, L.perm);
  int32_t *ended = at<int32_t>(ar, L.ended), *last_action = at<int32_t>(ar, L.last_action);
  int64_t* episode_steps = at<int64_t>(ar, L.episode_steps);
  int64_t* control = at<int64_t>(ar, L.control);  // 0 reason, 1 ended, 2 steps, 3 episodes
  uint8_t *store = at<uint8_t>(ar, L.obs), *final_obs = at<uint8_t>(ar, L.final_obs);
  uint8_t *terminated = at<uint8_t>(ar, L.terminated), *truncated = at<uint8_t>(ar, L.truncated);
  Mt64* rng = at<Mt64>(ar, L.rng);
  evozero::RandomState* env_rngs = at<evozero::RandomState>(ar, L.env_rngs);
  Game* games = at<Game>(ar, L.games);
  double* scratch = sums + 9;
  int64_t* info = task.out.info;

  // Start: parameters, Adam, the rng, the envs (MinAtarTrainEnv::reset).
  for (std::size_t k = tid; k < P; k += nt) {
    params[k] = task.params0[k];
    adam_m[k] = 0.0f, adam_v[k] = 0.0f;
  }
  for (int i = tid; i < B; i += nt) {
    games[i] = Game(c.env.difficulty_ramping);
    env_rngs[i] = evozero::RandomState(uint32_t(splitmix64(task.seed * 0x100000001b3ull + i)));
    last_action[i] = 0, episode_steps[i] = 0, ep_return[i] = 0.0f;
    minatar::restart_env(games[i], env_rngs[i], episode_steps[i]);
    uint8_t* o = store + std::size_t(i) * S;
    for (int j = 0; j < S; ++j) o[j] = 0;
    games[i].render(o);
  }
  if (tid == 0) {
    *rng = Mt64(splitmix64(task.seed ^ 0x5a3c1e77ull));
    for (int k = 0; k < 8; ++k) control[k] = 0;
    for (int k = 0; k < kNumInfo; ++k) info[k] = 0;
  }
  blk.sync();

  auto forward_policy = [&](const ObsRows& x, int rows, const int32_t* act, float* lp_out,
                            float* ent_out, float* v_out) {
    mlp_forward(blk, num, actor, params, x, rows, nets[0], logits);
    mlp_forward(blk, num, critic, params, x, rows, nets[1], value);
    for (int i = tid; i < rows; i += nt) {
      float* lp = log_probs + std::size_t(i) * A;
      const float h = trainer::categorical_forward_row(A, logits + std::size_t(i) * A, lp,
                                                        probs + std::size_t(i) * A);
      ent_n[i] = h;
      if (ent_out) ent_out[i] = h;
      if (v_out) v_out[i] = value[i];
      if (act && lp_out) lp_out[i] = lp[act[i]];
    }
    blk.sync();
  };
  auto stop = [&](int reason) {  // thread 0 only
    control[0] = reason;
  };

  int64_t adam_count = 0;
  int64_t u = 0;
  for (; u < c.updates; ++u) {
    const float prog = float(double(u) / double(c.updates));
    const float lr = c.anneal_lr ? c.lr * (1.f - prog) : c.lr;
    if (u > 0) {  // the last observations (rows T*B..) start the next rollout
      for (std::size_t k = tid; k < std::size_t(B) * S; k += nt)
        store[k] = store[TB * S + k];
      blk.sync();
    }
    for (int t = 0; t < T; ++t) {
      const std::size_t row0 = std::size_t(t) * B;
      const ObsRows x{store + row0 * S, nullptr, S};
      forward_policy(x, B, nullptr, nullptr, entropy + row0, v + row0);
      if (tid == 0) {  // sample_actions, then the finiteness check
        bool ok = true;
        for (int i = 0; i < B; ++i) {
          const float uu = float((*rng)() >> 40) * 0x1.0p-24f;
          const float* p = probs + std::size_t(i) * A;
          int a = 0;
          float cum = p[0];
          while (a < A - 1 && cum <= uu) cum += p[++a];
          actions[row0 + i] = a;
          logp[row0 + i] = log_probs[std::size_t(i) * A + a];
        }
        for (int i = 0; i < B; ++i) ok = ok && detail::finite(v[row0 + i]);
        for (int i = 0; i < B; ++i) ok = ok && detail::finite(logp[row0 + i]);
        if (!ok) stop(kReasonPolicy);
      }
      blk.sync();
      if (control[0]) break;
      for (int i = tid; i < B; i += nt) {  // GameVecEnv::step
        uint8_t* o = store + (row0 + B + i) * S;
        uint8_t* fin = final_obs + std::size_t(i) * S;
        for (int j = 0; j < S; ++j) o[j] = 0;
        const bool end = minatar::advance_env(games[i], env_rngs[i], last_action[i],
                                              episode_steps[i], c.action_set[actions[row0 + i]],
                                              c.env, step_reward[i], terminated[i], truncated[i]);
        if (end) {
          for (int j = 0; j < S; ++j) fin[j] = 0;
          games[i].render(fin);
          minatar::restart_env(games[i], env_rngs[i], episode_steps[i]);
        }
        games[i].render(o);
      }
      blk.sync();
      if (tid == 0) {
        control[2] += B;
        int64_t ne = 0;
        for (int i = 0; i < B; ++i) {
          r[row0 + i] = step_reward[i];
          term[row0 + i] = terminated[i] ? 1.f : 0.f;
          reset[row0 + i] = (terminated[i] || truncated[i]) ? 1.f : 0.f;
          ep_return[i] += step_reward[i];
          if (terminated[i] || truncated[i]) {
            ended[ne++] = i;
            if (control[3] < c.episode_capacity) {
              task.out.episode_returns[control[3]] = ep_return[i];
              task.out.episode_end_steps[control[3]] = control[2];
            }
            ++control[3];
            ep_return[i] = 0.f;
          }
        }
        control[1] = ne;
      }
      blk.sync();
      const int ne = int(control[1]);
      if (ne > 0) {  // V of the true final states
        const ObsRows fx{final_obs, ended, S};
        mlp_forward(blk, num, critic, params, fx, ne, nets[1], value);
        for (int k = tid; k < ne; k += nt) v_next[row0 + ended[k]] = value[k];
      }
      if (t > 0)
        for (int i = tid; i < B; i += nt)
          if (!reset[row0 - B + i]) v_next[row0 - B + i] = v[row0 + i];
      blk.sync();
    }
    if (control[0]) break;
    {  // V(s_T)
      const std::size_t last = std::size_t(T - 1) * B;
      const ObsRows x{store + TB * S, nullptr, S};
      mlp_forward(blk, num, critic, params, x, B, nets[1], value);
      for (int i = tid; i < B; i += nt)
        if (!reset[last + i]) v_next[last + i] = value[i];
      blk.sync();
    }
    {  // targets from the program
      const float* in[7] = {r, term, reset, v, v_next, logp, entropy};
      run_scan(blk, program, std::size_t(T), std::size_t(B), in, prog, adv, vtarget, scratch);
      run_post(blk, program, TB, adv, vtarget, v, r, prog, scratch);
      if (tid == 0) {
        bool ok = true;
        for (std::size_t k = 0; k < TB; ++k) ok = ok && detail::finite(adv[k]);
        for (std::size_t k = 0; k < TB; ++k) ok = ok && detail::finite(vtarget[k]);
        if (!ok) stop(kReasonTargets);
        for (int k = 0; k < 9; ++k) sums[k] = 0.0;
      }
      blk.sync();
      if (control[0]) break;
    }
    for (int e = 0; e < c.epochs && !control[0]; ++e) {
      if (tid == 0) {
        for (std::size_t k = 0; k < TB; ++k) perm[k] = int32_t(k);
        for (int64_t k = int64_t(TB) - 1; k > 0; --k) {
          const int64_t j = int64_t((*rng)() % uint64_t(k + 1));
          const int32_t tmp = perm[k];
          perm[k] = perm[j], perm[j] = tmp;
        }
      }
      blk.sync();
      for (int m = 0; m < c.minibatches; ++m) {
        const int32_t* rows = perm + std::size_t(m) * n;
        for (int i = tid; i < n; i += nt) {
          mb_logp_old[i] = logp[rows[i]];
          mb_adv[i] = adv[rows[i]];
          mb_v_old[i] = v[rows[i]];
          mb_vtarget[i] = vtarget[rows[i]];
        }
        blk.sync();
        const ObsRows x{store, rows, S};
        int32_t* mb_actions = at<int32_t>(ar, L.rows);
        for (int i = tid; i < n; i += nt) mb_actions[i] = actions[rows[i]];
        blk.sync();
        forward_policy(x, n, mb_actions, mb_logp, mb_ent, mb_v);
        {
          const float* in[7] = {mb_logp, mb_logp_old, mb_adv, mb_v, mb_v_old, mb_vtarget, mb_ent};
          float* const out[4] = {loss, d_logp, d_v, d_ent};
          run_objective(blk, program, std::size_t(n), in, prog, out, scratch);
        }
        if (tid == 0) {
          bool ok = true;
          for (int i = 0; i < n; ++i)
            ok = ok && detail::finite(loss[i]) && detail::finite(d_logp[i]) &&
                 detail::finite(d_v[i]) && detail::finite(d_ent[i]);
          if (!ok) {
            stop(kReasonLoss);
          } else {
            for (int i = 0; i < n; ++i) {  // StatSums, in trainer.cpp's order
              const float log_ratio = mb_logp[i] - mb_logp_old[i];
              sums[0] += mb_ent[i];
              sums[1] += loss[i];
              sums[2] += float(std::expm1(log_ratio)) - log_ratio;
              sums[3] += d_logp[i];
              sums[4] += double(d_logp[i]) * d_logp[i];
              sums[5] += d_v[i];
              sums[6] += double(d_v[i]) * d_v[i];
              sums[7] += d_ent[i];
              sums[8] += double(d_ent[i]) * d_ent[i];
            }
          }
        }
        blk.sync();
        if (control[0]) break;
        const float inv_n = 1.f / float(n);
        for (int i = tid; i < n; i += nt) {
          d_logp[i] *= inv_n, d_v[i] *= inv_n, d_ent[i] *= inv_n;
          const std::size_t o = std::size_t(i) * A;
          trainer::categorical_backward_row(A, log_probs + o, probs + o, ent_n[i], mb_actions[i],
                                            d_logp[i], d_ent[i], dlogits + o);
        }
        blk.sync();
        mlp_backward(blk, num, actor, params, x, n, nets[0], dlogits, grads);
        mlp_backward(blk, num, critic, params, x, n, nets[1], d_v, grads);
        // Adam::step: the global norm, adam.cpp's 8 partial sums in double (lane l: the
        // squares of elements l, l + 8, ...; the tail into lane 0), one thread per lane.
        double* lanes = sums + 12;
        for (int l = tid; l < 8; l += nt) {
          double acc = 0.0;
          const std::size_t whole = P / 8 * 8;
          for (std::size_t k = std::size_t(l); k < whole; k += 8)
            acc += double(grads[k]) * double(grads[k]);
          if (l == 0)
            for (std::size_t k = whole; k < P; ++k) acc += double(grads[k]) * double(grads[k]);
          lanes[l] = acc;
        }
        blk.sync();
        if (tid == 0) {
          double total = 0.0;
          for (int l = 0; l < 8; ++l) total += lanes[l];
          scratch[0] = std::sqrt(total);
          if (!detail::finite(float(scratch[0]))) stop(kReasonGradNorm);
        }
        blk.sync();
        if (control[0]) break;
        const float norm = float(scratch[0]);
        const bool clip =
            c.max_grad_norm > 0.0f && detail::finite(c.max_grad_norm) && !(norm < c.max_grad_norm);
        const float bc1 = task.bias_correction[2 * adam_count];
        const float bc2 = task.bias_correction[2 * adam_count + 1];
        ++adam_count;
        for (std::size_t k = tid; k < P; k += nt) {
          const float g = clip ? (grads[k] / norm) * c.max_grad_norm : grads[k];
          trainer::adam_element(params[k], g, adam_m[k], adam_v[k], c.b1, c.b2, c.adam_eps, bc1,
                                bc2, -lr);
        }
        blk.sync();
      }
    }
    if (control[0]) break;
    if (tid == 0) {  // StatSums::write
      const double cnt = double(c.epochs) * c.minibatches * n;
      float* row = task.out.update_stats + std::size_t(u) * trainer::kNumUpdateStats;
      row[trainer::kEntropy] = float(sums[0] / cnt);
      row[trainer::kLoss] = float(sums[1] / cnt);
      row[trainer::kApproxKl] = float(sums[2] / cnt);
      const int mean[3] = {trainer::kDLogpMean, trainer::kDVMean, trainer::kDEntropyMean};
      const int sd[3] = {trainer::kDLogpStd, trainer::kDVStd, trainer::kDEntropyStd};
      for (int k = 0; k < 3; ++k) {
        const double mm = sums[3 + 2 * k] / cnt;
        row[mean[k]] = float(mm);
        row[sd[k]] = float(std::sqrt(hd_max(0.0, sums[4 + 2 * k] / cnt - mm * mm)));
      }
    }
    blk.sync();
  }
  for (std::size_t k = tid; k < P; k += nt) task.out.params[k] = params[k];
  if (tid == 0) {
    const bool full = control[3] > c.episode_capacity;
    info[kInfoReason] = control[0] ? control[0] : full ? int64_t(kReasonEpisodes) : 0;
    info[kInfoStatus] = control[0] ? 1 : full ? 2 : 0;
    info[kInfoSteps] = control[2];
    info[kInfoEpisodes] = control[3] < c.episode_capacity ? control[3] : c.episode_capacity;
    info[kInfoUpdates] = u;
  }
  blk.sync();
}

}  // namespace evozero::population
