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

void AsioLoop::post(Callback fn) {
  ZT_ASSERT(fn);
  asio::post(ctx_, std::move(fn));
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
