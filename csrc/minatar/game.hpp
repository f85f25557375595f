// What every native MinAtar game provides, and helpers they share.
//
// A game is a plain struct (one env, no batching) with:
//   static constexpr const char* kName;            // "breakout", ...
//   static constexpr int kChannels;                // C of the 10x10xC observation
//   static constexpr std::array<const char*, C> kChannelNames;
//   static constexpr std::array<int, K> kMinimalActions;
//   explicit Game(bool ramping);
// Every member a step uses is EVOZERO_HD (common/hd.hpp), state is fixed-size and
// trivially copyable, so the same code steps envs on the CPU and in CUDA kernels.
//   void reset(RandomState& rng);                  // draws exactly as the reference reset()
//   float act(int action, RandomState& rng);       // action in 0..5, after sticky actions
//   bool terminal() const;
//   void render(uint8_t* obs) const;               // set active cells of a zeroed 10x10xC buffer
//
// The reference is minatar==1.0.15; each game's header names the quirks it copies.
#pragma once
#include <array>
#include <cstdint>

#include "common/hd.hpp"
#include "minatar/random_state.hpp"

namespace evozero::minatar {

constexpr int kGridSize = 10;
constexpr int kNumActions = 6;

// Reference action letters: index into ['n','l','u','r','d','f'].
enum Action : int { kNoop = 0, kLeft = 1, kUp = 2, kRight = 3, kDown = 4, kFire = 5 };

// Observation layout is (row y, column x, channel c), as the reference state().
EVOZERO_HD inline void set_cell(uint8_t* obs, int channels, int y, int x, int c) {
  obs[(y * kGridSize + x) * channels + c] = 1;
}

}  // namespace evozero::minatar
