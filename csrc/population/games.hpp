// The games by GameId (spec.hpp), for code templated on the game type.
#pragma once

#include "minatar/asterix.hpp"
#include "minatar/breakout.hpp"
#include "minatar/freeway.hpp"
#include "minatar/seaquest.hpp"
#include "minatar/space_invaders.hpp"
#include "population/spec.hpp"

namespace evozero::population {

template <class T>
struct GameTag {
  using type = T;
};

// Calls f(GameTag<Game>{}) for the game of id; returns what it returns.
template <class F>
auto with_game(int32_t id, F&& f) {
  switch (id) {
    case kAsterix: return f(GameTag<minatar::Asterix>{});
    case kBreakout: return f(GameTag<minatar::Breakout>{});
    case kFreeway: return f(GameTag<minatar::Freeway>{});
    case kSeaquest: return f(GameTag<minatar::Seaquest>{});
    default: return f(GameTag<minatar::SpaceInvaders>{});
  }
}

}  // namespace evozero::population
