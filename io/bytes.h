// A byte vector whose resize() does not zero the new bytes: for buffers that
// are filled right after they grow (TLS records, HTTP/2 frames), where the
// zeroing was a whole extra pass over the data.
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

}  // namespace zt
