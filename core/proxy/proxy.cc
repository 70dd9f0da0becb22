#include "core/proxy/proxy.h"

#include "core/hbone/headers.h"
#include "core/proxy/proxy_protocol.h"
#include "core/proxy/traffic_metrics.h"
#include "core/mesh/rbac.h"
#include "core/mesh/routing.h"
#include "io/async.h"

namespace zt::core::proxy {

bool is_proxy_port(uint16_t port) { return port == 15001 || port == 15006 || port == 15008 || port == 15080; }

namespace {

// The access log's error for a copy that did not end with FIN both ways.
std::string_view copy_error(CopyEnd end, bool a_is_source) {
  if (end == CopyEnd::finished) return {};
  return (end == CopyEnd::reset_a) == a_is_source ? "connection reset by the source"
                                                  : "connection reset by the destination";
}

// Ends an inbound connection's report: a policy change that closed it, or
// how the copy ended.
void report_closed(TrafficReport& report, const ConnectionTracker::Handle& tracked, const CopyStats& stats,
                   CopyEnd end) {
  if (tracked.revoked()) {
    report.closed(stats.bytes_a_to_b, stats.bytes_b_to_a, kPolicyChangeError, kFlagDenied);
  } else {
    report.closed(stats.bytes_a_to_b, stats.bytes_b_to_a, copy_error(end, true));
  }
}

std::string rejection(const mesh::Decision& d) {
  return "connection closed due to policy rejection: " +
         (d.policy.empty() ? std::string(mesh::to_string(d.reason)) : std::string(mesh::to_string(d.reason)) + " " + d.policy);
}

}  // namespace

// --- outbound -----------------------------------------------------------------

const mesh::Workload* LocalWorkloadLookup::find(const std::shared_ptr<const mesh::StateSnapshot>& snap) {
  if (!snap) return nullptr;
  if (seen_.lock() == snap) return found_;
  found_ = nullptr;
  for (const auto& [uid, w] : snap->workloads().by_uid) {
    if (local_.matches(*w)) {
      found_ = w.get();
      break;
    }
  }
  seen_ = snap;
  return found_;
}

Outbound::Outbound(Env& env, std::unique_ptr<Listener> listener, StateSource state, hbone::Pool& pool,
                   OutboundConfig cfg)
    : env_(env), state_(std::move(state)), pool_(pool), cfg_(cfg), rng_(env.rng.stream("outbound")),
      local_(cfg.local ? std::optional<LocalWorkloadLookup>(*cfg.local) : std::nullopt),
      outliers_(env.clock, cfg.outlier),
      acceptor_(env, std::move(listener), [this](StreamPtr s) { return serve(std::move(s)); }) {
  if (cfg_.metrics) ejections_metric_ = &declare_ejections_metric(cfg_.metrics->registry());
}

Outbound::~Outbound() = default;

void Outbound::start() { acceptor_.start(); }

Task<void> Outbound::serve(StreamPtr downstream) {
  ++counters_.accepted;
  Result<Endpoint> dst = downstream->original_dst();
  if (!dst) {
    ++counters_.refused;  // not captured: nowhere to go
    downstream->abort();
    co_return;
  }
  co_await forward(std::move(downstream), *dst);
}

void Outbound::abort_all() {
  // abort() fires no completion inside it: the frames (and the map) stay.
  for (auto& [id, client] : forwarding_) client->abort();
}

Task<void> Outbound::forward(StreamPtr downstream, Endpoint dst) {
  ActiveGuard active(active_);
  struct Forwarding {
    std::map<uint64_t, Stream*>& all;
    uint64_t id;
    ~Forwarding() { all.erase(id); }
  } forwarding{forwarding_, next_forwarding_++};
  forwarding_[forwarding.id] = downstream.get();
  auto snap = state_();
  const IpAddr src_ip = downstream->peer().ip;
  // In a pod's own proxy the source is that pod, whatever address the state
  // gives the client (a reused IP may still name the pod that had it).
  auto find_source = [&]() -> const mesh::Workload* {
    if (local_) return local_->find(snap);
    return snap ? snap->workload_by_address({"", src_ip}) : nullptr;
  };
  const mesh::Workload* source = find_source();
  if (cfg_.on_demand && !is_proxy_port(dst.port)) {
    // On demand the state holds only what was asked for: ask for the
    // source, then the destination, each at most once and bounded.
    if (!source && !local_) {
      ++counters_.demanded;
      if (!co_await fetch_on_demand(env_, cfg_.on_demand, address_key(src_ip))) ++counters_.demand_timeouts;
      snap = state_();
      source = snap ? snap->workload_by_address({"", src_ip}) : nullptr;
    }
    if (source && !snap->workload_by_address({"", dst.ip}) && !snap->service_by_vip({"", dst.ip})) {
      ++counters_.demanded;
      if (!co_await fetch_on_demand(env_, cfg_.on_demand, address_key(dst.ip))) ++counters_.demand_timeouts;
      snap = state_();
      source = find_source();
    }
  }
  if (is_proxy_port(dst.port) || !source) {
    ++counters_.refused;  // a loop, or a source we do not serve
    ZT_LOG(env_.log, debug, "proxy::outbound", "refused", {"src", downstream->peer()}, {"dst", dst},
           {"reason", source ? "the destination is a proxy port" : "the source is not a workload of this node"});
    downstream->abort();
    co_return;
  }
  mesh::RoutePlan plan = mesh::route_outbound(*snap, *source, dst, rng_, route_options());
  ZT_LOG(env_.log, debug, "proxy::outbound", "routed", {"src", downstream->peer()}, {"dst", dst},
         {"kind", mesh::to_string(plan.kind)}, {"next_hop", plan.next_hop}, {"authority", plan.authority},
         {"reason", plan.reason});
  switch (plan.kind) {
    case mesh::RouteKind::hbone:
    case mesh::RouteKind::waypoint: ++counters_.hbone; break;
    case mesh::RouteKind::tcp:
    case mesh::RouteKind::passthrough: ++counters_.passthrough; break;
    case mesh::RouteKind::double_hbone:  // not wired yet
    case mesh::RouteKind::refused:
      ++counters_.refused;
      downstream->abort();
      co_return;
  }
  // On the heap, and gone before the relay unless the relay still needs it:
  // a coroutine frame that lives as long as the connection holds no more
  // than it must.
  auto early = std::make_unique<EarlyData>(env_.loop, *downstream);
  OutboundUpstream up = co_await connect_upstream(*source, *early, dst, std::move(plan));
  const bool mtls = up.plan.kind == mesh::RouteKind::hbone || up.plan.kind == mesh::RouteKind::waypoint;
  TrafficReport report(cfg_.metrics,
                       labels_for("source", source, source->identity().to_string(), up.plan.next_hop_workload.get(),
                                  mtls),
                       {&cfg_.access_log, &env_.log, &env_.clock, outbound_record(downstream->peer(), *source, up.plan)});
  if (!up.stream) {
    ++counters_.failed;  // refused, 401, 503 or no connection: the client sees a reset
    report.failed(kFlagConnectFailure, up.error);
    downstream->abort();
    co_return;
  }
  report.opened();
  CopyStats stats;
  stats.bytes_a_to_b = early->sent();
  // The relay reads the client itself unless an early read still has
  // something for it; a plain TCP relay keeps its socket pair, which the
  // runtime may splice.
  if (!early->holds_client_data()) early.reset();
  Stream& client = early ? static_cast<Stream&>(*early) : *downstream;
  const CopyEnd end = co_await copy_bidirectional(env_, client, *up.stream, stats);
  report.closed(stats.bytes_a_to_b, stats.bytes_b_to_a, copy_error(end, true));
  downstream->close();
  up.stream->close();
}

// --- inbound --------------------------------------------------------------------

namespace {
constexpr std::string_view kHboneRefused = "ztunnel_hbone_requests_refused_total";
constexpr std::string_view kHboneCancelled = "ztunnel_hbone_requests_cancelled_total";
}  // namespace

Inbound::Inbound(Env& env, std::unique_ptr<Listener> listener, std::shared_ptr<const tls::TlsContext> tls,
                 StateSource state, InboundConfig cfg)
    : env_(env),
      state_(std::move(state)),
      cfg_(cfg),
      own_dials_(cfg.shared_dials ? nullptr : std::make_unique<DialBudget>(cfg.dials)),
      dials_(cfg.shared_dials ? *cfg.shared_dials : *own_dials_),
      dials_listener_(dials_.add_listener()) {
  server_ = std::make_unique<hbone::Server>(
      env, std::move(listener), std::move(tls),
      [this](hbone::InboundRequest req, hbone::Answer a) { on_request(std::move(req), std::move(a)); }, cfg_.h2);
  server_->on_calmed([this] { count_guard(kHboneRefused, "unanswered_requests"); });
  server_->on_connection_closed([this](uint64_t id) { connection_closed(id); });
  if (cfg_.metrics) {
    metrics::Registry& r = cfg_.metrics->registry();
    r.declare(kHboneRefused, metrics::MetricType::counter,
              "HBONE requests and connections refused to bound what a peer can hold, by reason, each answered 503: "
              "connection_dials_in_flight (the HBONE connection's dials), peer_dials_in_flight (the peer's dials, "
              "or a peer past its fair share of a nearly full listener), dials_in_flight (the listener's dials); "
              "unanswered_requests: the connection got GOAWAY ENHANCE_YOUR_CALM.");
    r.declare(kHboneCancelled, metrics::MetricType::counter,
              "HBONE requests the client reset before the answer; their dial to the workload stopped at once.");
  }
}

void Inbound::count_guard(std::string_view family, std::string_view reason) {
  if (!cfg_.metrics) return;
  metrics::Labels labels;
  if (!reason.empty()) labels.push_back({"reason", std::string(reason)});
  cfg_.metrics->registry().counter(family, labels).inc();
}

void InboundConfig::set_original_source_of(SocketOptions& opts, const IpAddr& client, const IpAddr& workload) const {
  // Families must match (a v4 client of a v6 address keeps our address).
  if (!original_source || client.is_v6() != workload.is_v6()) return;
  opts.source_ip = client;
  opts.transparent = true;
}

Inbound::~Inbound() {
  stopping_ = true;  // no summaries from here on
  server_.reset();
  scope_.clear();
}

void Inbound::start() { server_->start(); }

void Inbound::on_request(hbone::InboundRequest req, hbone::Answer answer) {
  ++counters_.requests;
  note_request(req);
  scope_.spawn(serve(std::move(req), std::move(answer)));
}

// A request of a connection being served, from on_request to the end of its task.
class Inbound::Serving {
 public:
  Serving(Inbound& in, uint64_t connection) : in_(in), connection_(connection) {}
  ~Serving() { in_.request_done(connection_); }
  Serving(const Serving&) = delete;

