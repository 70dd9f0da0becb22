// The node proxy's data path, wired from the parts: outbound capture
// (15001) routes each connection by the mesh state and sends it through the
// HBONE pool or the plain relay; inbound HBONE (15008) checks the target and
// the L4 policy, connects to the local workload and answers 200/401/503.
// Single-threaded and OS-free, so the whole path runs in the simulator.
// Each connection is reported (metrics, access log record); inbound keeps
// its open connections for recheck_policies() after a policy change.
//
//   Outbound out(env, std::move(listener_15001), state, pool, {});
//   Inbound in(env, std::move(listener_15008), server_tls, state, {});
//   out.start(); in.start();
//   ... publish a new snapshot ...; in.recheck_policies();
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <memory>

#include "core/metrics/registry.h"
#include "core/proxy/traffic_metrics.h"
#include "core/hbone/pool.h"
#include "core/hbone/server.h"
#include "core/proxy/access_log.h"
#include "core/proxy/connection_tracker.h"
#include "core/proxy/dial_budget.h"
#include "core/proxy/early_data.h"
#include "core/proxy/on_demand.h"
#include "core/proxy/outlier.h"
#include "core/copy.h"
#include "io/acceptor.h"
#include "core/mesh/routing.h"
#include "core/mesh/snapshot.h"

namespace zt::core::proxy {

// The current mesh state (the newest published snapshot).
using StateSource = std::function<std::shared_ptr<const mesh::StateSnapshot>()>;

// Destinations that would loop back into the proxy itself.
bool is_proxy_port(uint16_t port);

// In-pod (and dedicated) mode: the one workload a proxy serves, as the CNI
// node agent names the pod. Outbound takes it as the source of every
// connection, not the client's address (a reused pod IP can make an address
// lookup name the pod that had it before); inbound serves only it.
struct LocalWorkload {
  std::string name, ns, service_account;
  std::string node;  // it must be on this node (empty: any)
  bool matches(const mesh::Workload& w) const {
    return w.name == name && w.ns == ns && w.service_account == service_account && (node.empty() || w.node == node);
  }
};

// The local workload in a snapshot, remembered per snapshot (a lookup walks
// the workloads; snapshots change far less often than connections come).
class LocalWorkloadLookup {
 public:
  explicit LocalWorkloadLookup(LocalWorkload local) : local_(std::move(local)) {}
  const mesh::Workload* find(const std::shared_ptr<const mesh::StateSnapshot>& snap);
  const LocalWorkload& local() const { return local_; }

 private:
  LocalWorkload local_;
  std::weak_ptr<const mesh::StateSnapshot> seen_;
  const mesh::Workload* found_ = nullptr;
};

struct OutboundConfig {
  Duration connect_timeout = std::chrono::seconds(10);
  std::optional<uint32_t> mark = 1337;  // our own connections bypass capture
  TrafficMetrics* metrics = nullptr;      // connection metrics (reporter=source)
  AccessLogSink access_log;              // one record per connection when it ends; empty = off
  OutlierConfig outlier;                 // ejection of endpoints that fail (outbound_upstream.cc)
  OnDemand on_demand;                    // XDS_ON_DEMAND: ask for unknown sources and destinations
  std::optional<LocalWorkload> local;    // in-pod: every connection's source
};

struct OutboundCounters {
  uint64_t accepted = 0, hbone = 0, passthrough = 0, refused = 0, failed = 0;
  // Service traffic sent to another endpoint after the first failed before
  // any byte was sent; endpoints ejected from load balancing for that.
  uint64_t retried = 0, ejected = 0;
  // On demand: addresses asked for, and asks the bound cut short.
  uint64_t demanded = 0, demand_timeouts = 0;
};

// The upstream side of an outbound connection, once opened (or not).
struct OutboundUpstream {
  StreamPtr stream;       // the HBONE tunnel or TCP connection; null when it failed
  mesh::RoutePlan plan;   // the plan finally used (another endpoint after a retry)
  std::string error;      // why there is no stream
};

class Outbound {
 public:
  Outbound(Env& env, std::unique_ptr<Listener> listener, StateSource state, hbone::Pool& pool, OutboundConfig cfg);
  ~Outbound();
  void start();
  // Draws its connections from `budget` (descriptor headroom; io/acceptor.h).
  void set_budget(ConnectionBudget* budget) { acceptor_.set_budget(budget); }
  const OutboundCounters& counters() const { return counters_; }
  // Stops accepting; connections in flight go on.
  void drain() { acceptor_.drain(); }
  size_t active() const { return active_; }
  // Resets every connection in flight (a pod's proxies cut at their drain
  // deadline): closing would send the client a FIN, an end it could take
  // for a complete answer. The copies then reset their upstreams in turn.
  void abort_all();
  const OutlierDetector& outliers() const { return outliers_; }
  // Routes and carries one connection to `dst` (captured, or named by SOCKS5).
  Task<void> forward(StreamPtr downstream, Endpoint dst);

