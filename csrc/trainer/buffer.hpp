// Contiguous float storage aligned to a cache line (64 bytes), so that rows whose
// length is a multiple of 16 floats start on a cache line and vector loads never
// split one.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace evozero::trainer {

template <class T>
struct CacheAligned {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};

  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U>&) noexcept {}

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, kAlign); }

  template <class U>
  bool operator==(const CacheAligned<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const CacheAligned<U>&) const noexcept { return false; }
};

using Buffer = std::vector<float, CacheAligned<float>>;

// Grows a workspace to at least `size` elements (the only place workspaces allocate).
inline void ensure_size(Buffer& b, std::size_t size) {
  if (b.size() < size) b.resize(size);
}

}  // namespace evozero::trainer
