// numpy's legacy RandomState (MT19937), reproduced bit for bit.
//
// The reference MinAtar draws every random number from one RandomState per
// environment, so matching its stream exactly is what makes whole
// trajectories comparable with the reference package.
#pragma once
#include <cstdint>

#include "common/hd.hpp"

namespace evozero {

class RandomState {
 public:
  EVOZERO_HD explicit RandomState(uint32_t seed = 5489u) { seed_with(seed); }

  // numpy's mt19937_seed (init_genrand): the legacy path for an int seed.
  EVOZERO_HD void seed_with(uint32_t seed) {
    mt_[0] = seed;
    for (int i = 1; i < kN; ++i)
      mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
    index_ = kN;
  }

  EVOZERO_HD uint32_t next_u32() {
    if (index_ >= kN) twist();
    uint32_t y = mt_[index_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
  }

  // Asks the cache for what the next draw reads (the position, then the word it points to).
  void prefetch() const {
    __builtin_prefetch(&index_);
    __builtin_prefetch(&mt_[index_ < kN ? index_ : 0]);
  }

  // RandomState.rand(): 53-bit double from two draws.
  EVOZERO_HD double rand() {
    const uint32_t a = next_u32() >> 5, b = next_u32() >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
  }

  // RandomState.randint(lo, hi), hi exclusive: masked rejection on 32-bit
  // draws; no draw at all when the range holds one value.
  EVOZERO_HD int64_t randint(int64_t lo, int64_t hi) {
    const uint64_t range = static_cast<uint64_t>(hi - lo - 1);
    if (range == 0) return lo;
    uint32_t mask = static_cast<uint32_t>(range);
    mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4; mask |= mask >> 8; mask |= mask >> 16;
    uint32_t v;
    while ((v = next_u32() & mask) > range) {}
    return lo + static_cast<int64_t>(v);
  }

 private:
  static constexpr int kN = 624, kM = 397;

  // Three loops instead of indices mod kN (as numpy's mt19937_gen), so that they vectorize.
  EVOZERO_HD void twist() {
    auto mix = [](uint32_t hi, uint32_t lo, uint32_t far) {
      const uint32_t y = (hi & 0x80000000u) | (lo & 0x7fffffffu);
      return far ^ (y >> 1) ^ (-(y & 1u) & 0x9908b0dfu);
    };
    int i = 0;
    for (; i < kN - kM; ++i) mt_[i] = mix(mt_[i], mt_[i + 1], mt_[i + kM]);
    for (; i < kN - 1; ++i) mt_[i] = mix(mt_[i], mt_[i + 1], mt_[i + kM - kN]);
    mt_[kN - 1] = mix(mt_[kN - 1], mt_[0], mt_[kM - 1]);
    index_ = 0;
  }

  uint32_t mt_[kN];
  int index_ = kN;
};

}  // namespace evozero
