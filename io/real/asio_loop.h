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

#include <atomic>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <optional>

#include <asio/executor_work_guard.hpp>
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

// post from the loop's own thread queues the callback here, and one Asio
// handler runs the queue (up to kPostedPerTurnMax, then it yields to I/O):
// a chain of completions (a socket read completing a TLS read completing an
// HTTP/2 read ...) costs one pass through Asio's scheduler, not one each,
// and Asio polls epoll once per pass. post from another thread goes through
// asio::post. Timers are asio::steady_timers kept by id. A timer's
// presence in the map is what decides whether its callback may still run, so
// cancel() is exact even when Asio has already queued the completion.
//
// Drain mode (Runtime::run and run_until): the runtime runs Asio one
// handler at a time and calls drain_posted() after each, so what a handler
// posts runs right after it returns, in the same pass, instead of in an Asio
// handler of its own: Asio polls epoll (epoll_wait with timeout 0) before
// every new batch of handlers, so each completion chained through post
// (a socket read -> TLS read -> HTTP/2 read) cost a poll and a scheduler
// round before. Still never inside the call that started the operation.
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

  // Drain mode on or off (see above); only the loop's thread, outside
  // handlers. Off: every batch of posts is an Asio handler.
  void set_drain_mode(bool on) { drain_mode_ = on; }
  // Runs what was posted, FIFO, those posted meanwhile included, up to
  // kPostedPerTurnMax; the rest goes to an Asio handler (fairness with I/O).
  // The loop's thread, between Asio handlers.
  void drain_posted();
  // Hands what is still queued to an Asio handler: the runtime stops
  // draining (stop(), the end of run_until) but the callbacks must still
  // run when Asio runs again.
  void schedule_posted();

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
  bool drain_mode_ = false;        // the runtime calls drain_posted() after every handler
  // Posted from outside the loop (asio::post) and not run yet: while there
  // are any, posts from the loop queue behind them, so post stays FIFO.
  std::atomic<size_t> foreign_pending_{0};
  // Held while posted_ is not empty (see post()).
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> posted_work_;
  // Timer handlers may outlive this loop (queued in the io_context); they
  // check this before touching it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace zt::real
