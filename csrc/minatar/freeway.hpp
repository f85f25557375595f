// Freeway, as minatar==1.0.15 environments/freeway.py.
// Quirks copied: at reset and at each crossing the cars draw randint(1, 6, 8)
// (speeds) and then rand(8) (directions), element by element; a crossing
// re-randomizes speeds and directions but not positions; a car hit is checked
// before and after each car's move; the episode ends after exactly 2501 steps
// (the timer starts at 2500 and ends the game when it goes below 0); the game
// does not ramp.
#pragma once
#include "common/hd.hpp"
#include "minatar/game.hpp"

namespace evozero::minatar {

struct Freeway {
  static constexpr const char* kName = "freeway";
  static constexpr int kChannels = 7;
  static constexpr std::array<const char*, kChannels> kChannelNames{
      "chicken", "car", "speed1", "speed2", "speed3", "speed4", "speed5"};
  static constexpr std::array<int, 3> kMinimalActions{kNoop, kUp, kDown};

  EVOZERO_HD explicit Freeway(bool /*ramping: freeway does not ramp*/) {}

  EVOZERO_HD void reset(RandomState& rng) {
    for (Car& c : cars) c.x = 0;
    randomize_cars(rng);
    pos = 9;
    move_timer = kPlayerSpeed;
    terminate_timer = kTimeLimit;
    done = false;
  }

  EVOZERO_HD float act(int a, RandomState& rng) {
    float r = 0.f;
    if (done) return r;

    if (move_timer == 0 && (a == kUp || a == kDown)) {
      move_timer = kPlayerSpeed;
      pos = a == kUp ? (pos > 0 ? pos - 1 : 0) : (pos < 9 ? pos + 1 : 9);
    }

    if (pos == 0) {
      r += 1.f;
      randomize_cars(rng);
      pos = 9;
    }

    // Only the car on the chicken's row can hit it, before or after its move;
    // a hit sends the chicken to row 9, where no car drives.
    const int row_car = pos - 1;
    bool hit = row_car >= 0 && row_car < kCars && cars[row_car].x == 4;
    for (Car& c : cars) {
      const bool move = c.timer == 0;
      c.timer = move ? c.period : c.timer - 1;
      c.x += move ? c.dir : 0;
      c.x = c.x < 0 ? 9 : c.x > 9 ? 0 : c.x;
    }
    hit = hit || (row_car >= 0 && row_car < kCars && cars[row_car].x == 4);
    if (hit) pos = 9;

    if (move_timer > 0) --move_timer;
    if (--terminate_timer < 0) done = true;
    return r;
  }

  EVOZERO_HD bool terminal() const { return done; }

  EVOZERO_HD void render(uint8_t* obs) const {
    set_cell(obs, kChannels, pos, 4, 0);
    int trail = -1;
    for (int i = 0; i < kCars; ++i) {
      const Car& c = cars[i];
      set_cell(obs, kChannels, i + 1, c.x, 1);
      int back_x = c.x - c.dir;
      back_x = back_x < 0 ? 9 : back_x > 9 ? 0 : back_x;
      // Speed 0 (a direction draw of exactly 0.5, p = 2^-53) matches no speed
      // channel: the reference reuses the previous car's channel (its loop
      // variable), and raises for the first car, where we draw no trail.
      if (c.period != 0) trail = 1 + c.period;
      if (trail >= 0) set_cell(obs, kChannels, i + 1, back_x, trail);
    }
  }

 private:
  static constexpr int kCars = 8;  // car i drives on row i + 1
  static constexpr int kPlayerSpeed = 3, kTimeLimit = 2500;

  // The reference's signed speed, as its size (steps between moves) and sign.
  struct Car {
    int x = 0, timer = 0, period = 1, dir = 1;  // speed 0 moves left every step
  };

  EVOZERO_HD void randomize_cars(RandomState& rng) {
    int speeds[kCars];
    for (int& s : speeds) s = static_cast<int>(rng.randint(1, 6));
    for (int i = 0; i < kCars; ++i) {
      const double u = rng.rand() - 0.5;  // np.sign: exactly 0.5 gives speed 0
      cars[i].period = u == 0 ? 0 : speeds[i];
      cars[i].dir = u > 0 ? 1 : -1;
      cars[i].timer = cars[i].period;
    }
  }

  Car cars[kCars];
  int pos = 9, move_timer = kPlayerSpeed, terminate_timer = kTimeLimit;
  bool done = false;
};

}  // namespace evozero::minatar
