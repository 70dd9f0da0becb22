// The production runtime: one single-threaded event loop over the operating
// system (Asio underneath, hidden here) and the Env that core code runs on.
//
// A Runtime owns an io_context and, over it, a Clock (steady_clock and
// system_clock), a Loop (posts and timers), a Network (TCP and UDP sockets),
// the root Rng, inert FaultPoints and a Log. Everything created through env() must
// be destroyed before the Runtime, and used only from the thread that runs it.
//
//   zt::io::real::Runtime rt;
//   zt::Scope scope;
//   scope.spawn(serve(rt.env()));
//   rt.run();                                      // until stop() or out of work
//   bool ok = rt.run_until([&] { return done; }, 5s);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "io/env.h"
#include "io/log.h"
#include "io/time.h"

namespace zt::io::real {

class Runtime {
 public:
  // No seed: the root Rng is seeded from std::random_device. No log: one
  // shared by such runtimes, on standard error, filtered by RUST_LOG
  // (default "warn"). The log must outlive the runtime.
  explicit Runtime(std::optional<uint64_t> seed = std::nullopt, Log* log = nullptr);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  Env& env();
  Clock& clock();
  Loop& loop();
  Network& net();
  Rng& rng();

  // Runs handlers until stop() is called or nothing is left to wait for
  // (no posts, timers or operations in flight).
  void run();
  // Runs until done() returns true (checked before starting and after each
  // handler), wall_timeout passes, stop() is called or nothing is left to
  // wait for. Returns done().
  bool run_until(const std::function<bool()>& done, Duration wall_timeout);
  // Makes the current run()/run_until() return after the handler that is
  // running; called while neither runs, the next one returns at once.
  // Thread-safe (e.g. from a signal-watching thread).
  void stop();
  // On: run() waits for work that may come later (a thread that will post,
  // listeners opened later) instead of returning when nothing is pending;
  // only stop() ends it. Set before run().
  void keep_alive(bool on);

  // The asio::io_context*, for io/real code that adds its own Asio objects.
  void* native_context();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zt::io::real
