#include "trainer/patches.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace evozero::trainer {
namespace {

// Calls f(cell, value) for every non-zero input of sample i: the active cells
// (value 1) of a sparse row, or the non-zero entries of a dense one.
template <class F>
inline void for_each_input(const FirstLayerInput& x, int in, int i, F&& f) {
  if (x.is_sparse()) {
    const int64_t b = x.sparse.rows ? x.sparse.rows[i] : i;
    for (int64_t p = x.sparse.indptr[b]; p < x.sparse.indptr[b + 1]; ++p)
      f(x.sparse.indices[p], 1.0f);
  } else {
    const float* row = x.dense + std::size_t(i) * in;
    for (int j = 0; j < in; ++j)
      if (row[j] != 0.0f) f(j, row[j]);
  }
}

// The offset of kernel offset t's cell from the patch's top-left cell, in cells.
constexpr int cell_of_tap(int t) { return (t / 3) * PatchIndex::kGrid + t % 3; }

// A patch's 64-bit hash: its channel masks times distinct odd constants, summed
// (independent multiplies, not a chain), then mixed; for dense input, mixed with
// the bits of its non-zero values. The table takes its top bits.
uint64_t patch_hash(int q, const uint64_t* channels, const float* values, int C) {
  constexpr uint64_t kOdd[PatchIndex::kTaps + 1] = {
      0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 0xD6E8FEB86659FD93ull,
      0xA0761D6478BD642Full, 0xE7037ED1A0B428DBull, 0x8EBC6AF09C88C6E3ull, 0x589965CC75374CC3ull,
      0x1D8E4E27C47D124Full, 0xC2B2AE3D27D4EB4Full};
  uint64_t h = uint64_t(q) * kOdd[PatchIndex::kTaps];
  for (int t = 0; t < PatchIndex::kTaps; ++t) h += (channels[t] ^ uint64_t(t)) * kOdd[t];
  if (values)
    for (int t = 0; t < PatchIndex::kTaps; ++t)
      for (uint64_t m = channels[t]; m; m &= m - 1) {
        uint32_t bits;
        std::memcpy(&bits, values + cell_of_tap(t) * C + __builtin_ctzll(m), sizeof(bits));
        h = (h ^ bits) * kOdd[0];
      }
  h ^= h >> 32;
  return h * kOdd[0];
}

}  // namespace

PatchIndex::PatchIndex(int in) : in_(in), channels_(in / (kGrid * kGrid)) {
  if (in <= 0 || in % (kGrid * kGrid) || channels_ > 64)
    throw std::invalid_argument("PatchIndex: 100 * C inputs with 1 <= C <= 64, got " +
                                std::to_string(in));
  yx_of_cell_.resize(std::size_t(in));
  for (int cell = 0; cell < in; ++cell) yx_of_cell_[cell] = int16_t(cell / channels_);
  for (int y = 0; y < kGrid; ++y)  // cell (y, x) is in the patches of oy in y-2..y, ox in x-2..x
    for (int x = 0; x < kGrid; ++x)
      for (int oy = std::max(0, y - 2); oy <= std::min(kOutGrid - 1, y); ++oy)
        for (int ox = std::max(0, x - 2); ox <= std::min(kOutGrid - 1, x); ++ox)
          patch_of_cell_[y * kGrid + x] |= uint64_t(1) << (oy * kOutGrid + ox);
}

inline bool PatchIndex::same_patch(int32_t k, int q, const uint64_t* channels,
                                   const float* values, const float* dense) const {
  if (found_positions_[k] != q) return false;
  const uint64_t* other = found_channels_.data() + std::size_t(k) * kTaps;
  uint64_t differ = 0;
  for (int t = 0; t < kTaps; ++t) differ |= channels[t] ^ other[t];
  if (differ) return false;
  if (!values) return true;
  const float* theirs = dense + std::size_t(found_samples_[k]) * in_ + corner(q);
  for (int t = 0; t < kTaps; ++t)
    for (uint64_t m = channels[t]; m; m &= m - 1) {
      const int j = cell_of_tap(t) * channels_ + __builtin_ctzll(m);
      if (std::memcmp(values + j, theirs + j, sizeof(float))) return false;
    }
  return true;
}