 private:
  Inbound& in_;
  uint64_t connection_;
};

void Inbound::note_request(const hbone::InboundRequest& req) {
  auto [it, added] = conn_streams_.try_emplace(req.connection_id);
  ConnStreams& c = it->second;
  if (added) {
    c.last_summary = env_.clock.now();
    c.pending.connection = req.connection_id;
    c.pending.peer = req.connection_peer;
    if (req.peer_identity) c.pending.identity = req.peer_identity->to_string();
  }
  ++c.serving;
}

void Inbound::request_done(uint64_t connection) {
  auto it = conn_streams_.find(connection);
  if (it == conn_streams_.end()) return;
  if (--it->second.serving > 0 || it->second.open) return;
  write_summary(it->second, true);
  conn_streams_.erase(it);
}

void Inbound::connection_closed(uint64_t connection) {
  dials_.connection_closed(dial_key(connection));
  auto it = conn_streams_.find(connection);
  if (it == conn_streams_.end()) return;
  it->second.open = false;
  if (it->second.serving > 0) return;  // the last request's end writes the summary
  write_summary(it->second, true);
  conn_streams_.erase(it);
}

void Inbound::note_unanswered(uint64_t connection, std::optional<DialRefusal> refused) {
  auto it = conn_streams_.find(connection);
  if (it == conn_streams_.end()) return;
  ConnStreams& c = it->second;
  if (refused) {
    ++c.pending.refused[static_cast<size_t>(*refused)];
  } else {
    ++c.pending.cancelled;
  }
  // A connection that lives on under attack still writes now and then.
  if (env_.clock.now() - c.last_summary >= cfg_.streams_summary_interval) write_summary(c, false);
}

void Inbound::write_summary(ConnStreams& c, bool closed) {
  StreamsSummary& s = c.pending;
  c.last_summary = env_.clock.now();
  if (stopping_ || s.cancelled + s.refused_total() == 0) return;
  s.connection_closed = closed;
  if (cfg_.streams_summary) cfg_.streams_summary(s);
  ZT_LOG(env_.log, warn, kAccessLogTarget, "requests ended before their answer", {"src.addr", s.peer},
         {"src.identity", s.identity}, {"hbone.connection", s.connection}, {"cancelled", s.cancelled},
         {"refused.connection_dials_in_flight", s.refused[static_cast<size_t>(DialRefusal::connection)]},
         {"refused.peer_dials_in_flight", s.refused[static_cast<size_t>(DialRefusal::peer)]},
         {"refused.dials_in_flight", s.refused[static_cast<size_t>(DialRefusal::listener)]},
         {"connection_closed", closed});
  s.cancelled = 0;
  for (uint64_t& n : s.refused) n = 0;
}

Task<void> Inbound::serve(hbone::InboundRequest req, hbone::Answer answer) {
  ActiveGuard active(active_);
  Serving serving(*this, req.connection_id);
  auto snap = state_();
  const mesh::Workload* dst = snap ? snap->workload_by_address({"", req.target.ip}) : nullptr;
  if (!dst && cfg_.on_demand) {
    ++counters_.demanded;
    if (!co_await fetch_on_demand(env_, cfg_.on_demand, address_key(req.target.ip))) ++counters_.demand_timeouts;
    snap = state_();
    dst = snap ? snap->workload_by_address({"", req.target.ip}) : nullptr;
  }
  if (!dst) {
    ++counters_.unknown_target;
    answer->reject(503);
    co_return;
  }
  // A pod's own proxy serves that pod only: a tunnel to an address the
  // state gives another workload (an IP just reused) is not for us.
  if (local_ && local_->find(snap) != dst) {
    ++counters_.misdirected;
    answer->reject(503);
    co_return;
  }
  // The tunnel must target the address the connection came to (upstream's
  // check; application tunnels and waypoints are the exceptions, not wired).
  if (req.connection_local.ip != req.target.ip) {
    ++counters_.misdirected;
    answer->reject(400);
    co_return;
  }
  mesh::Connection conn;
  conn.src = req.connection_peer;
  conn.dst = req.target;
  if (req.peer_identity) {
    conn.src_identity = mesh::Identity{req.peer_identity->trust_domain(), req.peer_identity->ns(),
                                       req.peer_identity->service_account()};
  }
  const std::string src_principal = req.peer_identity ? req.peer_identity->to_string() : "";
  const mesh::Workload* src = snap->workload_by_address({"", req.connection_peer.ip});
  const bool proxy_protocol =
      dst->application_tunnel && dst->application_tunnel->protocol == mesh::ApplicationTunnel::Protocol::proxy;
  const Endpoint upstream_addr = inbound_upstream(*dst, req.target);
  ConnectionRecord record =
      start_record(Direction::inbound, req.connection_peer, src, src_principal, upstream_addr, dst, true);
  record.hbone_addr = req.target.to_string();
  TrafficReport report(cfg_.metrics, labels_for("destination", src, src_principal, dst, true),
                       {&cfg_.access_log, &env_.log, &env_.clock, std::move(record)});
  const mesh::Decision decision = mesh::authorize(snap->policies_for(*dst), conn);
  ZT_LOG(env_.log, debug, "proxy::inbound", "authorization", {"src", req.connection_peer},
         {"src.identity", src_principal}, {"dst", req.target}, {"allowed", decision.allowed},
         {"policy", decision.policy}, {"reason", mesh::to_string(decision.reason)});
  if (!decision.allowed) {
    ++counters_.denied;
    report.failed(kFlagDenied, rejection(decision));
    answer->reject(401);
    co_return;
  }
  // Tracked from here on, so a policy change while we connect counts too.
  StreamPtr upstream, tunnel;
  ConnectionTracker::Handle tracked = tracker_.track(conn, [&upstream, &tunnel] {
    if (tunnel) tunnel->abort();
    if (upstream) upstream->abort();
  });
  SocketOptions opts;
  opts.mark = cfg_.mark;
  cfg_.set_original_source_of(opts, req.connection_peer.ip, upstream_addr.ip);
  // A client that resets its stream before our answer stops the dial at
  // once (rapid reset costs a peer nothing and must cost us nothing).
  // The dial stops counting the moment the reset arrives, not when this
  // frame resumes: one read can hand hundreds of reset requests to us
  // before any of them runs again.
  io::Cancellation reset_by_client;
  DialBudget::Ticket dial;
  answer->on_cancel([&reset_by_client, &dial] {
    dial.release();
    reset_by_client.cancel();
  });
  // Dials in flight are bounded per connection, per peer and per listener
  // (dial_budget.h): past a bound, 503 at once.
  if (!reset_by_client.cancelled()) {
    const std::string peer = dial_peer_key(src_principal, req.connection_peer.ip.to_string());
    if (const std::optional<DialRefusal> refused = dials_.try_acquire(dial_key(req.connection_id), peer, dial)) {
      ++counters_.dials_refused;
      count_guard(kHboneRefused, reason_label(*refused));
      note_unanswered(req.connection_id, refused);
      report.failed_unlogged(kFlagConnectFailure);
      answer->reject(503);
      co_return;
    }
  }
  // A workload that refuses now and then (fault point): the client's side
  // sees 503, ejects the endpoint and tries another, invisibly for service
  // traffic.
  Result<StreamPtr> connected = Error(Errc::connection_refused, "fault point: the workload refused");
  if (!reset_by_client.cancelled() && !ZT_BUGGIFY(env_, "proxy.inbound.upstream_refuses")) {
    connected = co_await io::connect(env_, upstream_addr, opts, cfg_.connect_timeout, &reset_by_client);
  }
  dial.release();
  if (reset_by_client.cancelled()) {
    ++counters_.cancelled;
    count_guard(kHboneCancelled, "");
    note_unanswered(req.connection_id, std::nullopt);
    report.failed_unlogged(kFlagConnectFailure);
    co_return;
  }
  Result<void> header_written;
  if (connected) {
    upstream = std::move(*connected);
    if (proxy_protocol) {
      const std::vector<uint8_t> header = encode_proxy_v2(original_source(req), req.target, src_principal);
      header_written = co_await io::write_all(*upstream, header);
    }
  }
  if (tracked.revoked()) {
    ++counters_.denied;
    report.failed(kFlagDenied, kPolicyChangeError);
    answer->reject(401);
    co_return;
  }
  if (!connected || !header_written) {
    ++counters_.upstream_failed;
    report.failed(kFlagConnectFailure, !connected ? connected.error().message() : header_written.error().message());
    answer->reject(503);
    co_return;
  }
  // The request's headers (forwarded, baggage, traceparent) served the
  // PROXY header above; a tunnel that may stay open for hours keeps none.
  h2::Headers().swap(req.headers);
  tunnel = answer->accept();
  if (!tunnel) {
    report.failed("", "the tunnel closed before it opened");
    co_return;
  }
  ++counters_.allowed;
  report.opened();
  CopyStats stats;
  const CopyEnd end = co_await copy_bidirectional(env_, *tunnel, *upstream, stats);
  report_closed(report, tracked, stats, end);
  tunnel->close();
  upstream->close();
}

size_t Inbound::recheck_policies() {
  auto snap = state_();
  if (!snap) return 0;
  const size_t closed = tracker_.recheck(*snap);
  counters_.policy_closed += closed;
  return closed;
}

// --- inbound plaintext -------------------------------------------------------------

InboundPlaintext::InboundPlaintext(Env& env, std::unique_ptr<Listener> listener, StateSource state, InboundConfig cfg)
    : env_(env), state_(std::move(state)), cfg_(cfg),
      local_(cfg.local ? std::optional<LocalWorkloadLookup>(*cfg.local) : std::nullopt),
      acceptor_(env, std::move(listener), [this](StreamPtr s) { return serve(std::move(s)); }) {}

InboundPlaintext::~InboundPlaintext() = default;

void InboundPlaintext::start() { acceptor_.start(); }

Task<void> InboundPlaintext::serve(StreamPtr downstream) {
  ++counters_.requests;
  Result<Endpoint> dst = downstream->original_dst();
  auto snap = state_();
  const mesh::Workload* wl = dst && snap ? snap->workload_by_address({"", dst->ip}) : nullptr;
  if (dst && !wl && cfg_.on_demand && !is_proxy_port(dst->port)) {
    ++counters_.demanded;
    if (!co_await fetch_on_demand(env_, cfg_.on_demand, address_key(dst->ip))) ++counters_.demand_timeouts;
    snap = state_();
    wl = snap ? snap->workload_by_address({"", dst->ip}) : nullptr;
  }
  if (!dst || is_proxy_port(dst->port) || !wl || (local_ && local_->find(snap) != wl)) {
    ++counters_.unknown_target;
    downstream->abort();
    co_return;
  }
  mesh::Connection conn;  // no identity: plaintext
  conn.src = downstream->peer();
  conn.dst = *dst;
  const mesh::Workload* src = snap->workload_by_address({"", conn.src.ip});
  TrafficReport report(cfg_.metrics, labels_for("destination", src, "", wl, false),
                       {&cfg_.access_log, &env_.log, &env_.clock, start_record(Direction::inbound, conn.src, src, "", *dst, wl, false)});
  const mesh::Decision decision = mesh::authorize(snap->policies_for(*wl), conn);
  if (!decision.allowed) {
    ++counters_.denied;
    report.failed(kFlagDenied, rejection(decision));
    downstream->abort();
    co_return;
  }
  // Connects and copies itself (not relay_connection) so that a policy
  // change can reset both streams.
  StreamPtr upstream;
  ConnectionTracker::Handle tracked = tracker_.track(conn, [&downstream, &upstream] {
    downstream->abort();
    if (upstream) upstream->abort();
  });
  SocketOptions opts;
  opts.mark = cfg_.mark;
  cfg_.set_original_source_of(opts, conn.src.ip, dst->ip);
  Result<StreamPtr> connected = co_await io::connect(env_, *dst, opts, cfg_.connect_timeout);
  if (tracked.revoked()) {
    ++counters_.denied;
    report.failed(kFlagDenied, kPolicyChangeError);
    co_return;
  }
  if (!connected) {
    ++counters_.upstream_failed;
    report.failed(kFlagConnectFailure, connected.error().message());
    downstream->abort();
    co_return;
  }
  upstream = std::move(*connected);
  ++counters_.allowed;
  report.opened();
  CopyStats stats;
  const CopyEnd end = co_await copy_bidirectional(env_, *downstream, *upstream, stats);
  report_closed(report, tracked, stats, end);
  downstream->close();
  upstream->close();
}

size_t InboundPlaintext::recheck_policies() {
  auto snap = state_();
  if (!snap) return 0;
  const size_t closed = tracker_.recheck(*snap);
  counters_.policy_closed += closed;
  return closed;
}

}  // namespace zt::core::proxy
