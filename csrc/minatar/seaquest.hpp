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
#include <algorithm>
#include <cstddef>
#include <vector>

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
// equality, which remove() uses.
struct Bullet {  // [x, y, right]
  int x, y;
  bool right;
  bool operator==(const Bullet& o) const { return x == o.x && y == o.y && right == o.right; }
};
struct Mover {  // fish and diver: [x, y, right, move_timer]
  int x, y;
  bool right;
  int move;
  bool operator==(const Mover& o) const {
    return x == o.x && y == o.y && right == o.right && move == o.move;
  }
};
struct Sub {  // [x, y, right, move_timer, shot_timer]
  int x, y;
  bool right;
  int move, shot;
  bool operator==(const Sub& o) const {
    return x == o.x && y == o.y && right == o.right && move == o.move && shot == o.shot;
  }
};

// Index of the first entity at (x, y), or -1: the reference's `for x in lst:
// if e[0:2] == x[0:2]`. lst.remove(x) then removes exactly that one, since
// no earlier entity shares its position.
template <class T>
std::ptrdiff_t find_at(const std::vector<T>& v, int x, int y) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i].x == x && v[i].y == y) return static_cast<std::ptrdiff_t>(i);
  return -1;
}

template <class T>
void erase_at(std::vector<T>& v, std::ptrdiff_t i) {
  v.erase(v.begin() + i);
}

// The loop variable of `for e in reversed(lst)`: a Python reference, so it
// stays usable after remove() took it (or an equal twin) out of the list.
template <class T>
struct LoopVar {
  std::vector<T>& list;
  std::ptrdiff_t at;  // its index in the list; -1 once removed
  T e;

  // lst.remove(e): the first element equal to e goes, which may be an
  // unvisited twin before it rather than e itself.
  void remove() {
    list[at] = e;
    const std::ptrdiff_t j = std::find(list.begin(), list.end(), e) - list.begin();
    erase_at(list, j);
    at = j == at ? -1 : at - 1;
  }
};

