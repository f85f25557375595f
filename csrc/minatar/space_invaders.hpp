// Space invaders, as minatar==1.0.15 environments/space_invaders.py.
// Quirks copied:
// - the swarm moves with np.roll: stepping down from row 9 wraps those aliens
//   into row 0 (the game ends that step, so the terminal observation shows
//   them at the top);
// - bullets pass through aliens that move into the bullet's previous cell;
//   only cells holding both after the moves are hits;
// - the shooting alien is the lowest one in the column nearest the cannon,
//   ties broken towards the left (a stable sort by distance);
// - the move timer is min(aliens left, move interval), set when it runs out
//   and not reset by a new wave; a cleared wave refills at the end of the step;
// - no random draws: only sticky actions use the stream.
// Each row of a 10x10 map is a 10-bit mask, bit x for column x.
#pragma once
#include <cstdint>

#include "common/hd.hpp"
#include "minatar/game.hpp"

namespace evozero::minatar {

struct SpaceInvaders {
  static constexpr const char* kName = "space_invaders";
  static constexpr int kChannels = 6;
  static constexpr std::array<const char*, kChannels> kChannelNames{
      "cannon", "alien", "alien_left", "alien_right", "friendly_bullet", "enemy_bullet"};
  static constexpr std::array<int, 4> kMinimalActions{kNoop, kLeft, kRight, kFire};

  EVOZERO_HD explicit SpaceInvaders(bool ramping) : ramping_(ramping) {}

  EVOZERO_HD void reset(RandomState& /*rng: no draws*/) {
    pos_ = 5;
    for (int y = 0; y < kGridSize; ++y) f_bullets_[y] = e_bullets_[y] = aliens_[y] = 0;
    fill_wave();
    alien_dir_ = -1;
    enemy_move_interval_ = kEnemyMoveInterval;
    alien_move_timer_ = enemy_move_interval_;
    alien_shot_timer_ = kEnemyShotInterval;
    ramp_index_ = 0;
    shot_timer_ = 0;
    done_ = false;
  }

  EVOZERO_HD float act(int a, RandomState& /*rng*/) {
    if (done_) return 0.f;
    const Row cannon = bit(pos_);
    if (a == kFire && shot_timer_ == 0) {
      f_bullets_[9] |= cannon;
      shot_timer_ = kShotCoolDown;
    } else if (a == kLeft) {
      pos_ = hd_max(0, pos_ - 1);
    } else if (a == kRight) {
      pos_ = hd_min(9, pos_ + 1);
    }
    const Row at_cannon = bit(pos_);

    // Friendly bullets rise: row 0 wraps to row 9 and is cleared there.
    for (int y = 0; y < 9; ++y) f_bullets_[y] = f_bullets_[y + 1];
    f_bullets_[9] = 0;
    // Enemy bullets fall: row 9 wraps to row 0 and is cleared there.
    for (int y = 9; y > 0; --y) e_bullets_[y] = e_bullets_[y - 1];
    e_bullets_[0] = 0;
    if (e_bullets_[9] & at_cannon) done_ = true;

    if (aliens_[9] & at_cannon) done_ = true;
    if (alien_move_timer_ == 0) {
      alien_move_timer_ = hd_min(num_aliens_, enemy_move_interval_);
      Row any = 0;
      for (Row row : aliens_) any |= row;
      if (((any & bit(0)) && alien_dir_ < 0) || ((any & bit(9)) && alien_dir_ > 0)) {
        alien_dir_ = -alien_dir_;
        if (aliens_[9]) done_ = true;
        const Row bottom = aliens_[9];  // np.roll: the bottom row wraps to the top
        for (int y = 9; y > 0; --y) aliens_[y] = aliens_[y - 1];
        aliens_[0] = bottom;
      } else {
        // np.roll along columns; the edge test above means nothing ever wraps.
        for (Row& row : aliens_)
          row = alien_dir_ < 0 ? static_cast<Row>((row >> 1) | ((row & 1) << 9))
                               : static_cast<Row>(((row << 1) & kFullRow) | (row >> 9));
      }
      if (aliens_[9] & at_cannon) done_ = true;
    }
    if (alien_shot_timer_ == 0) {
      alien_shot_timer_ = kEnemyShotInterval;
      shoot();
    }

    int r = 0;
    for (int y = 0; y < kGridSize; ++y) {
      const Row hit = aliens_[y] & f_bullets_[y];
      if (!hit) continue;
      r += popcount(hit);
      aliens_[y] &= static_cast<Row>(~hit);
      f_bullets_[y] &= static_cast<Row>(~hit);
    }

    if (shot_timer_ > 0) --shot_timer_;
    --alien_move_timer_;  // >= 0: it is set to at least 1 and counted down once per step
    --alien_shot_timer_;
    num_aliens_ -= r;
    if (num_aliens_ == 0) {
      if (enemy_move_interval_ > 6 && ramping_) {
        --enemy_move_interval_;
        ++ramp_index_;
      }
      fill_wave();
    }
    return static_cast<float>(r);
  }

