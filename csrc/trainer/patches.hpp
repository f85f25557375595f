// The unique 3x3 input patches of a batch of MinAtar observations: the conv
// network's index of its input (conv.hpp), built once per batch for both the
// actor and the critic (actor_critic.hpp).
//
// A batch of n samples of 10x10xC bit planes (cell (y, x, c) is input
// (y * 10 + x) * C + c) has, at each of the 8x8 positions of a valid 3x3
// convolution, a patch of 3x3xC inputs. A position is "active" in a sample when
// its patch holds a non-zero input. The index numbers the batch's distinct
// (position, patch) pairs, "patches" for short: MinAtar's frames repeat most
// patches across a batch (bricks, walls, empty lanes), so there are far fewer
// patches than (sample, active position) pairs, "pairs": on 1024-sample batches
// under random play, 2% of the pairs on breakout, 15-43% on the other games.
// Two patches are equal when their non-zero inputs are: the same channels at the
// same cells, and for dense input the same values, bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "trainer/kernels.hpp"
#include "trainer/network.hpp"

namespace evozero::trainer {

class PatchIndex {
 public:
  static constexpr int kGrid = 10;                         // MinAtar's 10x10 grid
  static constexpr int kKernel = 3;
  static constexpr int kTaps = kKernel * kKernel;          // kernel offsets ky * 3 + kx
  static constexpr int kOutGrid = kGrid - kKernel + 1;     // 8: valid convolution
  static constexpr int kPositions = kOutGrid * kOutGrid;   // 64, position oy * 8 + ox

  // in = 100 * C inputs per sample, 1 <= C <= 64 (one bit per channel).
  explicit PatchIndex(int in);

  // Indexes the n samples of x (sparse or dense; dense rows with stride in).
  // Patches are numbered position by position, each position's in order of first
  // appearance; a sample's pairs are listed in position order.
  void build(const FirstLayerInput& x, int n);
  // Lists the samples holding each patch (by_patch()), for the backward pass; after
  // build().
  void transpose();

  int samples() const { return n_; }
  int patches() const { return int(patch_starts_[kPositions]); }
  // Position q's patches are numbered first(q) .. first(q + 1) - 1.
  int64_t first(int q) const { return patch_starts_[q]; }
  // Sample i holds patches incidence().indices[indptr[i] .. indptr[i + 1]), one
  // per active position: the (samples x patches) binary matrix, by row.
  kernels::SparseRows incidence() const {
    return {pair_starts_.data(), pair_patches_.data(), nullptr};
  }
  // The same matrix by column: the samples holding each patch (after transpose()).
  kernels::SparseColumns by_patch() const { return {patch_pairs_.data(), pair_samples_.data()}; }
  // The patches' inputs; dense values are read from x's rows (the batch of build()).
  kernels::ConvPatches inputs(const FirstLayerInput& x);

 private:
  bool same_patch(int32_t k, int q, const uint64_t* channels, const float* values,
                  const float* dense) const;
  // the offset of position q's top-left input in a row of the batch
  int corner(int q) const { return ((q / kOutGrid) * kGrid + q % kOutGrid) * channels_; }

  int in_, channels_, n_ = 0;
  uint64_t patch_of_cell_[kGrid * kGrid] = {};     // the positions each grid cell reaches
  uint64_t channels_of_cell_[kGrid * kGrid] = {};  // one sample's non-zero channels, by cell
  std::vector<int16_t> yx_of_cell_;                // input index -> grid cell (no division)
  std::vector<int64_t> pair_starts_;               // (n + 1)
  std::vector<int32_t> pair_patches_;              // per pair: its patch
  int64_t patch_starts_[kPositions + 1] = {};
  std::vector<uint64_t> patch_channels_;    // (patches, 9): ConvPatches::channels
  std::vector<int32_t> patch_samples_;      // the first sample holding each patch
  std::vector<const float*> patch_values_;  // ConvPatches::values (dense input)
  std::vector<int64_t> patch_pairs_;        // transpose(): (patches + 1) starts
  std::vector<int32_t> pair_samples_;       // ... and the samples, patch by patch
  // build()'s workspace: an open-addressing table of patch numbers (-1: free), and
  // the patches in order of first appearance, before numbering by position
  std::vector<int32_t> table_, renumber_;
  std::vector<uint64_t> found_channels_;
  std::vector<int32_t> found_samples_;
  std::vector<int8_t> found_positions_;
  std::vector<uint64_t> found_hashes_;
};

}  // namespace evozero::trainer
