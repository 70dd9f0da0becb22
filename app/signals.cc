#include "app/signals.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

namespace zt::app {
namespace {

sigset_t termination_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void block_termination_signals() {
  const sigset_t set = termination_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

const char* signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal"; }

SignalWatcher::SignalWatcher(Loop& loop, Log& log, std::function<void(int)> on_signal)
    : loop_(loop), log_(log), on_signal_(std::move(on_signal)), thread_([this] { watch(); }) {}

SignalWatcher::~SignalWatcher() {
  stopping_ = true;
  // Wakes the sigwait; the flag tells the watcher it is not a real signal.
  pthread_kill(thread_.native_handle(), SIGTERM);
  thread_.join();
}

void SignalWatcher::watch() {
  const sigset_t set = termination_signals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (stopping_) return;
    if (received_.fetch_add(1) > 0 || draining_) {
      // The control loop may be what is stuck: exit from here.
      ZT_LOG(log_, warn, "app", "second signal while draining: exiting now", {"signal", signal_name(sig)});
      _exit(0);
    }
    loop_.post([this, sig] { on_signal_(sig); });
  }
}

}  // namespace zt::app
