// A host Block of several threads (tests only): the block code run by k std::threads
// that share the agent's arena and meet at a barrier, as a CUDA thread block's threads
// do. Its runs must equal the one-thread HostBlock's bit for bit; a missing or misplaced
// sync() or a reduction owned by the wrong thread shows up as a difference (or as a
// data race under a sanitizer), without a GPU.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace evozero::population {

class Barrier {
 public:
  explicit Barrier(int count) : count_(count) {}
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t gen = generation_;
    if (++waiting_ == count_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_, waiting_ = 0;
  uint64_t generation_ = 0;
};

struct ThreadsBlock {
  int id, count;
  Barrier* barrier;
  int tid() const { return id; }
  int size() const { return count; }
  void sync() const { barrier->wait(); }
};

}  // namespace evozero::population
