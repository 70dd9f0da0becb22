// The binary's threads: one control thread (admin, stats, readiness,
// signals, drain) and ZTUNNEL_WORKER_THREADS data-plane workers. Each worker
// is an event loop of its own with its own listeners on the same ports
// (SO_REUSEPORT: the kernel spreads new connections across them), its own
// HBONE pool and metrics; a connection lives on the worker that accepted it,
// so core code stays single-threaded. What workers share is immutable or
// locked: the configuration, the published mesh snapshot, the certificates.
//
//   Worker w(0, shared);
//   if (auto r = w.listen(); !r) fail(r.error());
//   w.start([&] { /* on w's thread, once its loop ended */ });
//   w.drain(deadline);             // from any thread; w.finished() once done
//   w.copy_metrics([&](core::metrics::Registry copy) { /* on w's thread */ });
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "app/config.h"
#include "app/metrics_scrape.h"
#include "app/certificate_store.h"
#include "core/inpod/pod_proxies.h"
#include "core/metrics/registry.h"
#include "core/proxy/proxy.h"
#include "core/proxy/socks5.h"
#include "io/real/runtime.h"

namespace zt::app {

// The newest published mesh snapshot, readable from every thread.
class SharedState {
 public:
  SharedState() = default;
  explicit SharedState(std::shared_ptr<const core::mesh::StateSnapshot> s) : current_(std::move(s)) {}
  std::shared_ptr<const core::mesh::StateSnapshot> get() const { return current_.load(); }
  void set(std::shared_ptr<const core::mesh::StateSnapshot> s) { current_.store(std::move(s)); }

 private:
  std::atomic<std::shared_ptr<const core::mesh::StateSnapshot>> current_;
};

// On demand (XDS_ON_DEMAND): asks the control plane for an Address; any
// thread may call it, and `answered` runs on the control thread.
using Demand = std::function<void(std::string key, std::function<void()> answered)>;

// What every worker uses; each member is safe from any thread, except
// server_tls, which is this worker's own (a TlsContext caches unlocked).
struct WorkerShared {
  const Config& cfg;
  SharedState& state;
  CertificateStore& certs;
  std::shared_ptr<const tls::TlsContext> server_tls;
  Log& log;
  Demand demand;  // empty: not on demand
  ConnectionBudget* budget = nullptr;  // the data path's share of descriptors (app/descriptors.h)
};

// The endpoints a listener address stands for. Our sockets are v6-only, so
// "[::]" is [::] and 0.0.0.0, and "localhost" 127.0.0.1 and (with IPv6) [::1]:
// what upstream's dual-stack listeners accept.
std::vector<Endpoint> endpoints_of(const ListenAddr& addr, bool ipv6);
// The pod-facing listener endpoints for `addr`: endpoints_of(addr), or with
// --listen-on-workload-ips, addr's port on each IP of this node's workloads.
std::vector<Endpoint> pod_endpoints(const Config& cfg, const core::mesh::StateSnapshot& state, const ListenAddr& addr);

class Worker final : public MetricsSource {
 public:
  Worker(size_t index, WorkerShared shared);
  ~Worker() override;  // joins the thread
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Opens this worker's listeners and builds its proxies; on the caller's
  // thread, before start(). Errors name the address.
  Result<void> listen();
  // Runs the worker's loop on its own thread; `on_finished` runs there once
  // the loop has ended (drained, or nothing to serve).
  void start(std::function<void()> on_finished);
  // Stops accepting and lets connections run until they end or `deadline`
  // (on the steady clock) passes; then the worker's loop ends. Any thread.
  void drain(Duration deadline);
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  // Hands `reply` a copy of this worker's metrics, taken on the worker's
  // thread (at once, on the caller's, when the worker has finished). Any
  // thread; never blocks.
  void copy_metrics(std::function<void(core::metrics::Registry)> reply) override;
  // A new snapshot was published: re-check open connections against its
  // policies (on the worker's own thread). Any thread.
  void state_changed();
  // New roots (root rotation): handshakes from now on, inbound and outbound,
  // verify against them; open connections keep their sessions. Any thread.
  void roots_changed(std::shared_ptr<const tls::TlsContext> server_tls);
  // Listening endpoints (one line each), for the start-up log.
  std::vector<std::string> listening() const;

  // In-pod mode: runs an enrolled pod's proxies on this worker (any thread;
  // `done` runs on this worker's thread once they run or could not start).
  void start_pod(std::string uid, core::inpod::PodInfo info, NetNamespacePtr ns,
                 std::function<void(Result<void>)> done);
  void stop_pod(std::string uid);

 private:
  Result<void> open_listeners();
  void build_pod_proxies();
  Result<std::shared_ptr<const tls::TlsContext>> pod_server_tls(const core::proxy::LocalWorkload& local);
  core::proxy::OnDemand on_demand();
  void drain_now(Duration deadline);
  void poll_drain(MonoTime until);
  Result<std::shared_ptr<const tls::TlsContext>> client_context(const core::hbone::PoolKey& key);

  const size_t index_;
  WorkerShared shared_;
  io::real::Runtime rt_;
  core::metrics::Registry registry_;
  core::proxy::TrafficMetrics traffic_{registry_};
  // Per source identity, with the credentials it was built from: a new
  // certificate for the identity makes a new context.
  struct ClientContext {
    std::shared_ptr<const tls::Credentials> creds;
    std::shared_ptr<const tls::TlsContext> ctx;
  };
  std::map<std::string, ClientContext> client_contexts_;
  std::unique_ptr<core::hbone::Pool> pool_;
  // Dials to local workloads in flight, bounded once per worker over all
  // its inbound listeners and pods' (the descriptor budget reserves one
  // such bound per worker: app/descriptors.h). Before the proxies.
  core::proxy::DialBudget dials_;
  std::vector<std::unique_ptr<core::proxy::Outbound>> outbounds_;
  std::vector<std::unique_ptr<core::proxy::Inbound>> inbounds_;
  std::vector<std::unique_ptr<core::proxy::InboundPlaintext>> plaintexts_;
  std::vector<std::unique_ptr<core::proxy::Socks5Server>> socks_;
  std::unique_ptr<core::inpod::PodProxies> pods_;  // in-pod mode
  std::vector<std::string> listening_;
  std::set<Endpoint> open_;
  std::shared_ptr<const tls::TlsContext> server_tls_;  // this worker's; replaced on root rotation
  bool dedicated_tls_ = false;  // server_tls_ presents the dedicated workload's identity
  bool running_ = false;
  bool draining_ = false;
  std::atomic<bool> finished_ = false;
  std::thread thread_;
};

}  // namespace zt::app
