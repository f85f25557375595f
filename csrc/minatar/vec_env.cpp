#include "minatar/vec_env.hpp"

#include "minatar/asterix.hpp"
#include "minatar/breakout.hpp"
#include "minatar/freeway.hpp"
#include "minatar/seaquest.hpp"
#include "minatar/space_invaders.hpp"
#include "minatar/vec_env_impl.hpp"

namespace evozero::minatar {

namespace {

template <class Game>
std::unique_ptr<VecEnv> make(int n, const EnvOptions& o) {
  return std::make_unique<GameVecEnv<Game>>(n, o);
}

struct Entry {
  const char* name;
  std::unique_ptr<VecEnv> (*factory)(int, const EnvOptions&);
};

// The single list of native games.
const Entry kGames[] = {
    {Asterix::kName, make<Asterix>},
    {Breakout::kName, make<Breakout>},
    {Freeway::kName, make<Freeway>},
    {Seaquest::kName, make<Seaquest>},
    {SpaceInvaders::kName, make<SpaceInvaders>},
};

}  // namespace

int64_t active_cells(const uint8_t* obs, int num_envs, int obs_size, int64_t* indptr,
                     int32_t* indices) {
  int64_t nnz = 0;
  indptr[0] = 0;
  for (int i = 0; i < num_envs; ++i) {
    const uint8_t* o = obs + static_cast<size_t>(i) * obs_size;
    for (int j = 0; j < obs_size; ++j)
      if (o[j]) indices[nnz++] = j;
    indptr[i + 1] = nnz;
  }
  return nnz;
}

const std::vector<std::string>& game_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Entry& e : kGames) v.emplace_back(e.name);
    return v;
  }();
  return names;
}

std::unique_ptr<VecEnv> make_vec_env(const std::string& game, int num_envs,
                                     const EnvOptions& options) {
  if (num_envs < 1)
    throw std::invalid_argument("num_envs must be at least 1, got " + std::to_string(num_envs));
  for (const Entry& e : kGames)
    if (game == e.name) return e.factory(num_envs, options);
  std::string valid;
  for (const std::string& n : game_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown game '" + game + "'; valid games: " + valid);
}

}  // namespace evozero::minatar
