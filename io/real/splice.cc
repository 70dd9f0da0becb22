// Transfers: splice(2) from one socket into a pipe and from the pipe into the
// other socket, so relayed bytes never cross into our memory.
#include "io/real/splice.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <system_error>

#include <asio/post.hpp>

#include "io/assert.h"
#include "io/real/asio_convert.h"

namespace zt::io::real {

using asio::ip::tcp;


// Pipes are sized like the copy buffer they replace (core/copy.h), when the
// kernel allows it (fs.pipe-max-size, the per-user pipe page limits).
constexpr int kPipeBytes = 256 * 1024;
// Empty pipes kept for reuse per network (per worker thread); more are closed.
constexpr size_t kPooledPipesMax = 16;

struct Pipe {
  int rd = -1;
  int wr = -1;
  size_t capacity = 0;
};

inline Error errno_error(int err, const char* what) {
  return to_error(std::error_code(err, asio::system_category()), what);
}

// The pipes of one network. A transfer borrows one while bytes are on their
// way and gives it back, empty, whenever its source has nothing to read: an
// idle connection holds no pipe, and bulk connections share a few.
struct PipePool {
  std::vector<Pipe> idle;
  TransferStats stats;

  ~PipePool() {
    for (Pipe& p : idle) close_pipe(p);
  }

  Result<Pipe> take() {
    if (!idle.empty()) {
      Pipe p = idle.back();
      idle.pop_back();
      return p;
    }
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return errno_error(errno, "pipe");
    Pipe p{fds[0], fds[1], 0};
    (void)::fcntl(p.wr, F_SETPIPE_SZ, kPipeBytes);  // refused beyond the limits: keep the default size
    const int size = ::fcntl(p.wr, F_GETPIPE_SZ);
    p.capacity = size > 0 ? size_t(size) : 4096;
    ++stats.pipes_created;
    ++stats.pipes_open;
    return p;
  }

  // `p` must be empty: bytes of one connection must never reach another.
  void give(Pipe p) {
    if (idle.size() < kPooledPipesMax) {
      idle.push_back(p);
    } else {
      close_pipe(p);
    }
  }

  void close_pipe(Pipe& p) {
    ::close(p.rd);
    ::close(p.wr);
    p.rd = p.wr = -1;
    --stats.pipes_open;
  }
};
using PipePoolPtr = std::shared_ptr<PipePool>;

namespace {

// A dead peer turns a splice into a socket into SIGPIPE, which kills the
// process by default (send() avoids it with MSG_NOSIGNAL; splice has no such
// flag). Ignored once, process-wide, unless someone installed a handler.
void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
  });
}

struct SpliceState {
  StreamStatePtr src, dst;
  PipePoolPtr pool;
  std::optional<Pipe> pipe;  // borrowed from the pool while held > 0 or a fill runs
  size_t held = 0;
  size_t fill_max = 0;
  bool owner_alive = true;  // the SpliceTransfer exists
  bool filling = false;
  bool draining = false;
  Stream::IoCallback fill_cb;
  Stream::IoCallback drain_cb;
};
using SpliceStatePtr = std::shared_ptr<SpliceState>;

// The fill is src's read in flight: its flag and its owner's life apply.
void complete_fill(const SpliceStatePtr& st, Result<size_t> r) {
  if (!st->owner_alive) return;  // the destructor released the read slot
  st->filling = false;
  st->src->reading = false;
  Stream::IoCallback cb = std::move(st->fill_cb);
  st->fill_cb = nullptr;
  if (st->src->owner_alive) cb(std::move(r));
}

void complete_drain(const SpliceStatePtr& st, Result<size_t> r) {
  if (!st->owner_alive) return;
  st->draining = false;
  st->dst->writing = false;
  Stream::IoCallback cb = std::move(st->drain_cb);
  st->drain_cb = nullptr;
  if (st->dst->owner_alive) cb(std::move(r));
}

// Posts a completion; like AsioStream::read, an operation that succeeded but
// whose stream was closed before the callback ran reports cancelled.
void post_fill(const SpliceStatePtr& st, Result<size_t> r) {
  const bool was_closed = st->src->closed;
  asio::post(st->src->sock.get_executor(), [st, r = std::move(r), was_closed]() mutable {
    if (st->src->closed && !was_closed) r = Error(Errc::cancelled);
    complete_fill(st, std::move(r));
  });
}

void post_drain(const SpliceStatePtr& st, Result<size_t> r) {
  const bool was_closed = st->dst->closed;
  asio::post(st->dst->sock.get_executor(), [st, r = std::move(r), was_closed]() mutable {
    if (st->dst->closed && !was_closed) r = Error(Errc::cancelled);
    complete_drain(st, std::move(r));
  });
}

