#include "trainer/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <random>
#include <stdexcept>
#include <vector>

#include "trainer/actor_critic.hpp"

namespace evozero::trainer {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

bool all_finite(const float* x, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

// The observations of a rollout, one row per (t, i), in the form the
// networks read: CSR active cells for binary envs, dense floats otherwise.
class ObsStore {
 public:
  ObsStore(bool binary, int obs_size) : binary_(binary), size_(obs_size) { clear(); }

  void clear() {
    indptr_.assign(1, 0);
    indices_.clear();
    dense_.clear();
    rows_ = 0;
  }

  // Appends n observations (uint8 or float, per the env) as the next n rows.
  void append(const void* obs, int n) {
    if (binary_) {
      const auto* o = static_cast<const uint8_t*>(obs);
      for (int i = 0; i < n; ++i, o += size_) {
        for (int j = 0; j < size_; ++j)
          if (o[j]) indices_.push_back(j);
        indptr_.push_back(static_cast<int64_t>(indices_.size()));
      }
    } else {
      const auto* o = static_cast<const float*>(obs);
      dense_.insert(dense_.end(), o, o + static_cast<std::size_t>(n) * size_);
    }
    rows_ += n;
  }

  // Rows rows[0..n) of the store (rows may be null: rows 0..n).
  Observations view(const int64_t* rows) const {
    Observations v;
    if (binary_) {
      v.indptr = indptr_.data();
      v.indices = indices_.data();
    } else {
      v.dense = dense_.data();
    }
    v.rows = rows;
    return v;
  }

  int64_t rows() const { return rows_; }

  // Every row as dense floats (for checkpoints).
  std::vector<float> dense() const {
    if (!binary_) return dense_;
    std::vector<float> out(std::size_t(rows_) * size_, 0.f);
    for (int64_t b = 0; b < rows_; ++b)
      for (int64_t p = indptr_[b]; p < indptr_[b + 1]; ++p)
        out[std::size_t(b) * size_ + indices_[p]] = 1.f;
    return out;
  }

 private:
  bool binary_;
  int size_;
  std::vector<int64_t> indptr_;
  std::vector<int32_t> indices_;
  std::vector<float> dense_;
  int64_t rows_ = 0;
};

// Inverse-CDF sampling from each row of probs (n, A); writes actions and their log-probs.
void sample_actions(const float* probs, const float* log_probs, int n, int A,
                    std::mt19937_64& rng, int64_t* actions, float* logp) {
  for (int i = 0; i < n; ++i) {
    const float u = static_cast<float>(rng() >> 40) * 0x1.0p-24f;
    const float* p = probs + static_cast<std::size_t>(i) * A;
    int a = 0;
    float cum = p[0];
    while (a < A - 1 && cum <= u) cum += p[++a];
    actions[i] = a;
    logp[i] = log_probs[static_cast<std::size_t>(i) * A + a];
  }
}

// Sums over an update's learning phase, for TrainResult::update_stats (double: an
// update pools E * T * B samples).
struct StatSums {
  double entropy = 0, loss = 0, kl = 0, n = 0;
  double d[3] = {0, 0, 0}, d2[3] = {0, 0, 0};  // d_logp, d_v, d_entropy: sum, sum of squares

  // Appends the row of mean (and std) values to out.
  void write(std::vector<float>& out) const {
    float row[kNumUpdateStats];
    row[kEntropy] = static_cast<float>(entropy / n);
    row[kLoss] = static_cast<float>(loss / n);
    row[kApproxKl] = static_cast<float>(kl / n);
    const int mean[3] = {kDLogpMean, kDVMean, kDEntropyMean};
    const int sd[3] = {kDLogpStd, kDVStd, kDEntropyStd};
    for (int k = 0; k < 3; ++k) {
      const double m = d[k] / n;
      row[mean[k]] = static_cast<float>(m);
      row[sd[k]] = static_cast<float>(std::sqrt(std::max(0.0, d2[k] / n - m * m)));
    }
    out.insert(out.end(), row, row + kNumUpdateStats);
  }
};

template <class T>
void gather(const T* src, const int64_t* rows, int n, T* dst) {
  for (int i = 0; i < n; ++i) dst[i] = src[rows[i]];
}

}  // namespace

void MinAtarTrainEnv::reset(uint64_t seed, void* obs) {
  std::vector<uint32_t> seeds(env_->num_envs());
  for (int i = 0; i < env_->num_envs(); ++i)
    seeds[i] = static_cast<uint32_t>(splitmix64(seed * 0x100000001b3ull + i));
  env_->reset(seeds.data(), static_cast<uint8_t*>(obs));
}

TrainResult train(TrainEnv& env, UpdateRule& rule, const TrainConfig& cfg, uint64_t seed,
                  TrainProgress* progress, const TrainHooks* hooks) {
  const auto start = std::chrono::steady_clock::now();
  TrainResult result;
  try {
    const int B = env.num_envs(), T = cfg.num_steps, A = env.num_actions();
    const int size = env.obs_size();
    const int64_t batch = int64_t(T) * B;
    const int n = static_cast<int>(batch / cfg.num_minibatches);
    const int64_t updates = cfg.total_steps / batch;
    const std::size_t obs_bytes = env.binary() ? sizeof(uint8_t) : sizeof(float);

    const NetworkKind network = network_kind(cfg.network);
    if (network == NetworkKind::kConv && !env.binary())
      throw std::invalid_argument("network 'conv' needs MinAtar bit-plane observations; use 'mlp'");
    ActorCritic net(size, A, cfg.hidden, network, splitmix64(seed ^ 0xac7019c21ull),
                    AdamConfig{cfg.adam_eps});
    if (hooks && !hooks->initial_parameters.empty()) {
      if (hooks->initial_parameters.size() != net.num_parameters())
        throw std::invalid_argument("initial parameters do not fit the networks");
      std::copy(hooks->initial_parameters.begin(), hooks->initial_parameters.end(),
                net.mutable_parameters());
      net.parameters_changed();
    }
    std::size_t next_checkpoint = 0;  // into hooks->checkpoint_updates
    // Room for the rows of any usual run up front (4096 updates: 147 KB); a budget of
    // hours (or 10^12 steps, which only a cancel ends) grows it by doubling instead.
    result.update_stats.reserve(std::size_t(std::min<int64_t>(updates, 4096)) * kNumUpdateStats);
    std::mt19937_64 rng(splitmix64(seed ^ 0x5a3c1e77ull));
    ObsStore store(env.binary(), size);

    std::vector<unsigned char> obs(B * size * obs_bytes), final_obs(B * size * obs_bytes);
    std::vector<float> r(batch), term(batch), reset(batch), v(batch), v_next(batch),
        logp(batch), entropy(batch), adv(batch), vtarget(batch);
    std::vector<int64_t> actions(batch), iota((T + 1) * int64_t(B)), perm(batch);
    for (std::size_t i = 0; i < iota.size(); ++i) iota[i] = static_cast<int64_t>(i);
    std::vector<float> step_reward(B), ended_v(B), v_last(B), ep_return(B, 0.f);
    std::vector<int> ended;  // envs whose episode ended this step
    ended.reserve(B);
    ObsStore finals(env.binary(), size);  // their last observations
    std::vector<uint8_t> terminated(B), truncated(B);
    // Minibatch buffers.
    std::vector<int64_t> mb_actions(n);
    std::vector<float> mb_logp(n), mb_v(n), mb_ent(n), mb_logp_old(n), mb_adv(n), mb_v_old(n),
        mb_vtarget(n), loss(n), d_logp(n), d_v(n), d_ent(n);

    auto diverged = [&](const std::string& what) {
      result.status = Status::kDiverged;
      result.message = what;
    };

    env.reset(seed, obs.data());
    for (int64_t u = 0; u < updates; ++u) {
      if (progress && progress->cancel.load()) {
        result.status = Status::kError;
        result.message = "cancelled";
        break;
      }
      const float prog = static_cast<float>(double(u) / double(updates));
      const float lr = cfg.anneal_lr ? cfg.lr * (1.f - prog) : cfg.lr;

      // Roll out T steps on B envs.
      store.clear();
      for (int t = 0; t < T; ++t) {
        const int64_t row0 = int64_t(t) * B;
        store.append(obs.data(), B);
        net.forward(store.view(&iota[row0]), B, nullptr, nullptr, &v[row0], &entropy[row0]);
        sample_actions(net.probs(), net.log_probs(), B, A, rng, &actions[row0], &logp[row0]);
        if (!all_finite(&v[row0], B) || !all_finite(&logp[row0], B)) {
          diverged("the policy or value network produced a non-finite output");
          break;
        }
        env.step(&actions[row0], obs.data(), final_obs.data(), step_reward.data(),
                 terminated.data(), truncated.data());
        result.steps += B;
        if (progress) progress->steps.store(result.steps);
        // V of the true final state of envs that just ended (their obs is a new episode's).
        ended.clear();
        for (int i = 0; i < B; ++i) {
          r[row0 + i] = step_reward[i];
          term[row0 + i] = terminated[i] ? 1.f : 0.f;
          reset[row0 + i] = (terminated[i] || truncated[i]) ? 1.f : 0.f;
          ep_return[i] += step_reward[i];
          if (terminated[i] || truncated[i]) {
            ended.push_back(i);
            result.episode_returns.push_back(ep_return[i]);
            result.episode_end_steps.push_back(result.steps);
            ep_return[i] = 0.f;
          }
        }
        if (!ended.empty()) {
          finals.clear();
          for (int i : ended)
            finals.append(final_obs.data() + std::size_t(i) * size * obs_bytes, 1);
          net.forward(finals.view(nullptr), static_cast<int>(ended.size()), nullptr, nullptr,
                      ended_v.data(), nullptr);
          for (std::size_t k = 0; k < ended.size(); ++k) v_next[row0 + ended[k]] = ended_v[k];
        }
        if (t > 0)  // the others of step t-1 bootstrap from this step's V
          for (int i = 0; i < B; ++i)
            if (!reset[row0 - B + i]) v_next[row0 - B + i] = v[row0 + i];
      }
      if (result.status != Status::kOk) break;
      // V(s_T) for the last step.
      store.append(obs.data(), B);
      {
        const int64_t row_last = int64_t(T - 1) * B;
        net.forward(store.view(&iota[batch]), B, nullptr, nullptr, v_last.data(), nullptr);
        for (int i = 0; i < B; ++i)
          if (!reset[row_last + i]) v_next[row_last + i] = v_last[i];
      }

      // A checkpoint: the state before the learning phase, its rollout (filled below).
      Checkpoint* cp = nullptr;
      if (hooks && next_checkpoint < hooks->checkpoint_updates.size() &&
          hooks->checkpoint_updates[next_checkpoint] == u) {
        ++next_checkpoint;
        cp = &result.checkpoints.emplace_back();
        const std::size_t np = net.num_parameters();
        *cp = {u, prog, lr,
               std::vector<float>(net.parameters(), net.parameters() + np), {},
               std::vector<float>(net.optimizer().first_moment(),
                                  net.optimizer().first_moment() + np),
               std::vector<float>(net.optimizer().second_moment(),
                                  net.optimizer().second_moment() + np),
               net.optimizer().count(), store.dense(), r, term, reset, v, v_next, logp,
               entropy, {}, {}, actions, {}};
      }

      // Targets from the program.
      rule.scan({r.data(), term.data(), reset.data(), v.data(), v_next.data(), logp.data(),
                 entropy.data(), T, B},
                prog, adv.data(), vtarget.data());
      rule.post(adv.data(), vtarget.data(), v.data(), r.data(), batch, prog);
      if (!all_finite(adv.data(), batch) || !all_finite(vtarget.data(), batch)) {
        diverged("the program's advantages or value targets are not finite");
        break;
      }

      // E epochs of M shuffled minibatches.
      StatSums sums;
      for (int e = 0; e < cfg.update_epochs && result.status == Status::kOk; ++e) {
        for (int64_t i = 0; i < batch; ++i) perm[i] = i;
        for (int64_t i = batch - 1; i > 0; --i) std::swap(perm[i], perm[rng() % uint64_t(i + 1)]);
        if (cp) cp->perms.insert(cp->perms.end(), perm.begin(), perm.end());
        for (int m = 0; m < cfg.num_minibatches; ++m) {
          const int64_t* rows = &perm[int64_t(m) * n];
          gather(actions.data(), rows, n, mb_actions.data());
          gather(logp.data(), rows, n, mb_logp_old.data());
          gather(adv.data(), rows, n, mb_adv.data());
          gather(v.data(), rows, n, mb_v_old.data());
          gather(vtarget.data(), rows, n, mb_vtarget.data());
          const Observations mb_obs = store.view(rows);
          net.forward(mb_obs, n, mb_actions.data(), mb_logp.data(), mb_v.data(), mb_ent.data());
          rule.objective({mb_logp.data(), mb_logp_old.data(), mb_adv.data(), mb_v.data(),
                          mb_v_old.data(), mb_vtarget.data(), mb_ent.data(), n},
                         prog, {loss.data(), d_logp.data(), d_v.data(), d_ent.data()});
          if (!all_finite(loss.data(), n) || !all_finite(d_logp.data(), n) ||
              !all_finite(d_v.data(), n) || !all_finite(d_ent.data(), n)) {
            diverged("the program's loss or its derivatives are not finite");
            break;
          }
          const float inv_n = 1.f / static_cast<float>(n);  // the loss is the minibatch mean
          for (int i = 0; i < n; ++i) {
            const float log_ratio = mb_logp[i] - mb_logp_old[i];
            sums.entropy += mb_ent[i];
            sums.loss += loss[i];
            sums.kl += std::expm1(log_ratio) - log_ratio;
            sums.d[0] += d_logp[i];
            sums.d2[0] += double(d_logp[i]) * d_logp[i];
            sums.d[1] += d_v[i];
            sums.d2[1] += double(d_v[i]) * d_v[i];
            sums.d[2] += d_ent[i];
            sums.d2[2] += double(d_ent[i]) * d_ent[i];
            d_logp[i] *= inv_n;
            d_v[i] *= inv_n;
            d_ent[i] *= inv_n;
          }
          net.backward(mb_obs, n, mb_actions.data(), d_logp.data(), d_v.data(), d_ent.data());
          if (!std::isfinite(net.apply_gradients(lr, cfg.max_grad_norm))) {
            diverged("the gradient norm is not finite");
            break;
          }
        }
      }
      if (result.status != Status::kOk) break;
      sums.n = double(cfg.update_epochs) * cfg.num_minibatches * n;
      sums.write(result.update_stats);
      if (cp) {
        cp->adv = adv;
        cp->vtarget = vtarget;
        cp->params_after.assign(net.parameters(), net.parameters() + net.num_parameters());
        if (hooks->stop_after_checkpoints && next_checkpoint == hooks->checkpoint_updates.size())
          break;
      }
    }
  } catch (const std::exception& e) {
    result.status = Status::kError;
    result.message = e.what();
  }
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace evozero::trainer
