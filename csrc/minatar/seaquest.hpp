// Seaquest, as minatar==1.0.15 environments/seaquest.py.
// Quirks copied:
// - entities live in Python lists walked with `for e in reversed(lst)` and
//   shrunk with `lst.remove(e)`. The reverse iterator is a bare index, and
//   remove() drops the first *equal* entity, so taking out an unvisited twin
//   makes the current entity come up a second time (py_reversed_loop below;
//   play hardly ever makes such twins, but the port stays exact if it does);
// - an enemy sub that leaves the screen or is shot still fires that step (the
//   off-screen bullet leaves in the same step);
// - an enemy spawn always draws rand(), rand(), randint(1, 9), even when it is
//   refused (an enemy in that row heading the other way); a diver spawn draws
//   rand(), randint(1, 9);
// - surfacing with 6 divers pays oxygen*10/200, zeroes the count and still
//   takes one diver: the count becomes -1, and keeps falling with each later
//   surfacing (only exactly 0 divers ends the game);
// - the ramp condition is checked before its increment; the move interval
//   drops only on odd ramp indices;
// - after a hit the rest of the step still runs.
#pragma once
#include <cstdint>
#ifndef __CUDA_ARCH__
#include <stdexcept>
#endif

#include "common/hd.hpp"
#include "minatar/game.hpp"

namespace evozero::minatar {

namespace seaquest {

constexpr int kMaxOxygen = 200;
constexpr int kInitSpawnSpeed = 20;
constexpr int kDiverSpawnSpeed = 30;
constexpr int kInitMoveInterval = 5;
constexpr int kShotCoolDown = 5;
constexpr int kEnemyShotInterval = 10;
constexpr int kDiverMoveInterval = 5;

// The reference's entity lists, field for field: equality is Python list
// equality, which remove() uses. Every field fits a byte: x in -2..10, y in 0..8,
// timers at most 10.
using i8 = int8_t;
struct Bullet {  // [x, y, right]
  i8 x, y;
  bool right;
  EVOZERO_HD bool operator==(const Bullet& o) const {
    return x == o.x && y == o.y && right == o.right;
  }
};
struct Mover {  // fish and diver: [x, y, right, move_timer]
  i8 x, y;
  bool right;
  i8 move;
  EVOZERO_HD bool operator==(const Mover& o) const {
    return x == o.x && y == o.y && right == o.right && move == o.move;
  }
};
struct Sub {  // [x, y, right, move_timer, shot_timer]
  i8 x, y;
  bool right;
  i8 move, shot;
  EVOZERO_HD bool operator==(const Sub& o) const {
    return x == o.x && y == o.y && right == o.right && move == o.move && shot == o.shot;
  }
};

// The lists' capacities, which the rules cannot exceed (the reference's lists are
// unbounded, but what they can hold is bounded):
// - at most one enemy spawns per step, and an enemy moves at least every 6 steps
//   (its move timer restarts at the move interval, at most 5), so it leaves the
//   screen within 10 moves, 60 steps: fish and subs together hold at most 60;
// - an enemy bullet moves every step and leaves within 10, and a sub fires at most
//   once in 11 steps: at most one bullet per sub alive in the last 10 steps, 70;
// - a friendly bullet every 5 steps lives at most 10; a diver every 30 steps lives
//   at most 60 (it moves at least every 6 steps).
// Inline lists keep a game in one block of memory (no heap, so GPU code can step it);
// a push past capacity is a bug in this reasoning and fails loudly, never silently.
constexpr int kMaxEnemies = 64, kMaxEnemyBullets = 96, kMaxFriendly = 8, kMaxDivers = 8;

EVOZERO_HD inline void capacity_exceeded() {
#ifdef __CUDA_ARCH__
  __trap();
#else
  throw std::length_error(
      "seaquest: an entity list outgrew the capacity the game's rules allow; "
      "this is a bug in evozero, please report it with the seed and actions");
#endif
}

// A Python list of entities with a fixed capacity, stored inline.
template <class T, int N>
struct InlineList {
  int n = 0;  // first: the count shares a cache line with the first entities
  T item[N];