  EVOZERO_HD bool terminal() const { return done_; }

  EVOZERO_HD void render(uint8_t* obs) const {
    set_cell(obs, kChannels, 9, pos_, 0);
    const int dir_channel = alien_dir_ < 0 ? 2 : 3;
    for (int y = 0; y < kGridSize; ++y) {
      for (unsigned row = aliens_[y]; row; row &= row - 1) {
        const int x = hd_ctz(row);
        set_cell(obs, kChannels, y, x, 1);
        set_cell(obs, kChannels, y, x, dir_channel);
      }
      for (unsigned row = f_bullets_[y]; row; row &= row - 1)
        set_cell(obs, kChannels, y, hd_ctz(row), 4);
      for (unsigned row = e_bullets_[y]; row; row &= row - 1)
        set_cell(obs, kChannels, y, hd_ctz(row), 5);
    }
  }

  // Probes for tests and debugging.
  EVOZERO_HD int ramp_index() const { return ramp_index_; }

 private:
  using Row = uint16_t;
  static constexpr int kShotCoolDown = 5;
  static constexpr int kEnemyMoveInterval = 12;
  static constexpr int kEnemyShotInterval = 10;
  static constexpr Row kFullRow = 0x3ff;

  EVOZERO_HD static constexpr Row bit(int x) { return static_cast<Row>(1u << x); }

  // Portable builds have no popcount instruction; the builtin's library call
  // is slower than this.
  EVOZERO_HD static int popcount(Row x) {
    unsigned v = x;
    v = v - ((v >> 1) & 0x5555u);
    v = (v & 0x3333u) + ((v >> 2) & 0x3333u);
    v = (v + (v >> 4)) & 0x0f0fu;
    return static_cast<int>((v + (v >> 8)) & 0x1fu);
  }

  EVOZERO_HD void fill_wave() {  // alien_map[0:4, 2:8] = 1, onto an empty map
    for (int y = 0; y < 4; ++y) aliens_[y] = 0xfc;
    num_aliens_ = 24;
  }

  // The lowest alien of the column nearest the cannon (search order pos,
  // pos-1, pos+1, pos-2, ...) fires from its own cell. The swarm is never
  // empty here: a cleared wave was refilled at the end of the last step.
  EVOZERO_HD void shoot() {
    Row any = 0;
    for (Row row : aliens_) any |= row;
    for (int d = 0; d < kGridSize; ++d) {
      for (int x : {pos_ - d, pos_ + d}) {
        if (x < 0 || x > 9 || !(any & bit(x))) continue;
        int y = 9;
        while (!(aliens_[y] & bit(x))) --y;
        e_bullets_[y] |= bit(x);
        return;
      }
    }
  }

  bool ramping_;
  int pos_ = 5;
  Row f_bullets_[kGridSize] = {}, e_bullets_[kGridSize] = {}, aliens_[kGridSize] = {};
  int num_aliens_ = 0;  // np.count_nonzero(alien_map), kept up to date
  int alien_dir_ = -1;
  int enemy_move_interval_ = kEnemyMoveInterval;
  int alien_move_timer_ = kEnemyMoveInterval, alien_shot_timer_ = kEnemyShotInterval;
  int ramp_index_ = 0, shot_timer_ = 0;
  bool done_ = false;
};

}  // namespace evozero::minatar
