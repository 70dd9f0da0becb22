// Byte buffers for the transport layers (TLS records, HTTP/2 frames):
//
// - ByteVector: a vector whose resize() does not zero the new bytes, for
//   buffers filled right after they grow (the zeroing was a whole extra
//   pass over the data).
// - recycle(): empties a batch buffer for reuse, or frees it once a burst
//   is over, so a connection that went back to small messages does not
//   keep a bulk-sized buffer.
//
//   ByteVector out;
//   out.resize(at + n);                    // no memset
//   std::memcpy(out.data() + at, src, n);
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace zt {

template <class T>
struct DefaultInitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <class U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  // resize() value-initialises (zeroes) through construct(p); default
  // initialisation leaves a uint8_t as it is.
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    std::construct_at(p, std::forward<Args>(args)...);
  }
};

using ByteVector = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

// Empties `v` for the next batch. Keeps its memory unless it is more than
// `keep_bytes` and the last 8 batches (counted in `small_batches`, one
// counter per buffer or pair of buffers) each used under an eighth of it:
// a connection whose burst is over frees what the burst made it allocate,
// and a bulk flow, whose batches are mostly large, never reallocates.
inline void recycle(ByteVector& v, int& small_batches, size_t keep_bytes) {
  if (v.capacity() > keep_bytes && v.size() < v.capacity() / 8) {
    if (++small_batches >= 8) {
      small_batches = 0;
      ByteVector().swap(v);
      return;
    }
  } else if (!v.empty()) {
    small_batches = 0;
  }
  v.clear();
}

}  // namespace zt
