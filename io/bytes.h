// Byte buffers for the transport layers (TLS records, HTTP/2 frames):
//
// - ByteVector: a vector whose resize() does not zero the new bytes, for
//   buffers filled right after they grow (the zeroing was a whole extra
//   pass over the data).
// - recycle(): empties a batch buffer for reuse, or frees it once a burst
//   is over, so a connection that went back to small messages does not
//   keep a bulk-sized buffer.
// - ReadBuffer: a transport read buffer that is large while reads come
//   back large and small while the connection is quiet, so the read that
//   waits on an idle connection holds little.
//
//   ByteVector out;
//   out.resize(at + n);                    // no memset
//   std::memcpy(out.data() + at, src, n);
#pragma once

#include <cstdint>
#include <memory>
#include <span>
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

// The buffer a transport (TLS ciphertext, HTTP/2 frames) reads into. A
// pooled HBONE connection has a read waiting nearly all its life, so the
// size of that read is what the connection costs while idle:
// - it starts at `quiet` bytes;
// - a read that fills the quiet buffer switches to `full` at once (bulk
//   reaches full size on its second read);
// - 8 reads in a row that would each have fitted the quiet buffer switch
//   back to `quiet`, and the full buffer goes back to the allocator. (Bulk
//   flows have partial reads too, but not 8 tiny ones in a row.)
// A size change takes effect in next(), when the caller holds no bytes in
// the buffer any more.
//
//   transport.read(rx.next(), ...);  // then, with n bytes in rx.data():
//   rx.note_read(n);
class ReadBuffer {
 public:
  ReadBuffer(size_t full_bytes, size_t quiet_bytes) : full_(full_bytes), quiet_(quiet_bytes), want_(quiet_bytes) {}

  // The space for the next read. Only when no bytes of the last read are
  // still needed: it may reallocate.
  std::span<uint8_t> next() {
    if (buf_.size() != want_) ByteVector(want_).swap(buf_);
    return buf_;
  }
  const uint8_t* data() const { return buf_.data(); }
  size_t size() const { return buf_.size(); }
  bool quiet() const { return want_ == quiet_; }

  void note_read(size_t n) {
    if (want_ == quiet_) {
      if (n >= quiet_) want_ = full_;
      return;
    }
    if (n >= quiet_) {
      small_reads_ = 0;
    } else if (++small_reads_ >= 8) {
      small_reads_ = 0;
      want_ = quiet_;
    }
  }

 private:
  ByteVector buf_;
  size_t full_, quiet_, want_;
  int small_reads_ = 0;
};

}  // namespace zt
