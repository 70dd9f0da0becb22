// The proxies of the pods enrolled on one loop (a worker thread in the
// binary, a node host in the simulator). Per pod, as upstream's in-pod mode:
// listeners on 15001 (outbound), 15006 (inbound plaintext) and 15008 (HBONE)
// opened inside the pod's network namespace, every socket marked 1337 so the
// pod's redirection rules let ztunnel's own connections through, an HBONE
// pool of its own (its connections leave from the pod's namespace), and a
// server certificate that is the pod's identity, as the CNI agent named the
// pod, never whatever the state says about an address.
//
//   PodProxies pods(env, cfg, state, tls);
//   if (auto r = pods.start(uid, info, ns); !r) retry later (r.error() says why);
//   pods.stop(uid);                 // stop accepting; connections end or are cut at the deadline
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/hbone/pool.h"
#include "core/inpod/zds.h"
#include "core/proxy/proxy.h"
#include "io/env.h"

namespace zt::core::inpod {

struct PodProxyConfig {
  uint16_t outbound_port = 15001;
  uint16_t inbound_plaintext_port = 15006;
  uint16_t inbound_port = 15008;
  bool ipv6 = false;     // also listen on [::]
  std::string node;      // the node these pods run on (their workloads name it)
  uint32_t mark = 1337;  // SO_MARK on every pod-side socket
  Duration drain_deadline = std::chrono::seconds(5);  // CONNECTION_TERMINATION_DEADLINE
  proxy::OutboundConfig out;  // for every pod; `local` is set per pod
  proxy::InboundConfig in;  // in.shared_dials: the loop's dial budget, shared with its other listeners
  hbone::PoolConfig pool;
  // The data path's share of descriptors, drawn from by every pod listener
  // as by the node-level ones (io/acceptor.h); null: unbounded.
  ConnectionBudget* budget = nullptr;
};

// What a pod needs that the loop cannot make alone: the server context that
// presents the pod's own certificate, and the pool's client contexts.
struct PodTls {
  std::function<Result<std::shared_ptr<const tls::TlsContext>>(const proxy::LocalWorkload&)> server;
  hbone::Pool::ContextFor client;
};

struct PodProxiesCounters {
  uint64_t started = 0, start_failures = 0, stopped = 0, cut_at_deadline = 0;
};

class PodProxies {
 public:
  PodProxies(Env& env, PodProxyConfig cfg, proxy::StateSource state, PodTls tls);
  ~PodProxies();
  PodProxies(const PodProxies&) = delete;
  PodProxies& operator=(const PodProxies&) = delete;

  // Opens the pod's listeners inside `ns` and starts its proxies. A pod
  // running already is stopped first (its sandbox was recreated). Errors
  // name the listener that could not be opened; nothing is left open then.
  Result<void> start(const std::string& uid, const PodInfo& info, NetNamespacePtr ns);
  // Stops accepting at once; open connections run until they end or the
  // drain deadline passes, then are cut. No-op for a pod not running.
  void stop(const std::string& uid);
  // Every pod stops accepting (the node drains).
  void drain_all();

  bool running(const std::string& uid) const { return pods_.contains(uid); }
  std::vector<std::string> uids() const;
  size_t size() const { return pods_.size(); }
  size_t retiring() const { return retiring_.size(); }
  // Connections open in every pod, running or retiring.
  size_t active() const;
  // The listening endpoints of a running pod (empty when not running).
  std::vector<Endpoint> listening(const std::string& uid) const;
  // A running pod's HBONE pool and (IPv4) outbound and inbound, for what
  // inspects them (the simulator's invariants); null when the pod is not
  // running.
  const hbone::Pool* pool(const std::string& uid) const;
  const proxy::Outbound* outbound(const std::string& uid) const;
  const proxy::Inbound* inbound(const std::string& uid) const;
  // After a new snapshot: re-authorize open inbound connections.
  size_t recheck_policies();
  // New roots: every pod's server context is rebuilt for new handshakes.
  void roots_changed();
  const PodProxiesCounters& counters() const { return counters_; }

 private:
  struct Pod;
  void retire(std::unique_ptr<Pod> pod);
  void poll_retiring();

  Env& env_;
  PodProxyConfig cfg_;
  proxy::StateSource state_;
  PodTls tls_;
  std::map<std::string, std::unique_ptr<Pod>> pods_;
  std::vector<std::unique_ptr<Pod>> retiring_;  // draining, in the order they stopped
  TimerId poll_timer_ = kNoTimer;
  PodProxiesCounters counters_;
};

}  // namespace zt::core::inpod
