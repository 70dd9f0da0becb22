// The event loop a piece of core code runs on: deferred calls and timers.
//
// Contract (both runtimes):
// - post(fn) runs fn later on this loop, never inside the call to post.
// - run_after(d, fn) runs fn once after at least d; cancel(id) before it has
//   run guarantees it never runs and returns true; after it ran, false.
// - Callbacks of one loop never run concurrently with each other.
// - defer(fn) is post(fn) that waits for the work ready to run now: the
//   callbacks already posted, those they post, and the I/O completions they
//   start that are ready at once (io/sim: every event due at the current
//   virtual time; io/real: the rest of the running batch of posted callbacks
//   and the completions queued meanwhile). For a write that the work running
//   now may still add to (HTTP/2 frames a read made the session owe the
//   peer, which the application's answer to that read can join). A loop
//   without the notion falls back to post.
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
  virtual void defer(Callback fn) { post(std::move(fn)); }
};

}  // namespace zt
