#include "io/real/asio_loop.h"

#include <chrono>
#include <system_error>
#include <utility>

#include <asio/post.hpp>

#include "io/assert.h"

namespace zt::real {

MonoTime SystemClock::now() const {
  auto since = std::chrono::steady_clock::now().time_since_epoch();
  return MonoTime(std::chrono::duration_cast<Duration>(since));
}

WallTime SystemClock::wall_now() const {
  return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
}

AsioLoop::AsioLoop(asio::io_context& ctx) : ctx_(ctx) {}

AsioLoop::~AsioLoop() {
  *alive_ = false;
  timers_.clear();  // cancels the waits; their handlers see alive_ == false
}

namespace {
// The loop whose drain_posted() runs on this thread right now: its posts are
// its own thread's, though Asio runs no handler at that moment.
thread_local const AsioLoop* draining_loop = nullptr;
}  // namespace

void AsioLoop::post(Callback fn) {
  ZT_ASSERT(fn);
  const bool in_drain = draining_loop == this;
  if (!in_drain && !ctx_.get_executor().running_in_this_thread()) {
    // Another thread (drain, metrics), or this one before run(): Asio's
    // queue is the locked one.
    foreign_pending_.fetch_add(1, std::memory_order_relaxed);
    asio::post(ctx_, [this, alive = alive_, fn = std::move(fn)] {
      if (!*alive) return;
      foreign_pending_.fetch_sub(1, std::memory_order_relaxed);
      fn();
    });
    return;
  }
  posted_.push_back(std::move(fn));
  // Queued callbacks are work: without this, the handler that posted them
  // could be Asio's last work, and Asio stops the run before the drain.
  if (!posted_work_) posted_work_.emplace(ctx_.get_executor());
  // In drain mode the runtime drains after the handler (or drain) this is
  // posted from, unless that would overtake callbacks posted earlier from
  // outside (then they all wait their turn in Asio's queue, as without
  // drain mode).
  if (drain_mode_ && foreign_pending_.load(std::memory_order_relaxed) == 0) return;
  schedule_posted();
}

void AsioLoop::schedule_posted() {
  if (posted_scheduled_ || posted_.empty()) return;
  posted_scheduled_ = true;
  asio::post(ctx_, [this, alive = alive_] {
    if (*alive) run_posted();
  });
}

void AsioLoop::run_posted() {
  posted_scheduled_ = false;
  drain_posted();
}

void AsioLoop::drain_posted() {
  if (posted_.empty()) return;
  if (foreign_pending_.load(std::memory_order_relaxed) > 0) return schedule_posted();  // FIFO: see post()
  const AsioLoop* outer = std::exchange(draining_loop, this);
  // Callbacks posted while these run join the same turn (FIFO), up to the cap.
  for (size_t n = 0; n < kPostedPerTurnMax && !posted_.empty(); ++n) {
    Callback fn = std::move(posted_.front());
    posted_.pop_front();
    fn();
  }
  draining_loop = outer;
  if (posted_.empty()) {
    posted_work_.reset();  // may stop Asio: nothing else to do
    return;
  }
  schedule_posted();  // the rest, after I/O had its turn
}

TimerId AsioLoop::run_after(Duration delay, Callback fn) {
  ZT_ASSERT(fn);
  TimerId id = next_id_++;
  auto t = std::make_unique<Timer>(ctx_);
  t->fn = std::move(fn);
  if (delay < Duration::zero()) delay = Duration::zero();
  t->timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(delay));
  t->timer.async_wait([this, id, alive = alive_](const std::error_code&) {
    // The error code does not matter: whether the timer is still in the map
    // decides (cancel() removes it, so an already-queued completion is inert).
    if (*alive) fire(id);
  });
  timers_.emplace(id, std::move(t));
  return id;
}

bool AsioLoop::cancel(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return false;
  timers_.erase(it);  // destroying the timer cancels its wait
  return true;
}

void AsioLoop::fire(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  Callback fn = std::move(it->second->fn);
  timers_.erase(it);
  fn();
}

}  // namespace zt::real
