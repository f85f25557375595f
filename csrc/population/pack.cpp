#pragma GCC optimize("fp-contract=off")  // the block code follows the CPU kernels' rounding

#include "population/pack.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

#include "minatar/vec_env.hpp"
#include "population/agent.hpp"
#include "population/block.hpp"
#include "population/games.hpp"
#include "population/thread_block.hpp"
#include "trainer/actor_critic.hpp"
#include "trainer/dispatch.hpp"
#include "trainer/kernels.hpp"
#include "trainer/mlp.hpp"
#include "trainer/network.hpp"

namespace evozero::population {

namespace {

// Appends one program (its three components and their plans) in flat form.
void flatten(const interp::Interpreter& it, std::vector<int32_t>& ints, std::vector<float>& floats) {
  const std::size_t base = ints.size(), fbase = floats.size();
  const interp::CompiledProgram& prog = it.program();
  const interp::Component* comps[3] = {&prog.scan, &prog.post, &prog.objective};
  ints.resize(base + kFlatHeaderInts, 0);
  FlatComponent head[3];
  auto push = [&](const int32_t* p, std::size_t n) {
    const int32_t off = int32_t(ints.size() - base);
    ints.insert(ints.end(), p, p + n);
    return off;
  };
  for (int k = 0; k < 3; ++k) {
    const interp::Component& c = *comps[k];
    const interp::Interpreter::Plan& p = it.plan(k);
    FlatComponent& h = head[k];
    h = FlatComponent{};
    h.kind = k;
    h.num_regs = c.num_regs();
    h.ncode = int32_t(c.code.size());
    h.num_slots = p.num_slots;
    h.reads_ratio = p.reads_ratio;
    h.num_carries = c.num_carries();
    h.ni = interp::kNumInputs[k];
    h.first_const = c.first_const();
    h.progress_reg = interp::kProgressSlot[k];
    std::vector<int32_t> tmp;
    for (std::size_t i = 0; i < c.code.size(); ++i) {
      const interp::Instr& in = c.code[i];
      const FlatInstr f{in.op, in.dst, {in.src[0], in.src[1], in.src[2]}, p.mode[i],
                        interp::kOps[in.op].arity, interp::kOps[in.op].batch ? 1 : 0};
      const auto* w = reinterpret_cast<const int32_t*>(&f);
      tmp.insert(tmp.end(), w, w + sizeof(FlatInstr) / sizeof(int32_t));
    }
    h.off_instr = push(tmp.data(), tmp.size());
    tmp.clear();
    for (int r = 0; r < c.num_regs(); ++r) {
      const FlatReg g{p.scalar[r], p.slot[r], p.tmask[r], {p.tslot[r][0], p.tslot[r][1], p.tslot[r][2]}};
      const auto* w = reinterpret_cast<const int32_t*>(&g);
      tmp.insert(tmp.end(), w, w + sizeof(FlatReg) / sizeof(int32_t));
    }
    h.off_regs = push(tmp.data(), tmp.size());
    h.off_order = push(p.order.data(), p.order.size()), h.n_order = int32_t(p.order.size());
    h.off_step = push(p.step.data(), p.step.size()), h.n_step = int32_t(p.step.size());
    h.off_after = push(p.after.data(), p.after.size()), h.n_after = int32_t(p.after.size());
    h.off_outputs = push(c.outputs.data(), c.outputs.size());
    h.n_outputs = int32_t(c.outputs.size());
    h.off_carry_init = push(c.carry_init.data(), c.carry_init.size());
    h.off_sval = int32_t(floats.size() - fbase);
    floats.insert(floats.end(), p.sval.begin(), p.sval.end());
  }
  std::memcpy(ints.data() + base, head, sizeof head);
}

}  // namespace

void host_numerics(int32_t& lanes, int32_t& fma) {
#if EVOZERO_MULTIVERSIONING
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    lanes = 16, fma = 1;
  } else if (__builtin_cpu_supports("fma")) {
    lanes = 8, fma = 1;
  } else {
    lanes = 4, fma = 0;
  }
#else
  lanes = 4, fma = 0;
#endif
}

