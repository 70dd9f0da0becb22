// Copying bytes both ways between two connected streams: the heart of the
// TCP relay (and later of every proxied connection).
//
// Each direction reads into one buffer and writes it out before reading
// again (or, for bulk flows between two plain sockets, has the runtime move
// the bytes without a buffer of ours: copy_transfer_buffer_bytes below), so
// a slow reader on one side stops reads on the other (backpressure) and
// memory per connection stays bounded (2 x copy_buffer_bytes_max).
// FIN is forwarded as FIN (half-close, each direction on its own); a reset on
// either side is forwarded as a reset (abort) to the other.
//
//   CopyStats stats;
//   CopyEnd end = co_await copy_bidirectional(env, *downstream, *upstream, stats);
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "io/env.h"
#include "io/task.h"

namespace zt::core {

// Buffers start small so idle connections cost little, grow on evidence
// of bulk traffic, and shrink again when a connection goes quiet (upstream's
// buffers only ever grow: zt#1630):
// - at first, and whenever the connection is quiet, reads go into 128 bytes
//   inside the CopyBuffer itself (so inside the copy's coroutine frame): an
//   idle connection, whose read waits for the peer's next bytes, holds no
//   buffer of its own;
// - a read that fills those 128 bytes moves to a 1 KiB buffer; once 128 KiB
//   have passed, every read that fills the buffer doubles it, up to 256 KiB,
//   so a bulk flow reaches full size within a few reads instead of after
//   10 MiB;
// - a run of 8 reads that each fill less than an eighth of it halves it,
//   down to 1 KiB, and from 1 KiB back to the 128 bytes inside (an eighth of
//   1 KiB: what counts as a small read there always fits); the memory goes
//   back to the allocator.
inline constexpr size_t copy_buffer_bytes_idle = 128;
inline constexpr size_t copy_buffer_bytes_min = 1024;
inline constexpr size_t copy_buffer_bytes_max = 256 * 1024;
inline constexpr uint64_t copy_grow_after_bytes = 128 * 1024;
inline constexpr int copy_shrink_after_small_reads = 8;
static_assert(copy_buffer_bytes_idle * 8 == copy_buffer_bytes_min);
// A direction whose buffer grew to this size is a bulk flow: from then on it
// moves through the runtime's StreamTransfer (splice on Linux) when the
// runtime offers one for the two streams, and the buffer is freed. 64 KiB is
// reached after 128 KiB plus 6 full reads (1 to 32 KiB); it is also the
// simulator's window, so simulated flows get there too.
inline constexpr size_t copy_transfer_buffer_bytes = 64 * 1024;

class CopyBuffer {
 public:
  CopyBuffer() = default;
  CopyBuffer(const CopyBuffer&) = delete;
  CopyBuffer& operator=(const CopyBuffer&) = delete;
  MutableBytes space() { return {data(), limited_ ? limited_ : capacity()}; }
  size_t capacity() const { return heap_.empty() ? copy_buffer_bytes_idle : heap_.size(); }
  // Whether reads go to a heap buffer (false: the bytes inside, when idle).
  bool on_heap() const { return !heap_.empty(); }
  // After a read of `n` bytes, with `copied_total` bytes through so far:
  // grows or shrinks the buffer as described above.
  void note_read(size_t n, uint64_t copied_total);
  // A fault point may shrink the next read to exercise short-copy paths.
  void limit(size_t bytes) { limited_ = std::max<size_t>(1, std::min(bytes, capacity())); }

 private:
  uint8_t* data() { return heap_.empty() ? idle_ : heap_.data(); }
  void resize(size_t bytes);

  std::vector<uint8_t> heap_;  // empty: reads go to idle_
  int small_reads_ = 0;
  size_t limited_ = 0;  // non-zero: the next read takes at most this much
  uint8_t idle_[copy_buffer_bytes_idle];
};

struct CopyStats {
  uint64_t bytes_a_to_b = 0;
  uint64_t bytes_b_to_a = 0;
};

// How a bidirectional copy ended.
enum class CopyEnd : uint8_t {
  finished,  // both sides sent FIN and every byte was delivered
  reset_a,   // side a reset (or failed); b was reset in turn
  reset_b,   // side b reset (or failed); a was reset in turn
};

const char* copy_end_name(CopyEnd end);

Task<CopyEnd> copy_bidirectional(Env& env, Stream& a, Stream& b, CopyStats& stats);

}  // namespace zt::core