  EVOZERO_HD int size() const { return n; }
  EVOZERO_HD T& operator[](int i) { return item[i]; }
  EVOZERO_HD const T* begin() const { return item; }
  EVOZERO_HD const T* end() const { return item + n; }
  EVOZERO_HD void clear() { n = 0; }
  EVOZERO_HD void push_back(const T& e) {
    if (n == N) capacity_exceeded();
    item[n++] = e;
  }
  EVOZERO_HD void erase_at(int i) {
    for (; i + 1 < n; ++i) item[i] = item[i + 1];
    --n;
  }
  // Index of the first element equal to e, or -1.
  EVOZERO_HD int find(const T& e) const {
    for (int i = 0; i < n; ++i)
      if (item[i] == e) return i;
    return -1;
  }
};

// Index of the first entity at (x, y), or -1: the reference's `for x in lst:
// if e[0:2] == x[0:2]`. lst.remove(x) then removes exactly that one, since
// no earlier entity shares its position.
template <class List>
EVOZERO_HD int find_at(const List& v, int x, int y) {
  for (int i = 0; i < v.n; ++i)
    if (v.item[i].x == x && v.item[i].y == y) return i;
  return -1;
}

// The loop variable of `for e in reversed(lst)`: a Python reference, so it
// stays usable after remove() took it (or an equal twin) out of the list.
template <class List, class T>
struct LoopVar {
  List& list;
  int at;  // its index in the list; -1 once removed
  T e;

  // lst.remove(e): the first element equal to e goes, which may be an
  // unvisited twin before it rather than e itself.
  EVOZERO_HD void remove() {
    list[at] = e;
    const int j = list.find(e);
    list.erase_at(j);
    at = j == at ? -1 : at - 1;
  }
};

// CPython's list_reverseiterator: yields lst[i] while 0 <= i < len(lst), then
// i -= 1, whatever the body did to the list. Inlined: a call per list per step costs
// seaquest about a tenth of its step.
template <class T, int N, class Body>
[[gnu::always_inline]] EVOZERO_HD inline void py_reversed_loop(InlineList<T, N>& list,
                                                                Body&& body) {
  for (int next = list.n - 1; next >= 0 && next < list.n;) {
    LoopVar<InlineList<T, N>, T> v{list, next, list[next]};
    --next;
    body(v);
    if (v.at >= 0) list[v.at] = v.e;
  }
}

}  // namespace seaquest

struct Seaquest {
  static constexpr const char* kName = "seaquest";
  static constexpr int kChannels = 10;
  static constexpr std::array<const char*, kChannels> kChannelNames{
      "sub_front",   "sub_back",   "friendly_bullet", "trail",        "enemy_bullet",
      "enemy_fish",  "enemy_sub",  "oxygen_gauge",    "diver_gauge",  "diver"};
  static constexpr std::array<int, 6> kMinimalActions{kNoop, kLeft, kUp, kRight, kDown, kFire};

  EVOZERO_HD explicit Seaquest(bool ramping) : ramping_(ramping) {}

  EVOZERO_HD void reset(RandomState& /*rng: no draws at reset*/) {
    using namespace seaquest;
    oxygen_ = kMaxOxygen;
    diver_count_ = 0;
    sub_x_ = 5;
    sub_y_ = 0;
    sub_right_ = false;
    f_bullets_.clear();
    e_bullets_.clear();
    e_fish_.clear();
    e_subs_.clear();
    divers_.clear();
    e_spawn_speed_ = kInitSpawnSpeed;
    e_spawn_timer_ = e_spawn_speed_;
    d_spawn_timer_ = kDiverSpawnSpeed;
    move_speed_ = kInitMoveInterval;
    ramp_index_ = 0;
    shot_timer_ = 0;
    surface_ = true;
    done_ = false;
  }