std::size_t Population::arena_bytes(int64_t program) const {
  return with_game(config.game, [&](auto tag) {
    using Game = typename decltype(tag)::type;
    return agent_layout<Game>(config, std::size_t(ws_floats[program])).total;
  });
}

void Results::resize(const PopConfig& c, std::size_t agents) {
  info.assign(agents * kNumInfo, 0);
  episode_returns.assign(agents * std::size_t(c.episode_capacity), 0.f);
  episode_end_steps.assign(agents * std::size_t(c.episode_capacity), 0);
  update_stats.assign(agents * std::size_t(c.updates) * trainer::kNumUpdateStats, 0.f);
  params.assign(agents * std::size_t(c.params), 0.f);
  errors.assign(agents, std::string());
}

Population pack(const std::string& game, int num_envs, const minatar::EnvOptions& env,
                const trainer::TrainConfig& cfg,
                const std::vector<const interp::Interpreter*>& programs,
                const std::vector<int32_t>& agent_program, const std::vector<uint64_t>& seeds,
                int64_t episode_capacity, NumericsChoice numerics) {
  if (trainer::network_kind(cfg.network) != trainer::NetworkKind::kMlp)
    throw std::invalid_argument(
        "train_many supports network 'mlp' only; the conv network runs in train()");
  if (agent_program.size() != seeds.size())
    throw std::invalid_argument("train_many: one program index per seed");
  const auto probe = minatar::make_vec_env(game, 1, env);  // validates the name
  const auto& names = minatar::game_names();
  Population pop;
  PopConfig& c = pop.config;
  c.game = int32_t(std::find(names.begin(), names.end(), game) - names.begin());
  c.B = num_envs, c.T = cfg.num_steps, c.A = probe->num_actions(), c.obs_size = probe->obs_size();
  c.hidden = cfg.hidden, c.H = trainer::padded(cfg.hidden);
  const int64_t batch = int64_t(c.T) * c.B;
  if (num_envs < 1 || batch % cfg.num_minibatches)
    throw std::invalid_argument("num_minibatches must divide num_envs * num_steps");
  if (batch > (int64_t(1) << 30)) throw std::invalid_argument("train_many: rollout too large");
  c.n = int32_t(batch / cfg.num_minibatches);
  c.epochs = cfg.update_epochs, c.minibatches = cfg.num_minibatches;
  c.updates = cfg.total_steps / batch;
  c.lr = cfg.lr, c.adam_eps = cfg.adam_eps, c.max_grad_norm = cfg.max_grad_norm;
  const trainer::AdamConfig adam{cfg.adam_eps};
  c.b1 = adam.b1, c.b2 = adam.b2;
  c.anneal_lr = cfg.anneal_lr;
  c.env = env;
  const std::vector<int> set = probe->action_set();
  for (int a = 0; a < 6; ++a) c.action_set[a] = a < int(set.size()) ? set[a] : 0;
  host_numerics(c.lanes, c.fma);
  if (numerics.lanes) {
    if (numerics.lanes != 4 && numerics.lanes != 8 && numerics.lanes != 16)
      throw std::invalid_argument("train_many: lanes must be 4, 8 or 16");
    c.lanes = numerics.lanes, c.fma = numerics.fma != 0;
  }
  const trainer::Mlp actor(c.obs_size, c.hidden, c.A, 0);
  const trainer::Mlp critic(c.obs_size, c.hidden, 1, actor.size());
  c.actor_size = int64_t(actor.size());
  c.params = int64_t(critic.offset() + critic.size());
  // At most one episode ends per env step.
  c.episode_capacity = episode_capacity > 0 ? std::min(episode_capacity, c.updates * batch)
                                            : c.updates * batch;

  const int64_t steps = c.updates * c.epochs * c.minibatches;
  pop.bias_correction.resize(std::size_t(2 * steps));
  for (int64_t t = 1; t <= steps; ++t) {  // Adam::step's bias corrections
    pop.bias_correction[2 * (t - 1)] = float(1.0 - std::pow(double(c.b1), double(t)));
    pop.bias_correction[2 * (t - 1) + 1] = float(1.0 - std::pow(double(c.b2), double(t)));
  }
  for (const interp::Interpreter* it : programs) {
    pop.program_int_offset.push_back(int64_t(pop.program_ints.size()));
    pop.program_float_offset.push_back(int64_t(pop.program_floats.size()));
    const std::size_t at = pop.program_ints.size();
    flatten(*it, pop.program_ints, pop.program_floats);
    pop.ws_floats.push_back(int64_t(workspace_floats(
        reinterpret_cast<const FlatComponent*>(pop.program_ints.data() + at), std::size_t(batch),
        std::size_t(c.n))));
  }
  pop.agent_program = agent_program;
  pop.agent_seed = seeds;
  pop.params0.resize(seeds.size() * std::size_t(c.params));
  for (std::size_t a = 0; a < seeds.size(); ++a) {
    if (agent_program[a] < 0 || std::size_t(agent_program[a]) >= programs.size())
      throw std::invalid_argument("train_many: a program index is out of range");
    const trainer::ActorCritic net(c.obs_size, c.A, c.hidden, trainer::NetworkKind::kMlp,
                                   splitmix64(seeds[a] ^ 0xac7019c21ull), adam);
    std::copy(net.parameters(), net.parameters() + c.params,
              pop.params0.begin() + std::ptrdiff_t(a * std::size_t(c.params)));
  }
  return pop;
}

