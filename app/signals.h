// SIGTERM and SIGINT: blocked in every thread (block_termination_signals()
// runs first thing in main, before any thread exists), then taken by one
// watcher thread with sigwait and handed to the control loop as a post.
// The first signal asks for a drain; a signal while draining (a second one,
// or one after /quitquitquit) exits at once, as upstream does ("double
// Ctrl+C").
//
//   block_termination_signals();
//   SignalWatcher signals(control_loop, [&](int sig) { drain.begin(signal_name(sig)); });
#pragma once

#include <atomic>
#include <functional>
#include <thread>

#include "io/log.h"
#include "io/loop.h"

namespace zt::app {

void block_termination_signals();
const char* signal_name(int sig);

class SignalWatcher {
 public:
  // `on_signal` runs on `loop`'s thread. `log` must outlive the watcher.
  SignalWatcher(Loop& loop, Log& log, std::function<void(int sig)> on_signal);
  ~SignalWatcher();  // stops and joins the watcher thread
  // A drain started some other way (/quitquitquit): the next signal exits.
  void draining() { draining_ = true; }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  void watch();

  Loop& loop_;
  Log& log_;
  std::function<void(int)> on_signal_;
  std::atomic<bool> stopping_ = false;
  std::atomic<int> received_ = 0;
  std::atomic<bool> draining_ = false;
  std::thread thread_;
};

}  // namespace zt::app