// CPython's list_reverseiterator: yields lst[i] while 0 <= i < len(lst), then
// i -= 1, whatever the body did to the list. Inlined: a call per list per step costs
// seaquest about a tenth of its step.
template <class T, class Body>
[[gnu::always_inline]] inline void py_reversed_loop(std::vector<T>& list, Body&& body) {
  for (std::ptrdiff_t next = static_cast<std::ptrdiff_t>(list.size()) - 1;
       next >= 0 && next < static_cast<std::ptrdiff_t>(list.size());) {
    LoopVar<T> v{list, next, list[next]};
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

  explicit Seaquest(bool ramping) : ramping_(ramping) {}

  void reset(RandomState& /*rng: no draws at reset*/) {
    using namespace seaquest;
    oxygen_ = kMaxOxygen;
    diver_count_ = 0;
    sub_x_ = 5;
    sub_y_ = 0;
    sub_right_ = false;
    // Room for more than a game usually holds, so steps rarely allocate
    // (here rather than in the ctor: copies of a game do not keep capacity).
    // The lists stay unbounded, as the reference's.
    clear_and_reserve(f_bullets_, 8);
    clear_and_reserve(e_bullets_, 32);
    clear_and_reserve(e_fish_, 32);
    clear_and_reserve(e_subs_, 32);
    clear_and_reserve(divers_, 8);
    e_spawn_speed_ = kInitSpawnSpeed;
    e_spawn_timer_ = e_spawn_speed_;
    d_spawn_timer_ = kDiverSpawnSpeed;
    move_speed_ = kInitMoveInterval;
    ramp_index_ = 0;
    shot_timer_ = 0;
    surface_ = true;
    done_ = false;
  }

  float act(int a, RandomState& rng) {
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
      f_bullets_.push_back({sub_x_, sub_y_, sub_right_});
      shot_timer_ = kShotCoolDown;
    } else if (a == kLeft) {
      sub_x_ = std::max(0, sub_x_ - 1);
      sub_right_ = false;
    } else if (a == kRight) {
      sub_x_ = std::min(9, sub_x_ + 1);
      sub_right_ = true;
    } else if (a == kUp) {
      sub_y_ = std::max(0, sub_y_ - 1);
    } else if (a == kDown) {
      sub_y_ = std::min(8, sub_y_ + 1);
    }

    py_reversed_loop(f_bullets_, [&](LoopVar<Bullet>& b) {
      b.e.x += b.e.right ? 1 : -1;
      if (b.e.x < 0 || b.e.x > 9) {
        b.remove();
        return;
      }
      std::ptrdiff_t k = find_at(e_fish_, b.e.x, b.e.y);
      if (k >= 0) {
        erase_at(e_fish_, k);
        b.remove();
        ++r;
        return;
      }
      k = find_at(e_subs_, b.e.x, b.e.y);
      if (k >= 0) {
        erase_at(e_subs_, k);
        b.remove();
        ++r;
      }
    });

    py_reversed_loop(divers_, [&](LoopVar<Mover>& d) {
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

    py_reversed_loop(e_subs_, [&](LoopVar<Sub>& s) {
      if (at_sub(s.e)) done_ = true;
      if (s.e.move == 0) {
        s.e.move = move_speed_;
        s.e.x += s.e.right ? 1 : -1;
        if (s.e.x < 0 || s.e.x > 9) {
          s.remove();
        } else if (at_sub(s.e)) {
          done_ = true;
        } else {
          const std::ptrdiff_t k = find_at(f_bullets_, s.e.x, s.e.y);
          if (k >= 0) {
            s.remove();
            erase_at(f_bullets_, k);
            ++r;
          }
        }
      } else {
        --s.e.move;
      }
      // Fires even when just removed: the reference keeps using the object.
      if (s.e.shot == 0) {
        s.e.shot = kEnemyShotInterval;
        e_bullets_.push_back({s.e.x, s.e.y, s.e.right});
      } else {
        --s.e.shot;
      }
    });

    py_reversed_loop(e_bullets_, [&](LoopVar<Bullet>& b) {
      if (at_sub(b.e)) done_ = true;
      b.e.x += b.e.right ? 1 : -1;
      if (b.e.x < 0 || b.e.x > 9)
        b.remove();
      else if (at_sub(b.e))
        done_ = true;
    });

    py_reversed_loop(e_fish_, [&](LoopVar<Mover>& f) {
      if (at_sub(f.e)) done_ = true;
      if (f.e.move == 0) {
        f.e.move = move_speed_;
        f.e.x += f.e.right ? 1 : -1;
        if (f.e.x < 0 || f.e.x > 9) {
          f.remove();
        } else if (at_sub(f.e)) {
          done_ = true;
        } else {
          const std::ptrdiff_t k = find_at(f_bullets_, f.e.x, f.e.y);
          if (k >= 0) {
            f.remove();
            erase_at(f_bullets_, k);
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

  bool terminal() const { return done_; }

  void render(uint8_t* obs) const {
    using namespace seaquest;
    set_cell(obs, kChannels, sub_y_, sub_x_, 0);
    // Facing left means the sub moved left (or never turned from x = 5), so
    // the back cell is always on screen.
    set_cell(obs, kChannels, sub_y_, sub_right_ ? sub_x_ - 1 : sub_x_ + 1, 1);
    // oxygen_ >= -1 always: the game ends the step after it reaches 0.
    const int oxygen_cells = std::max(0, oxygen_) * 10 / kMaxOxygen;
    for (int x = 0; x < oxygen_cells; ++x) set_cell(obs, kChannels, 9, x, 7);
    // Slice [9 - count : 9]; empty for a count <= 0 (the -1 quirk included).
    for (int64_t x = 9 - std::min<int64_t>(diver_count_, 9); x < 9; ++x)
      set_cell(obs, kChannels, 9, static_cast<int>(x), 8);
    for (const Bullet& b : f_bullets_) set_cell(obs, kChannels, b.y, b.x, 2);
    for (const Bullet& b : e_bullets_) set_cell(obs, kChannels, b.y, b.x, 4);
    for (const Mover& f : e_fish_) set_with_trail(obs, f.x, f.y, f.right, 5);
    for (const Sub& s : e_subs_) set_with_trail(obs, s.x, s.y, s.right, 6);
    for (const Mover& d : divers_) set_with_trail(obs, d.x, d.y, d.right, 9);
  }

  // Probes for tests and debugging.
  int64_t diver_count() const { return diver_count_; }
  int oxygen() const { return oxygen_; }

 private:
  template <class T>
  bool at_sub(const T& e) const {
    return e.x == sub_x_ && e.y == sub_y_;
  }

  template <class T>
  static void clear_and_reserve(std::vector<T>& v, std::size_t n) {
    v.clear();
    v.reserve(n);
  }

  static void set_with_trail(uint8_t* obs, int x, int y, bool right, int c) {
    set_cell(obs, kChannels, y, x, c);
    const int back_x = right ? x - 1 : x + 1;
    if (back_x >= 0 && back_x <= 9) set_cell(obs, kChannels, y, back_x, 3);
  }

  int surface() {
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

  void spawn_enemy(RandomState& rng) {
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
      e_subs_.push_back({x, y, right, move_speed_, kEnemyShotInterval});
    else
      e_fish_.push_back({x, y, right, move_speed_});
  }

  void spawn_diver(RandomState& rng) {
    using namespace seaquest;
    const bool right = rng.rand() < 1.0 / 2;
    const int x = right ? 0 : 9;
    const int y = static_cast<int>(rng.randint(1, 9));
    divers_.push_back({x, y, right, kDiverMoveInterval});
  }

  bool ramping_;
  int oxygen_ = seaquest::kMaxOxygen;
  int64_t diver_count_ = 0;  // falls by one per surfacing after the 6-diver quirk: no overflow
  int sub_x_ = 5, sub_y_ = 0;
  bool sub_right_ = false;
  std::vector<seaquest::Bullet> f_bullets_, e_bullets_;
  std::vector<seaquest::Mover> e_fish_;
  std::vector<seaquest::Sub> e_subs_;
  std::vector<seaquest::Mover> divers_;
  int e_spawn_speed_ = seaquest::kInitSpawnSpeed, e_spawn_timer_ = seaquest::kInitSpawnSpeed;
  int d_spawn_timer_ = seaquest::kDiverSpawnSpeed, move_speed_ = seaquest::kInitMoveInterval;
  int ramp_index_ = 0, shot_timer_ = 0;
  bool surface_ = true, done_ = false;
};

}  // namespace evozero::minatar
