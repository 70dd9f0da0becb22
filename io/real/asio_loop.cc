#include "io/real/asio_loop.h"

#include <chrono>
#include <system_error>
#include <utility>

#include <asio/post.hpp>

#include "io/assert.h"

namespace zt::io::real {

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

void AsioLoop::post(Callback fn) {
  ZT_ASSERT(fn);
  if (!ctx_.get_executor().running_in_this_thread()) {
    asio::post(ctx_, std::move(fn));  // another thread (drain, metrics): Asio's queue is the locked one
    return;
  }
  posted_.push_back(std::move(fn));
  if (posted_scheduled_) return;
  posted_scheduled_ = true;
  asio::post(ctx_, [this, alive = alive_] {
    if (*alive) run_posted();
  });
}

void AsioLoop::run_posted() {
  // Callbacks posted while these run join the same turn (FIFO), up to the cap.
  for (size_t n = 0; n < kPostedPerTurnMax && !posted_.empty(); ++n) {
    Callback fn = std::move(posted_.front());
    posted_.pop_front();
    fn();
  }
  posted_scheduled_ = false;
  if (posted_.empty()) return;
  posted_scheduled_ = true;
  asio::post(ctx_, [this, alive = alive_] {
    if (*alive) run_posted();
  });
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

}  // namespace zt::io::real