  EVOZERO_HD float act(int a, RandomState& rng) {
    using namespace seaquest;
    if (done_) return 0.f;
    int r = 0;

    if (e_spawn_timer_ == 0) {
      spawn_enemy(rng);
      e_spawn_timer_ = e_spawn_speed_;
    }
    if (d_spawn_timer_ == 0) {
      spawn_diver(rng);
      d_spawn_timer_ = kDiverSpawnSpeed;
    }

    if (a == kFire && shot_timer_ == 0) {
      f_bullets_.push_back(Bullet{i8(sub_x_), i8(sub_y_), sub_right_});
      shot_timer_ = kShotCoolDown;
    } else if (a == kLeft) {
      sub_x_ = hd_max(0, sub_x_ - 1);
      sub_right_ = false;
    } else if (a == kRight) {
      sub_x_ = hd_min(9, sub_x_ + 1);
      sub_right_ = true;
    } else if (a == kUp) {
      sub_y_ = hd_max(0, sub_y_ - 1);
    } else if (a == kDown) {
      sub_y_ = hd_min(8, sub_y_ + 1);
    }

    py_reversed_loop(f_bullets_, [&](auto& b) {
      b.e.x += b.e.right ? 1 : -1;
      if (b.e.x < 0 || b.e.x > 9) {
        b.remove();
        return;
      }
      int k = find_at(e_fish_, b.e.x, b.e.y);
      if (k >= 0) {
        e_fish_.erase_at(k);
        b.remove();
        ++r;
        return;
      }
      k = find_at(e_subs_, b.e.x, b.e.y);
      if (k >= 0) {
        e_subs_.erase_at(k);
        b.remove();
        ++r;
      }
    });

    py_reversed_loop(divers_, [&](auto& d) {
      if (at_sub(d.e) && diver_count_ < 6) {
        d.remove();
        ++diver_count_;
      } else if (d.e.move == 0) {
        d.e.move = kDiverMoveInterval;
        d.e.x += d.e.right ? 1 : -1;
        if (d.e.x < 0 || d.e.x > 9) {
          d.remove();
        } else if (at_sub(d.e) && diver_count_ < 6) {
          d.remove();
          ++diver_count_;
        }
      } else {
        --d.e.move;
      }
    });

    py_reversed_loop(e_subs_, [&](auto& s) {
      if (at_sub(s.e)) done_ = true;
      if (s.e.move == 0) {
        s.e.move = move_speed_;
        s.e.x += s.e.right ? 1 : -1;
        if (s.e.x < 0 || s.e.x > 9) {
          s.remove();
        } else if (at_sub(s.e)) {
          done_ = true;
        } else {
          const int k = find_at(f_bullets_, s.e.x, s.e.y);
          if (k >= 0) {
            s.remove();
            f_bullets_.erase_at(k);
            ++r;
          }
        }
      } else {
        --s.e.move;
      }
      // Fires even when just removed: the reference keeps using the object.
      if (s.e.shot == 0) {
        s.e.shot = kEnemyShotInterval;
        e_bullets_.push_back(Bullet{s.e.x, s.e.y, s.e.right});
      } else {
        --s.e.shot;
      }
    });

    py_reversed_loop(e_bullets_, [&](auto& b) {
      if (at_sub(b.e)) done_ = true;
      b.e.x += b.e.right ? 1 : -1;
      if (b.e.x < 0 || b.e.x > 9)
        b.remove();
      else if (at_sub(b.e))
        done_ = true;
    });

    py_reversed_loop(e_fish_, [&](auto& f) {
      if (at_sub(f.e)) done_ = true;
      if (f.e.move == 0) {
        f.e.move = move_speed_;
        f.e.x += f.e.right ? 1 : -1;
        if (f.e.x < 0 || f.e.x > 9) {
          f.remove();
        } else if (at_sub(f.e)) {
          done_ = true;
        } else {
          const int k = find_at(f_bullets_, f.e.x, f.e.y);
          if (k >= 0) {
            f.remove();
            f_bullets_.erase_at(k);
            ++r;
          }
        }
      } else {
        --f.e.move;
      }
    });

    if (e_spawn_timer_ > 0) --e_spawn_timer_;
    if (d_spawn_timer_ > 0) --d_spawn_timer_;
    if (shot_timer_ > 0) --shot_timer_;
    if (oxygen_ <= 0) done_ = true;
    if (sub_y_ > 0) {
      --oxygen_;
      surface_ = false;
    } else if (!surface_) {
      if (diver_count_ == 0)
        done_ = true;
      else
        r += surface();
    }
    return static_cast<float>(r);
  }

  EVOZERO_HD bool terminal() const { return done_; }

  EVOZERO_HD void render(uint8_t* obs) const {
    using namespace seaquest;
    set_cell(obs, kChannels, sub_y_, sub_x_, 0);
    // Facing left means the sub moved left (or never turned from x = 5), so
    // the back cell is always on screen.
    set_cell(obs, kChannels, sub_y_, sub_right_ ? sub_x_ - 1 : sub_x_ + 1, 1);
    // oxygen_ >= -1 always: the game ends the step after it reaches 0.
    // The gauges write all their cells, 0 or 1 (only they use channels 7 and 8): loops of
    // fixed length, where ones that stop at the gauge's level mispredict every step.
    const int oxygen_cells = hd_max(0, oxygen_) * 10 / kMaxOxygen;
    uint8_t* row9 = obs + 9 * kGridSize * kChannels;
    for (int x = 0; x < kGridSize; ++x) row9[x * kChannels + 7] = x < oxygen_cells;
    // Slice [9 - count : 9]; empty for a count <= 0 (the -1 quirk included).
    const int64_t first_diver = 9 - hd_min<int64_t>(diver_count_, 9);
    for (int x = 0; x < 9; ++x) row9[x * kChannels + 8] = x >= first_diver;
    for (const Bullet& b : f_bullets_) set_cell(obs, kChannels, b.y, b.x, 2);
    for (const Bullet& b : e_bullets_) set_cell(obs, kChannels, b.y, b.x, 4);
    for (const Mover& f : e_fish_) set_with_trail(obs, f.x, f.y, f.right, 5);
    for (const Sub& s : e_subs_) set_with_trail(obs, s.x, s.y, s.right, 6);
    for (const Mover& d : divers_) set_with_trail(obs, d.x, d.y, d.right, 9);
  }