 private:
  enum class OpenFailure : uint8_t;
  struct Opened;
  Task<void> serve(StreamPtr downstream);
  // In outbound_upstream.cc: open the plan's upstream; when that fails
  // before any byte was sent, eject the endpoint and, for service traffic,
  // try one other endpoint.
  mesh::RouteOptions route_options() const;
  Task<OutboundUpstream> connect_upstream(const mesh::Workload& source, EarlyData& client, Endpoint dst,
                                          mesh::RoutePlan plan);
  Task<Opened> open_upstream(const mesh::Workload& source, EarlyData& client, const mesh::RoutePlan& plan);
  Task<Opened> open_hbone(const mesh::Workload& source, EarlyData& client, const mesh::RoutePlan& plan);
  void record_outcome(const mesh::RoutePlan& plan, OpenFailure failure);

  Env& env_;
  StateSource state_;
  hbone::Pool& pool_;
  OutboundConfig cfg_;
  Rng rng_;
  std::optional<LocalWorkloadLookup> local_;
  OutboundCounters counters_;
  OutlierDetector outliers_;
  metrics::Counter* ejections_metric_ = nullptr;
  size_t active_ = 0;  // connections forwarded, captured or from SOCKS5
  // The client streams of the connections in flight, by a number of ours
  // (each registered by its forward() frame while it lives).
  std::map<uint64_t, Stream*> forwarding_;
  uint64_t next_forwarding_ = 0;
  Acceptor acceptor_;  // last: its tasks go first
};

// Counts a connection as active for as long as it lives.
class ActiveGuard {
 public:
  explicit ActiveGuard(size_t& n) : n_(n) { ++n_; }
  ~ActiveGuard() { --n_; }
  ActiveGuard(const ActiveGuard&) = delete;

 private:
  size_t& n_;
};

// Requests of one HBONE connection that ended before their answer with no
// access log record of their own (InboundConfig::streams_summary).
struct StreamsSummary {
  uint64_t connection = 0;    // hbone::InboundRequest::connection_id
  Endpoint peer;              // the connection's client
  std::string identity;       // its verified identity (SPIFFE id), if any
  uint64_t cancelled = 0;     // reset by the client before the answer
  uint64_t refused[3] = {0, 0, 0};  // answered 503 by a dial bound, by DialRefusal
  bool connection_closed = false;   // false: an interim summary of a connection still open
  uint64_t refused_total() const { return refused[0] + refused[1] + refused[2]; }
};

struct InboundConfig {
  Duration connect_timeout = std::chrono::seconds(10);
  std::optional<uint32_t> mark = 1337;  // connections to local workloads bypass inbound capture
  TrafficMetrics* metrics = nullptr;      // connection metrics (reporter=destination)
  AccessLogSink access_log;              // one record per connection when it ends; empty = off
  OnDemand on_demand;                    // XDS_ON_DEMAND: ask for an unknown destination workload
  // HBONE: dials to local workloads in flight, bounded per HBONE
  // connection, per peer and per listener (so per worker), heavy peers
  // refused first when the listener is near full (dial_budget.h); a request
  // beyond is answered 503 at once. They bound what a peer that opens and
  // resets streams faster than dials end can hold, and keep it from taking
  // what other peers need.
  DialLimits dials;
  // The budget shared by the loop's listeners (a worker's node listeners
  // and its pods'), so the bound holds per worker whatever the number of
  // listeners; null: the listener has one of its own, from `dials`.
  DialBudget* shared_dials = nullptr;
  // Requests reset by the client before our answer, or refused by the dial
  // bounds, write no access log record each: one summary per HBONE
  // connection (target "access") when it ends, and, for a connection that
  // lives on, at most one every streams_summary_interval. `streams_summary`
  // gets the same (tests); empty: only the log.
  Duration streams_summary_interval = std::chrono::seconds(10);
  std::function<void(const StreamsSummary&)> streams_summary;
  h2::Settings h2 = h2::Settings::server();  // HBONE's HTTP/2 (unanswered_requests_max, ...)
  std::optional<LocalWorkload> local;  // in-pod: the only workload served; tunnels to another are refused
  // The workload sees the client's address, not ours (upstream's original
  // source: IP_TRANSPARENT and a bind to the client's IP; the pod's
  // redirection rules route the replies back to us).
  bool original_source = false;
  void set_original_source_of(SocketOptions& opts, const IpAddr& client, const IpAddr& workload) const;
};

struct InboundCounters {
  uint64_t requests = 0, allowed = 0, denied = 0, unknown_target = 0, misdirected = 0, upstream_failed = 0;
  uint64_t policy_closed = 0;  // open connections a policy change denied (recheck_policies)
  uint64_t demanded = 0, demand_timeouts = 0;  // on demand (as OutboundCounters)
  // Guards: requests the client reset before our answer (their dial
  // stopped at once), and requests refused by a dial bound (any of them;
  // dials().refused(...) tells which).
  uint64_t cancelled = 0, dials_refused = 0;
};

class Inbound {
 public:
  Inbound(Env& env, std::unique_ptr<Listener> listener, std::shared_ptr<const tls::TlsContext> tls, StateSource state,
          InboundConfig cfg = {});
  ~Inbound();
  void start();
  // Draws its connections from `budget` (descriptor headroom; io/acceptor.h).
  void set_budget(ConnectionBudget* budget) { server_->set_budget(budget); }
  const InboundCounters& counters() const { return counters_; }
  // Stops accepting and sends GOAWAY; tunnels in flight go on.
  void drain() { server_->drain(); }
  // New handshakes use `tls` (new roots); open connections keep theirs.
  void set_tls(std::shared_ptr<const tls::TlsContext> tls) { server_->set_tls(std::move(tls)); }
  size_t active() const { return active_; }
  size_t dials_in_flight() const { return dials_.in_flight(); }
  const DialBudget& dials() const { return dials_; }
  // HBONE connections with requests being served or not yet summarized.
  size_t connections_tracked() const { return conn_streams_.size(); }
  const hbone::ServerCounters& server_counters() const { return server_->counters(); }
  std::vector<h2::Connection::Unread> unread() const { return server_->unread(); }
  // Re-authorizes every open tunnel against the current state and resets
  // the ones now denied (call after publishing a new snapshot). Returns how
  // many were closed.
  size_t recheck_policies();
  // Resets every tunnel relaying to its workload (see Outbound::abort_all).
  void abort_all() { tracker_.abort_all(); }