void PatchIndex::build(const FirstLayerInput& x, int n) {
  if (int64_t(n) * kPositions > INT32_MAX)  // patch and pair numbers are int32
    throw std::invalid_argument("PatchIndex: at most " + std::to_string(INT32_MAX / kPositions) +
                                " samples per batch, got " + std::to_string(n));
  n_ = n;
  pair_starts_.resize(std::size_t(n) + 1);
  pair_starts_[0] = 0;
  pair_patches_.clear();
  // At least twice as many slots as patches (short probe runs), grown as they are
  // found (a table sized for the pairs would not stay in L1/L2), from the size the
  // last batch needed.
  int bits = 10;
  while ((std::size_t(1) << bits) < 2 * found_positions_.size()) ++bits;
  table_.assign(std::size_t(1) << bits, -1);
  found_channels_.clear();
  found_samples_.clear();
  found_positions_.clear();
  found_hashes_.clear();
  for (int i = 0; i < n; ++i) {
    // the sample's channels by cell and its active positions, in one pass over its
    // inputs (the pass that clears them below finds them in cache)
    uint64_t active = 0;
    for_each_input(x, in_, i, [&](int cell, float) {
      const int yx = yx_of_cell_[cell];
      channels_of_cell_[yx] |= uint64_t(1) << (cell - yx * channels_);
      active |= patch_of_cell_[yx];
    });
    const float* row = x.is_sparse() ? nullptr : x.dense + std::size_t(i) * in_;
    for (uint64_t m = active; m; m &= m - 1) {
      const int q = __builtin_ctzll(m);
      const uint64_t* top_left = channels_of_cell_ + (q / kOutGrid) * kGrid + q % kOutGrid;
      uint64_t channels[kTaps];
      for (int t = 0; t < kTaps; ++t) channels[t] = top_left[cell_of_tap(t)];
      const float* values = row ? row + corner(q) : nullptr;
      const uint64_t hash = patch_hash(q, channels, values, channels_);
      const std::size_t last_slot = table_.size() - 1;
      std::size_t slot = hash >> (64 - bits);
      int32_t k;
      while ((k = table_[slot]) >= 0 && !same_patch(k, q, channels, values, x.dense))
        slot = (slot + 1) & last_slot;
      if (k < 0) {  // a new patch
        k = table_[slot] = int32_t(found_positions_.size());
        found_channels_.insert(found_channels_.end(), channels, channels + kTaps);
        found_samples_.push_back(i);
        found_positions_.push_back(int8_t(q));
        found_hashes_.push_back(hash);
        if (found_hashes_.size() * 2 > table_.size()) {  // double the table, reinsert
          table_.assign(table_.size() * 2, -1);
          ++bits;
          for (std::size_t j = 0; j < found_hashes_.size(); ++j) {
            std::size_t at = found_hashes_[j] >> (64 - bits);
            while (table_[at] >= 0) at = (at + 1) & (table_.size() - 1);
            table_[at] = int32_t(j);
          }
        }
      }
      pair_patches_.push_back(k);
    }
    pair_starts_[i + 1] = int64_t(pair_patches_.size());
    for_each_input(x, in_, i, [&](int cell, float) { channels_of_cell_[yx_of_cell_[cell]] = 0; });
  }
  // Number the patches position by position (each position's in order of appearance).
  const std::size_t count = found_positions_.size();
  int64_t next[kPositions] = {};
  for (int8_t q : found_positions_) ++next[q];
  for (int q = 0; q < kPositions; ++q) {
    patch_starts_[q + 1] = patch_starts_[q] + next[q];
    next[q] = patch_starts_[q];
  }
  renumber_.resize(count);
  patch_channels_.resize(count * kTaps);
  patch_samples_.resize(count);
  for (std::size_t k = 0; k < count; ++k) {
    const int64_t to = next[found_positions_[k]]++;
    renumber_[k] = int32_t(to);
    std::copy_n(found_channels_.data() + k * kTaps, kTaps, patch_channels_.data() + to * kTaps);
    patch_samples_[to] = found_samples_[k];
  }
  for (int32_t& k : pair_patches_) k = renumber_[k];
}

void PatchIndex::transpose() {
  patch_pairs_.resize(std::size_t(patches()) + 1);
  pair_samples_.resize(pair_patches_.size());
  kernels::transpose(n_, incidence(), patches(), patch_pairs_.data(), pair_samples_.data());
}

kernels::ConvPatches PatchIndex::inputs(const FirstLayerInput& x) {
  if (x.is_sparse()) return {patch_channels_.data(), nullptr, channels_};
  patch_values_.resize(std::size_t(patches()));
  for (int q = 0; q < kPositions; ++q)
    for (int64_t k = patch_starts_[q]; k < patch_starts_[q + 1]; ++k)
      patch_values_[k] = x.dense + std::size_t(patch_samples_[k]) * in_ + corner(q);
  return {patch_channels_.data(), patch_values_.data(), channels_};
}

}  // namespace evozero::trainer
