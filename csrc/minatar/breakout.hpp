// Breakout, as minatar==1.0.15 environments/breakout.py.
// Quirks copied: a brick breaks only if the previous step was not a strike
// (otherwise the ball passes into the brick's cell); rows 1-3 refill when the
// ball reaches row 9 with no bricks left; one randint(2) draw at reset only.
#pragma once

#include "common/hd.hpp"
#include "minatar/game.hpp"

namespace evozero::minatar {

struct Breakout {
  static constexpr const char* kName = "breakout";
  static constexpr int kChannels = 4;
  static constexpr std::array<const char*, kChannels> kChannelNames{"paddle", "ball", "trail",
                                                                     "brick"};
  static constexpr std::array<int, 3> kMinimalActions{kNoop, kLeft, kRight};

  EVOZERO_HD explicit Breakout(bool /*ramping: breakout does not ramp*/) {}

  EVOZERO_HD void reset(RandomState& rng) {
    ball_y = 3;
    const bool right = rng.randint(0, 2) == 1;
    ball_x = right ? 9 : 0;
    ball_dir = right ? 3 : 2;
    pos = 4;
    for (auto& row : bricks)
      for (uint8_t& cell : row) cell = 0;
    fill_bricks();
    num_bricks = 30;
    strike = false;
    last_x = ball_x;
    last_y = ball_y;
    done = false;
  }

  EVOZERO_HD float act(int a, RandomState& /*rng*/) {
    float r = 0.f;
    if (done) return r;
    if (a == kLeft) pos = pos > 0 ? pos - 1 : 0;
    else if (a == kRight) pos = pos < 9 ? pos + 1 : 9;

    last_x = ball_x;
    last_y = ball_y;
    static constexpr int dx[4] = {-1, 1, 1, -1}, dy[4] = {-1, -1, 1, 1};
    int new_x = ball_x + dx[ball_dir], new_y = ball_y + dy[ball_dir];

    bool strike_toggle = false;
    if (new_x < 0 || new_x > 9) {
      new_x = new_x < 0 ? 0 : 9;
      ball_dir = flip_x(ball_dir);
    }
    if (new_y < 0) {
      new_y = 0;
      ball_dir = flip_y(ball_dir);
    } else if (bricks[new_y][new_x]) {
      strike_toggle = true;
      if (!strike) {
        r += 1.f;
        strike = true;
        bricks[new_y][new_x] = 0;
        --num_bricks;
        new_y = last_y;
        ball_dir = flip_y(ball_dir);
      }
    } else if (new_y == 9) {
      if (num_bricks == 0) {
        fill_bricks();
        num_bricks = 30;
      }
      if (ball_x == pos) {
        ball_dir = flip_y(ball_dir);
        new_y = last_y;
      } else if (new_x == pos) {
        ball_dir = flip_both(ball_dir);
        new_y = last_y;
      } else {
        done = true;
      }
    }
    if (!strike_toggle) strike = false;
    ball_x = new_x;
    ball_y = new_y;
    return r;
  }

  EVOZERO_HD bool terminal() const { return done; }

  EVOZERO_HD void render(uint8_t* obs) const {
    set_cell(obs, kChannels, ball_y, ball_x, 1);
    set_cell(obs, kChannels, 9, pos, 0);
    set_cell(obs, kChannels, last_y, last_x, 2);
    for (int y = 1; y < 4; ++y)  // bricks only ever live in rows 1-3
      for (int x = 0; x < kGridSize; ++x)
        if (bricks[y][x]) set_cell(obs, kChannels, y, x, 3);
  }

 private:
  // The reference's direction tables [1, 0, 3, 2], [3, 2, 1, 0] and [2, 3, 0, 1], as bit
  // flips (a function, not a table: device code cannot read host constants).
  EVOZERO_HD static constexpr int flip_x(int d) { return d ^ 1; }
  EVOZERO_HD static constexpr int flip_y(int d) { return d ^ 3; }
  EVOZERO_HD static constexpr int flip_both(int d) { return d ^ 2; }

  EVOZERO_HD void fill_bricks() {
    for (int y = 1; y < 4; ++y)
      for (int x = 0; x < kGridSize; ++x) bricks[y][x] = 1;
  }

  int ball_x = 0, ball_y = 3, ball_dir = 2, pos = 4, last_x = 0, last_y = 3, num_bricks = 30;
  uint8_t bricks[kGridSize][kGridSize] = {};
  bool strike = false, done = false;
};

}  // namespace evozero::minatar
