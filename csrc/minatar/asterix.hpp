// Asterix, as minatar==1.0.15 environments/asterix.py.
// Quirks copied: a spawn draws rand() (side) and rand() (gold, p=1/3) even when
// all 8 rows are taken, then randint(n_free) for the row (no draw if one is
// free); collisions are checked after the player moves and again after the
// entities move, and an enemy that ends the game stays on the board; the ramp
// counter runs from 100 down to -1 before each step-up, so the game speeds up
// every 102 steps, with the move interval dropping only on odd ramp levels.
#pragma once
#include "common/hd.hpp"
#include "minatar/game.hpp"

namespace evozero::minatar {

struct Asterix {
  static constexpr const char* kName = "asterix";
  static constexpr int kChannels = 4;
  static constexpr std::array<const char*, kChannels> kChannelNames{"player", "enemy", "trail",
                                                                     "gold"};
  static constexpr std::array<int, 5> kMinimalActions{kNoop, kLeft, kUp, kRight, kDown};

  EVOZERO_HD explicit Asterix(bool ramp) : ramping(ramp) {}

  EVOZERO_HD void reset(RandomState& /*rng: no draws at reset*/) {
    player_x = 5;
    player_y = 5;
    for (Entity& e : entities) e.alive = false;
    spawn_speed = kInitSpawnSpeed;
    spawn_timer = spawn_speed;
    move_speed = kInitMoveInterval;
    move_timer = move_speed;
    ramp_timer = kRampInterval;
    ramp_index = 0;
    done = false;
  }

  EVOZERO_HD float act(int a, RandomState& rng) {
    float r = 0.f;
    if (done) return r;

    if (spawn_timer == 0) {
      spawn(rng);
      spawn_timer = spawn_speed;
    }

    if (a == kLeft) player_x = player_x > 0 ? player_x - 1 : 0;
    else if (a == kRight) player_x = player_x < 9 ? player_x + 1 : 9;
    else if (a == kUp) player_y = player_y > 1 ? player_y - 1 : 1;
    else if (a == kDown) player_y = player_y < 8 ? player_y + 1 : 8;

    // Only the entity on the player's row can touch it, and what a touch does
    // never changes another entity's move: check that one after all have moved.
    r += collide();
    if (move_timer == 0) {
      move_timer = move_speed;
      for (Entity& e : entities) {
        e.x += e.alive ? e.dx : 0;
        e.alive = e.alive && e.x >= 0 && e.x <= 9;
      }
      r += collide();
    }

    --spawn_timer;
    --move_timer;

    if (ramping && (spawn_speed > 1 || move_speed > 1)) {
      if (ramp_timer >= 0) {
        --ramp_timer;
      } else {
        if (move_speed > 1 && ramp_index % 2) --move_speed;
        if (spawn_speed > 1) --spawn_speed;
        ++ramp_index;
        ramp_timer = kRampInterval;
      }
    }
    return r;
  }

  EVOZERO_HD bool terminal() const { return done; }

  EVOZERO_HD void render(uint8_t* obs) const {
    set_cell(obs, kChannels, player_y, player_x, 0);
    // Over the live slots' bits: which slots are alive differs from env to env, and a
    // branch per slot mispredicted often enough to cost asterix a sixth of its step.
    unsigned live = 0;
    for (int i = 0; i < kSlots; ++i) live |= static_cast<unsigned>(entities[i].alive) << i;
    for (; live; live &= live - 1) {
      const int i = hd_ctz(live);
      const Entity& e = entities[i];
      set_cell(obs, kChannels, i + 1, e.x, e.gold ? 3 : 1);
      const int back_x = e.x - e.dx;
      if (back_x >= 0 && back_x <= 9) set_cell(obs, kChannels, i + 1, back_x, 2);
    }
  }

  EVOZERO_HD int difficulty_ramp() const { return ramp_index; }

 private:
  static constexpr int kSlots = 8;  // entity in slot i lives on row i + 1
  static constexpr int kRampInterval = 100, kInitSpawnSpeed = 10, kInitMoveInterval = 5;

  struct Entity {
    int x = 0, dx = 1;  // dx: +1 moving right
    bool gold = false, alive = false;
  };

  // The entity on the player's row, if on the player's cell: gold is picked up
  // (+1); an enemy ends the game and stays where it is.
  EVOZERO_HD float collide() {
    Entity& e = entities[player_y - 1];
    if (!e.alive || e.x != player_x) return 0.f;
    if (e.gold) {
      e.alive = false;
      return 1.f;
    }
    done = true;
    return 0.f;
  }

  EVOZERO_HD void spawn(RandomState& rng) {
    const bool right = rng.rand() < 1.0 / 2;
    const bool gold = rng.rand() < 1.0 / 3;
    int free = 0;
    for (const Entity& e : entities) free += !e.alive;
    if (free == 0) return;
    int k = static_cast<int>(rng.randint(0, free));
    for (int i = 0; i < kSlots; ++i) {
      if (entities[i].alive || k-- > 0) continue;
      entities[i] = Entity{right ? 0 : 9, right ? 1 : -1, gold, true};
      return;
    }
  }

  bool ramping;
  int player_x = 5, player_y = 5;
  Entity entities[kSlots];
  int spawn_speed = kInitSpawnSpeed, spawn_timer = kInitSpawnSpeed;
  int move_speed = kInitMoveInterval, move_timer = kInitMoveInterval;
  int ramp_timer = kRampInterval, ramp_index = 0;
  bool done = false;
};

}  // namespace evozero::minatar
