// The node's drain (SIGTERM, SIGINT, POST /quitquitquit): readiness turns
// 500, the control plane stops watching, every worker stops accepting,
// sends GOAWAY on its inbound HBONE connections and lets connections run
// until they end or CONNECTION_TERMINATION_DEADLINE passes (each worker
// checks its own every 50 ms); once every worker's loop has ended,
// `on_drained` runs and the process exits 0. Workers report their end by a
// post to the control loop: the control loop does not poll them.
//
//   Drain drain(control_env, workers, readiness, deadline, [&] { control_rt.stop(); });
//   worker.start([&] { drain.worker_finished(); });   // from the worker's thread
//   drain.begin("SIGTERM");
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/worker.h"
#include "core/control/readiness.h"
#include "io/env.h"

namespace zt::app {

class Drain {
 public:
  Drain(Env& control, const std::vector<std::unique_ptr<Worker>>& workers, core::control::Readiness& readiness,
        Duration deadline, std::function<void()> on_drained);

  // On the control loop; a second call does nothing.
  void begin(std::string_view reason);
  bool draining() const { return draining_; }
  // Any thread: a worker's loop has ended.
  void worker_finished();

 private:
  void finished_one();

  Env& env_;
  const std::vector<std::unique_ptr<Worker>>& workers_;
  core::control::Readiness& readiness_;
  const Duration deadline_;
  std::function<void()> on_drained_;
  core::control::ReadyBlock draining_block_;
  bool draining_ = false;
  size_t finished_ = 0;
};

}  // namespace zt::app
