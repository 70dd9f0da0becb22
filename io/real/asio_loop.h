// Clock and Loop over the operating system and an asio::io_context.
//
// Internal to io/real (includes Asio); core code sees only zt::Clock and
// zt::Loop through Env. Runtime (io/real/runtime.h) puts these together.
//
//   asio::io_context ctx;
//   AsioLoop loop(ctx);
//   TimerId t = loop.run_after(10ms, [] { ... });
//   loop.cancel(t);   // true: the callback will never run
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <memory>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "io/loop.h"
#include "io/time.h"

namespace zt::io::real {

// now(): std::chrono::steady_clock; wall_now(): std::chrono::system_clock.
class SystemClock final : public Clock {
 public:
  MonoTime now() const override;
  WallTime wall_now() const override;
};

// post from the loop's own thread queues the callback here, and one Asio
// handler runs the queue (up to kPostedPerTurnMax, then it yields to I/O):
// a chain of completions (a socket read completing a TLS read completing an
// HTTP/2 read ...) costs one pass through Asio's scheduler, not one each,
// and Asio polls epoll once per pass. post from another thread goes through
// asio::post. Timers are asio::steady_timers kept by id. A timer's
// presence in the map is what decides whether its callback may still run, so
// cancel() is exact even when Asio has already queued the completion.
class AsioLoop final : public Loop {
 public:
  explicit AsioLoop(asio::io_context& ctx);
  ~AsioLoop() override;
  AsioLoop(const AsioLoop&) = delete;
  AsioLoop& operator=(const AsioLoop&) = delete;

  void post(Callback fn) override;
  TimerId run_after(Duration delay, Callback fn) override;
  bool cancel(TimerId id) override;

  size_t pending_timers() const { return timers_.size(); }

 private:
  struct Timer {
    explicit Timer(asio::io_context& ctx) : timer(ctx) {}
    asio::steady_timer timer;
    Callback fn;
  };

  void fire(TimerId id);
  void run_posted();

  // How many posted callbacks one Asio handler runs before letting I/O and
  // timers in: bounds the latency a burst of posts adds to everything else.
  static constexpr size_t kPostedPerTurnMax = 64;

  asio::io_context& ctx_;
  std::map<TimerId, std::unique_ptr<Timer>> timers_;
  TimerId next_id_ = 1;
  std::deque<Callback> posted_;  // posted on this thread, not yet run
  bool posted_scheduled_ = false;  // a run_posted() handler is queued in Asio
  // Timer handlers may outlive this loop (queued in the io_context); they
  // check this before touching it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace zt::io::real
