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
#include <map>
#include <memory>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "io/loop.h"
#include "io/time.h"

namespace zt::real {

// now(): std::chrono::steady_clock; wall_now(): std::chrono::system_clock.
class SystemClock final : public Clock {
 public:
  MonoTime now() const override;
  WallTime wall_now() const override;
};

// post via asio::post; timers are asio::steady_timers kept by id. A timer's
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

  asio::io_context& ctx_;
  std::map<TimerId, std::unique_ptr<Timer>> timers_;
  TimerId next_id_ = 1;
  // Timer handlers may outlive this loop (queued in the io_context); they
  // check this before touching it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace zt::real
