// The event loop a piece of core code runs on: deferred calls and timers.
//
// Contract (both runtimes):
// - post(fn) runs fn later on this loop, never inside the call to post.
// - run_after(d, fn) runs fn once after at least d; cancel(id) before it has
//   run guarantees it never runs and returns true; after it ran, false.
// - Callbacks of one loop never run concurrently with each other.
//
//   TimerId t = env.loop.run_after(10s, [this] { on_idle_timeout(); });
//   env.loop.cancel(t);
#pragma once

#include <cstdint>
#include <functional>

#include "io/time.h"

namespace zt {

using Callback = std::function<void()>;
using TimerId = uint64_t;
inline constexpr TimerId kNoTimer = 0;

class Loop {
 public:
  virtual ~Loop() = default;
  virtual void post(Callback fn) = 0;
  virtual TimerId run_after(Duration delay, Callback fn) = 0;
  virtual bool cancel(TimerId id) = 0;
};

}  // namespace zt
