// The 64-bit Mersenne Twister (MT19937-64, Matsumoto & Nishimura 2000) as
// std::mt19937_64 defines it: the same seeding and the same output sequence, so the
// population trainer draws exactly what trainer.cpp draws from its std::mt19937_64.
// EVOZERO_HD: fixed-size state, runs in CUDA code too.
#pragma once

#include <cstdint>

#include "common/hd.hpp"

namespace evozero::population {

class Mt64 {
 public:
  static constexpr int kN = 312, kM = 156;

  EVOZERO_HD explicit Mt64(uint64_t seed = 5489u) { seed_with(seed); }

  EVOZERO_HD void seed_with(uint64_t seed) {
    mt_[0] = seed;
    for (int i = 1; i < kN; ++i)
      mt_[i] = 6364136223846793005ull * (mt_[i - 1] ^ (mt_[i - 1] >> 62)) + uint64_t(i);
    index_ = kN;
  }

  EVOZERO_HD uint64_t operator()() {
    if (index_ >= kN) twist();
    uint64_t x = mt_[index_++];
    x ^= (x >> 29) & 0x5555555555555555ull;
    x ^= (x << 17) & 0x71d67fffeda60000ull;
    x ^= (x << 37) & 0xfff7eee000000000ull;
    x ^= x >> 43;
    return x;
  }

 private:
  EVOZERO_HD void twist() {
    constexpr uint64_t upper = 0xffffffff80000000ull, lower = 0x7fffffffull;
    constexpr uint64_t matrix = 0xb5026f5aa96619e9ull;
    for (int i = 0; i < kN; ++i) {
      const uint64_t y = (mt_[i] & upper) | (mt_[(i + 1) % kN] & lower);
      mt_[i] = mt_[(i + kM) % kN] ^ (y >> 1) ^ ((y & 1) ? matrix : 0);
    }
    index_ = 0;
  }

  uint64_t mt_[kN];
  int index_;
};

}  // namespace evozero::population
