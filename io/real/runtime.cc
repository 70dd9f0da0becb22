#include "io/real/runtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <random>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include "io/faults.h"
#include "io/real/asio_loop.h"
#include "io/real/asio_network.h"
#include "io/real/process_log.h"
#include "io/rng.h"

namespace zt::io::real {

namespace {

// Runtimes made without a log (tests, tools) share one: standard error,
// filtered by RUST_LOG, warnings and errors when it is unset or invalid.
Log& default_log() {
  static ProcessLog* log = [] {
    auto* l = new ProcessLog(LogFormat::plain, 2);
    const char* spec = std::getenv("RUST_LOG");
    auto f = LogFilter::parse(spec && *spec ? spec : "warn");
    l->set_filter(f ? *f : *LogFilter::parse("warn"));
    return l;
  }();
  return *log;
}

uint64_t random_seed() {
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ uint64_t(rd());
}

}  // namespace

struct Runtime::Impl {
  Impl(uint64_t seed, Log& log) : rng(seed), env{clock, loop, net, rng, faults, log} {}

  // Declared first, destroyed last: sockets and timers below use it.
  asio::io_context ctx{1};
  SystemClock clock;
  AsioLoop loop{ctx};
  AsioNetwork net{ctx};
  Rng rng;
  NoFaults faults;
  Env env;
  std::atomic<bool> stop_requested{false};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> keep_alive;

  // Clears a stop() made outside a run; true if there was one.
  bool consume_stop() {
    if (stop_requested.exchange(false)) return true;
    ctx.restart();
    // A stop() from another thread between the exchange and restart() set
    // the flag again; ctx.stop() after restart() stops the run by itself.
    return stop_requested.exchange(false);
  }
};

Runtime::Runtime(std::optional<uint64_t> seed, Log* log)
    : impl_(std::make_unique<Impl>(seed ? *seed : random_seed(), log ? *log : default_log())) {}

Runtime::~Runtime() = default;

Env& Runtime::env() { return impl_->env; }
Clock& Runtime::clock() { return impl_->clock; }
Loop& Runtime::loop() { return impl_->loop; }
Network& Runtime::net() { return impl_->net; }
Rng& Runtime::rng() { return impl_->rng; }

void Runtime::run() {
  if (impl_->consume_stop()) return;
  impl_->ctx.run();
  impl_->stop_requested = false;
}

bool Runtime::run_until(const std::function<bool()>& done, Duration wall_timeout) {
  if (done()) return true;
  // Clamped so that now + timeout cannot overflow (Duration::max() = forever).
  constexpr Duration kForever = std::chrono::hours(24 * 365 * 100);
  Duration timeout = std::clamp(wall_timeout, Duration::zero(), kForever);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
  if (impl_->consume_stop()) return done();
  asio::io_context& ctx = impl_->ctx;
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    size_t n = ctx.run_one_for(deadline - now);
    if (done()) break;
    // Nothing ran and the context stopped: stop() was called or it ran out
    // of work (Asio stops an io_context that has none).
    if (n == 0 && ctx.stopped()) break;
  }
  impl_->stop_requested = false;
  return done();
}

void Runtime::stop() {
  impl_->stop_requested = true;
  impl_->ctx.stop();
}

void Runtime::keep_alive(bool on) {
  if (on && !impl_->keep_alive) impl_->keep_alive.emplace(impl_->ctx.get_executor());
  if (!on) impl_->keep_alive.reset();
}

void* Runtime::native_context() { return &impl_->ctx; }

}  // namespace zt::io::real
