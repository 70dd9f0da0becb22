#include "core/copy.h"

#include <memory>
#include <optional>

#include "io/async.h"

namespace zt::core {

void CopyBuffer::note_read(size_t n, uint64_t copied_total) {
  if (limited_) {  // a fault point shrank this one read: it says nothing of the traffic
    limited_ = 0;
    return;
  }
  const size_t size = capacity();
  if (n >= size) {
    small_reads_ = 0;
    if (!on_heap()) {
      resize(copy_buffer_bytes_min);  // bytes are flowing: leave the idle bytes
    } else if (copied_total >= copy_grow_after_bytes && size < copy_buffer_bytes_max) {
      resize(std::min(copy_buffer_bytes_max, size * 2));
    }
    return;
  }
  if (!on_heap() || n * 8 >= size) {
    small_reads_ = 0;
    return;
  }
  if (++small_reads_ >= copy_shrink_after_small_reads) {
    small_reads_ = 0;
    resize(size > copy_buffer_bytes_min ? std::max(copy_buffer_bytes_min, size / 2) : 0);
  }
}

void CopyBuffer::resize(size_t bytes) {
  // Swapped for a fresh vector, so shrinking really frees the memory; 0
  // goes back to the bytes inside.
  std::vector<uint8_t>(bytes).swap(heap_);
}

const char* copy_end_name(CopyEnd end) {
  switch (end) {
    case CopyEnd::finished: return "finished";
    case CopyEnd::reset_a: return "reset_a";
    case CopyEnd::reset_b: return "reset_b";
  }
  return "unknown";
}

namespace {

// How one direction ended.
enum class DirEnd : uint8_t { eof, src_failed, dst_failed, cancelled };

// Moves src -> dst through the runtime's transfer (splice on Linux) until src
// sends FIN (forwarded as FIN) or fails: the same steps and outcomes as the
// buffered loop below, with fill/drain in place of read/write. `copied`
// counts bytes once all of a fill was delivered, as the buffered loop does.
Task<DirEnd> transfer_one_way(Env& env, StreamTransfer& xfer, Stream& src, Stream& dst, uint64_t& copied) {
  for (;;) {
    size_t max = copy_buffer_bytes_max;
    if (ZT_BUGGIFY(env, "copy.tiny_buffer")) max = 1 + env.rng.below(16);
    Result<size_t> n = co_await io::fill(xfer, max);
    if (!n) {
      if (n.code() == Errc::cancelled) co_return DirEnd::cancelled;
      dst.abort();
      co_return DirEnd::src_failed;
    }
    if (*n == 0) {
      if (!dst.shutdown_write()) co_return DirEnd::dst_failed;
      co_return DirEnd::eof;
    }
    while (xfer.held() > 0) {
      Result<size_t> w = co_await io::drain(xfer);
      if (!w) {
        if (w.code() == Errc::cancelled) co_return DirEnd::cancelled;
        src.abort();
        co_return DirEnd::dst_failed;
      }
    }
    copied += *n;
  }
}

// Copies src -> dst until src sends FIN (forwarded as FIN) or fails. Once
// the flow has proven bulk (its buffer grew to copy_transfer_buffer_bytes),
// it asks the runtime for a transfer and, if it gets one, frees the buffer
// and continues there: small and interactive flows never pay for a pipe.
Task<DirEnd> copy_one_way(Env& env, Stream& src, Stream& dst, uint64_t& copied) {
  std::optional<CopyBuffer> buf(std::in_place);
  for (;;) {
    if (ZT_BUGGIFY(env, "copy.tiny_buffer")) buf->limit(1 + env.rng.below(16));
    Result<size_t> n = co_await io::read(src, buf->space());
    if (!n) {
      // Cancelled means the other direction aborted this stream already.
      if (n.code() == Errc::cancelled) co_return DirEnd::cancelled;
      dst.abort();  // forward the reset
      co_return DirEnd::src_failed;
    }
    if (*n == 0) {
      if (!dst.shutdown_write()) co_return DirEnd::dst_failed;  // the other direction sees why
      co_return DirEnd::eof;
    }
    Result<void> w = co_await io::write_all(dst, buf->space().first(*n));
    if (!w) {
      if (w.code() == Errc::cancelled) co_return DirEnd::cancelled;
      src.abort();  // the destination reset: tell the source
      co_return DirEnd::dst_failed;
    }
    copied += *n;
    const size_t before = buf->capacity();
    buf->note_read(*n, copied);
    if (buf->capacity() >= copy_transfer_buffer_bytes && before < copy_transfer_buffer_bytes) {
      if (std::unique_ptr<StreamTransfer> xfer = env.net.transfer(src, dst)) {
        buf.reset();
        co_return co_await transfer_one_way(env, *xfer, src, dst, copied);
      }
    }
  }
}

}  // namespace

Task<CopyEnd> copy_bidirectional(Env& env, Stream& a, Stream& b, CopyStats& stats) {
  DirEnd ab = DirEnd::eof, ba = DirEnd::eof;
  co_await join(
      [](Env& env, Stream& a, Stream& b, uint64_t& n, DirEnd& out) -> Task<void> {
        out = co_await copy_one_way(env, a, b, n);
      }(env, a, b, stats.bytes_a_to_b, ab),
      [](Env& env, Stream& b, Stream& a, uint64_t& n, DirEnd& out) -> Task<void> {
        out = co_await copy_one_way(env, b, a, n);
      }(env, b, a, stats.bytes_b_to_a, ba));
  if (ab == DirEnd::eof && ba == DirEnd::eof) co_return CopyEnd::finished;
  // Blame the side whose failure started it: a read failure on a or a write
  // failure towards a.
  if (ab == DirEnd::src_failed || ba == DirEnd::dst_failed) co_return CopyEnd::reset_a;
  co_return CopyEnd::reset_b;
}

}  // namespace zt::core