  // Probes for tests and debugging.
  EVOZERO_HD int64_t diver_count() const { return diver_count_; }
  EVOZERO_HD int oxygen() const { return oxygen_; }

 private:
  template <class T>
  EVOZERO_HD bool at_sub(const T& e) const {
    return e.x == sub_x_ && e.y == sub_y_;
  }

  EVOZERO_HD static void set_with_trail(uint8_t* obs, int x, int y, bool right, int c) {
    set_cell(obs, kChannels, y, x, c);
    // The trail cell when it is on screen; else an or of 0 into the entity's own cell.
    const int back_x = right ? x - 1 : x + 1;
    const bool on_screen = back_x >= 0 && back_x <= 9;
    obs[(y * kGridSize + (on_screen ? back_x : x)) * kChannels + 3] |= on_screen;
  }

  EVOZERO_HD int surface() {
    using namespace seaquest;
    surface_ = true;
    int r = 0;
    if (diver_count_ == 6) {
      diver_count_ = 0;
      r = oxygen_ * 10 / kMaxOxygen;  // oxygen_ >= 0 here: floor division as the reference
    }
    oxygen_ = kMaxOxygen;
    --diver_count_;
    if (ramping_ && (e_spawn_speed_ > 1 || move_speed_ > 2)) {
      if (move_speed_ > 2 && ramp_index_ % 2) --move_speed_;
      if (e_spawn_speed_ > 1) --e_spawn_speed_;
      ++ramp_index_;
    }
    return r;
  }

  EVOZERO_HD void spawn_enemy(RandomState& rng) {
    using namespace seaquest;
    const bool right = rng.rand() < 1.0 / 2;
    const bool is_sub = rng.rand() < 1.0 / 3;
    const int x = right ? 0 : 9;
    const int y = static_cast<int>(rng.randint(1, 9));
    for (const Sub& s : e_subs_)
      if (s.y == y && s.right != right) return;
    for (const Mover& f : e_fish_)
      if (f.y == y && f.right != right) return;
    if (is_sub)
      e_subs_.push_back(Sub{i8(x), i8(y), right, i8(move_speed_), i8(kEnemyShotInterval)});
    else
      e_fish_.push_back(Mover{i8(x), i8(y), right, i8(move_speed_)});
  }

  EVOZERO_HD void spawn_diver(RandomState& rng) {
    using namespace seaquest;
    const bool right = rng.rand() < 1.0 / 2;
    const int x = right ? 0 : 9;
    const int y = static_cast<int>(rng.randint(1, 9));
    divers_.push_back(Mover{i8(x), i8(y), right, i8(kDiverMoveInterval)});
  }

  bool ramping_;
  int oxygen_ = seaquest::kMaxOxygen;
  int64_t diver_count_ = 0;  // falls by one per surfacing after the 6-diver quirk: no overflow
  int sub_x_ = 5, sub_y_ = 0;
  bool sub_right_ = false;
  int e_spawn_speed_ = seaquest::kInitSpawnSpeed, e_spawn_timer_ = seaquest::kInitSpawnSpeed;
  int d_spawn_timer_ = seaquest::kDiverSpawnSpeed, move_speed_ = seaquest::kInitMoveInterval;
  int ramp_index_ = 0, shot_timer_ = 0;
  bool surface_ = true, done_ = false;
  // The lists last, the small ones first: a step touches the scalars, each list's count
  // and its live entities, a few cache lines of the game's ~1 KiB.
  seaquest::InlineList<seaquest::Bullet, seaquest::kMaxFriendly> f_bullets_;
  seaquest::InlineList<seaquest::Mover, seaquest::kMaxDivers> divers_;
  seaquest::InlineList<seaquest::Mover, seaquest::kMaxEnemies> e_fish_;
  seaquest::InlineList<seaquest::Sub, seaquest::kMaxEnemies> e_subs_;
  seaquest::InlineList<seaquest::Bullet, seaquest::kMaxEnemyBullets> e_bullets_;
};

}  // namespace evozero::minatar