void try_fill(const SpliceStatePtr& st) {
  if (!st->pipe) {
    Result<Pipe> p = st->pool->take();
    if (!p) return post_fill(st, p.error());
    st->pipe = *p;
  }
  const size_t want = std::min(st->fill_max, st->pipe->capacity);
  for (;;) {
    const ssize_t n = ::splice(st->src->sock.native_handle(), nullptr, st->pipe->wr, nullptr, want,
                               SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n > 0) {
      st->held = size_t(n);
      return post_fill(st, size_t(n));
    }
    if (n == 0) {  // FIN, and every byte before it was taken
      st->src->eof = true;
      return post_fill(st, size_t{0});
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN) break;
    Error e = errno_error(err, "splice from socket");
    st->src->read_error = e;
    return post_fill(st, std::move(e));
  }
  // Nothing to read (the pipe is empty before a fill): the pipe goes back to
  // the pool while we wait, so quiet connections hold none.
  st->pool->give(*st->pipe);
  st->pipe.reset();
  st->src->sock.async_wait(tcp::socket::wait_read, [st](const std::error_code& ec) {
    if (!st->owner_alive) return;
    if (st->src->closed) return complete_fill(st, Error(Errc::cancelled));
    if (ec) return complete_fill(st, to_error(ec, "wait to read"));
    try_fill(st);
  });
}

void try_drain(const SpliceStatePtr& st) {
  for (;;) {
    const ssize_t n = ::splice(st->pipe->rd, nullptr, st->dst->sock.native_handle(), nullptr, st->held,
                               SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n > 0) {
      st->held -= size_t(n);
      st->pool->stats.bytes += uint64_t(n);
      return post_drain(st, size_t(n));
    }
    const int err = n == 0 ? EPIPE : errno;
    if (err == EINTR) continue;
    if (err == EAGAIN) break;
    return post_drain(st, errno_error(err, "splice to socket"));
  }
  st->dst->sock.async_wait(tcp::socket::wait_write, [st](const std::error_code& ec) {
    if (!st->owner_alive) return;
    if (st->dst->closed) return complete_drain(st, Error(Errc::cancelled));
    if (ec) return complete_drain(st, to_error(ec, "wait to write"));
    try_drain(st);
  });
}

}  // namespace

class SpliceTransfer final : public StreamTransfer {
 public:
  explicit SpliceTransfer(SpliceStatePtr st) : st_(std::move(st)) {}

  ~SpliceTransfer() override {
    // Handlers still queued find owner_alive false and do nothing; the
    // streams' slots are free again for their own reads and writes.
    st_->owner_alive = false;
    st_->fill_cb = nullptr;
    st_->drain_cb = nullptr;
    if (st_->filling) st_->src->reading = false;
    if (st_->draining) st_->dst->writing = false;
    if (st_->pipe) {
      if (st_->held == 0) {
        st_->pool->give(*st_->pipe);
      } else {
        st_->pool->close_pipe(*st_->pipe);  // drops the bytes no one will deliver
      }
      st_->pipe.reset();
    }
  }

  void fill(size_t max, IoCallback done) override {
    ZT_ASSERT(done);
    ZT_ASSERT(max > 0);
    ZT_ASSERT(!st_->src->reading);  // the fill is src's one read in flight
    ZT_ASSERT(st_->held == 0);
    st_->src->reading = true;
    st_->filling = true;
    st_->fill_cb = std::move(done);
    st_->fill_max = max;
    StreamState& src = *st_->src;
    if (src.closed) return post_fill(st_, closed_error("read"));
    if (src.eof) return post_fill(st_, size_t{0});
    if (src.read_error) return post_fill(st_, *src.read_error);
    try_fill(st_);
  }

  void drain(IoCallback done) override {
    ZT_ASSERT(done);
    ZT_ASSERT(!st_->dst->writing);  // the drain is dst's one write in flight
    ZT_ASSERT(st_->held > 0 && st_->pipe);
    st_->dst->writing = true;
    st_->draining = true;
    st_->drain_cb = std::move(done);
    if (st_->dst->closed) return post_drain(st_, closed_error("write"));
    try_drain(st_);
  }

  size_t held() const override { return st_->held; }

 private:
  SpliceStatePtr st_;
};

std::unique_ptr<StreamTransfer> splice_transfer(StreamStatePtr src, StreamStatePtr dst, std::shared_ptr<PipePool> pool) {
  ignore_sigpipe();
  auto st = std::make_shared<SpliceState>();
  st->src = std::move(src);
  st->dst = std::move(dst);
  st->pool = std::move(pool);
  ++st->pool->stats.transfers;
  return std::make_unique<SpliceTransfer>(std::move(st));
}

TransferStats pipe_stats(const PipePool& pool) { return pool.stats; }

std::shared_ptr<PipePool> make_pipe_pool() { return std::make_shared<PipePool>(); }

}  // namespace zt::io::real