 private:
  void on_request(hbone::InboundRequest req, hbone::Answer answer);
  Task<void> serve(hbone::InboundRequest req, hbone::Answer answer);

  Env& env_;
  StateSource state_;
  InboundConfig cfg_;
  std::optional<LocalWorkloadLookup> local_;
  void count_guard(std::string_view family, std::string_view reason);
  // Per HBONE connection: its requests being served, and those that ended
  // before their answer, not yet summarized.
  struct ConnStreams {
    size_t serving = 0;
    bool open = true;
    MonoTime last_summary{};
    StreamsSummary pending;
  };
  class Serving;
  void note_request(const hbone::InboundRequest& req);
  void request_done(uint64_t connection);
  void connection_closed(uint64_t connection);
  // Counts a request that ended before its answer (refused: by which bound).
  void note_unanswered(uint64_t connection, std::optional<DialRefusal> refused);
  void write_summary(ConnStreams& c, bool closed);
  InboundCounters counters_;
  size_t active_ = 0;
  bool stopping_ = false;
  std::unique_ptr<DialBudget> own_dials_;  // when no shared one; before scope_: tickets are released by the tasks
  DialBudget& dials_;
  const uint32_t dials_listener_;  // this listener's number in dials_
  uint64_t dial_key(uint64_t connection) const { return DialBudget::connection_key(dials_listener_, connection); }
  std::map<uint64_t, ConnStreams> conn_streams_;  // before scope_: the tasks' Serving updates it
  ConnectionTracker tracker_;  // before scope_: the tasks hold handles into it
  Scope scope_;  // before server_: requests in flight go after the server stops
  std::unique_ptr<hbone::Server> server_;
};

// Inbound plaintext (15006): captured connections to a local workload from
// outside the mesh, checked against policy without an identity, then relayed.
class InboundPlaintext {
 public:
  InboundPlaintext(Env& env, std::unique_ptr<Listener> listener, StateSource state, InboundConfig cfg = {});
  ~InboundPlaintext();
  void start();
  // Draws its connections from `budget` (descriptor headroom; io/acceptor.h).
  void set_budget(ConnectionBudget* budget) { acceptor_.set_budget(budget); }
  const InboundCounters& counters() const { return counters_; }
  void drain() { acceptor_.drain(); }
  size_t active() const { return acceptor_.serving(); }
  // As Inbound::recheck_policies, for plaintext connections (no identity).
  size_t recheck_policies();
  void abort_all() { tracker_.abort_all(); }

 private:
  Task<void> serve(StreamPtr downstream);

  Env& env_;
  StateSource state_;
  InboundConfig cfg_;
  std::optional<LocalWorkloadLookup> local_;
  InboundCounters counters_;
  ConnectionTracker tracker_;  // before the acceptor: the tasks hold handles into it
  Acceptor acceptor_;          // last: its tasks go first
};

}  // namespace zt::core::proxy