Results run_host(const Population& pop, int threads, int block_threads) {
  const std::size_t agents = pop.agent_seed.size();
  const PopConfig& c = pop.config;
  Results res;
  res.resize(c, agents);
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    std::vector<std::max_align_t> arena;
    for (std::size_t a; (a = next++) < agents;) {
      const int32_t prog = pop.agent_program[a];
      arena.assign(pop.arena_bytes(prog) / sizeof(std::max_align_t) + 1, std::max_align_t{});
      const std::size_t cap = std::size_t(c.episode_capacity);
      AgentTask task{&c,
                     pop.agent_seed[a],
                     pop.params0.data() + a * std::size_t(c.params),
                     pop.bias_correction.data(),
                     pop.program_ints.data() + pop.program_int_offset[prog],
                     pop.program_floats.data() + pop.program_float_offset[prog],
                     std::size_t(pop.ws_floats[prog]),
                     reinterpret_cast<char*>(arena.data()),
                     {res.info.data() + a * kNumInfo, res.episode_returns.data() + a * cap,
                      res.episode_end_steps.data() + a * cap,
                      res.update_stats.data() + a * std::size_t(c.updates) * trainer::kNumUpdateStats,
                      res.params.data() + a * std::size_t(c.params)}};
      try {
        with_game(c.game, [&](auto tag) {
          using Game = typename decltype(tag)::type;
          if (block_threads <= 1) {
            run_agent<Game>(HostBlock{}, task);
            return 0;
          }
          Barrier barrier(block_threads);
          std::vector<std::thread> team;
          for (int k = 1; k < block_threads; ++k)
            team.emplace_back(
                [&, k] { run_agent<Game>(ThreadsBlock{k, block_threads, &barrier}, task); });
          run_agent<Game>(ThreadsBlock{0, block_threads, &barrier}, task);
          for (auto& t : team) t.join();
          return 0;
        });
      } catch (const std::exception& e) {
        res.errors[a] = e.what();
        res.info[a * kNumInfo + kInfoStatus] = 2;
      }
    }
  };
  const int n = block_threads > 1 ? 1 : std::max(1, std::min<int>(threads, int(agents)));
  std::vector<std::thread> pool;
  for (int k = 1; k < n; ++k) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return res;
}

const char* reason_message(int reason) {
  switch (reason) {
    case kReasonPolicy: return "the policy or value network produced a non-finite output";
    case kReasonTargets: return "the program's advantages or value targets are not finite";
    case kReasonLoss: return "the program's loss or its derivatives are not finite";
    case kReasonGradNorm: return "the gradient norm is not finite";
    case kReasonEpisodes: return "more episodes than the result buffer holds";
    default: return "";
  }
}

}  // namespace evozero::population
