// ztunnel's side of ZDS (in-pod mode): connects to the CNI node agent's
// socket (INPOD_UDS), says hello, and turns what the agent says into the
// pods this node proxies. Each message is answered once acted on: an add is
// acked when the pod's proxies run and nacked when they cannot start (they
// are then retried with backoff, as upstream, until the pod goes); a bad
// message is nacked and changes nothing. The agent going away changes
// nothing either: pods keep their proxies, ztunnel reconnects with backoff
// and the agent's next snapshot decides who stays (enrollment.h).
//
// Ready once the first snapshot has been applied; one pod whose proxies
// cannot start does not hold readiness back (it is reported and retried).
//
//   ZdsClient zds(env, {.path = "/var/run/ztunnel/ztunnel.sock"}, runner);
//   zds.start();
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/inpod/enrollment.h"
#include "io/env.h"
#include "io/task.h"

namespace zt::core::inpod {

// What runs pods' proxies (PodProxies on a worker, posted to from here).
class PodRunner {
 public:
  using Done = std::function<void(Result<void>)>;
  virtual ~PodRunner() = default;
  // Starts the pod's proxies inside `ns` (replacing any it has); `done` runs
  // later on this client's loop. A runner must call `done` exactly once.
  virtual void start(const std::string& uid, const PodInfo& info, NetNamespacePtr ns, Done done) = 0;
  // The pod is gone: stop accepting, drain, close.
  virtual void stop(const std::string& uid) = 0;
};

struct ZdsClientConfig {
  std::string path = "/var/run/ztunnel/ztunnel.sock";  // INPOD_UDS
  // Reconnects: from 10 ms, doubling, to 15 s (upstream's); jittered.
  Duration reconnect_initial = std::chrono::milliseconds(10);
  Duration reconnect_max = std::chrono::seconds(15);
  // A pod whose proxies cannot start: retried from 1 s, doubling, to 30 s.
  Duration pod_retry_initial = std::chrono::seconds(1);
  Duration pod_retry_max = std::chrono::seconds(30);
};

struct ZdsCounters {
  uint64_t connects = 0, connect_failures = 0, disconnects = 0;
  uint64_t messages = 0, nacks = 0;
  uint64_t pod_start_failures = 0, pod_retries = 0;
};

// A pod as the client sees it, for /config_dump.
struct PodStatus {
  std::string uid;
  PodInfo info;
  std::string netns;
  enum class State : uint8_t { starting, running, retrying } state = State::starting;
  std::string error;  // the last failure to start
  int attempts = 0;
};

class ZdsClient {
 public:
  ZdsClient(Env& env, ZdsClientConfig cfg, PodRunner& runner);
  ~ZdsClient();
  ZdsClient(const ZdsClient&) = delete;
  ZdsClient& operator=(const ZdsClient&) = delete;

  void start();
  // The first snapshot has been applied.
  bool ready() const { return ready_; }
  void on_ready(std::function<void()> fn) { on_ready_ = std::move(fn); }
  bool connected() const { return connected_; }
  const ZdsCounters& counters() const { return counters_; }
  std::vector<PodStatus> pods() const;

 private:
  struct Pending;
  Task<void> run();
  Task<void> session(PacketSocket& sock);
  // Acts on one decoded message; returns the ack's error ("" = ok).
  Task<std::string> act(ZdsRequest request, NetNamespacePtr ns);
  Task<Result<void>> start_pod(const std::string& uid);
  void stop_pod(const std::string& uid);
  void schedule_retry(const std::string& uid);
  void retry(const std::string& uid);
  Duration jittered(Duration d);

  Env& env_;
  ZdsClientConfig cfg_;
  PodRunner& runner_;
  Rng rng_;
  Enrollment enrollment_;
  struct Pod {
    PodStatus status;
    NetNamespacePtr ns;
    TimerId retry_timer = kNoTimer;
    Duration next_retry{};
    uint64_t generation = 0;  // a start's answer for an older add is ignored
  };
  std::map<std::string, Pod> pods_;
  uint64_t generation_ = 0;
  bool ready_ = false;
  bool connected_ = false;
  std::function<void()> on_ready_;
  ZdsCounters counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  Scope scope_;  // last: the session goes first
};

}  // namespace zt::core::inpod
