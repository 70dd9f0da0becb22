#include "core/proxy/proxy.h"

#include "core/hbone/headers.h"
#include "core/proxy/traffic_metrics.h"
#include "core/state/rbac.h"
#include "core/state/routing.h"
#include "io/async.h"

namespace zt::core::proxy {

bool is_proxy_port(uint16_t port) { return port == 15001 || port == 15006 || port == 15008 || port == 15080; }

// --- outbound -----------------------------------------------------------------

Outbound::Outbound(Env& env, std::unique_ptr<Listener> listener, StateSource state, hbone::Pool& pool,
                   OutboundConfig cfg)
    : env_(env), listener_(std::move(listener)), state_(std::move(state)), pool_(pool), cfg_(cfg),
      rng_(env.rng.stream("outbound")), outliers_(env.clock, cfg.outlier) {
  if (cfg_.metrics) ejections_metric_ = &declare_ejections_metric(*cfg_.metrics);
}

Outbound::~Outbound() { scope_.clear(); }

void Outbound::start() { scope_.spawn(accept_loop()); }

Task<void> Outbound::accept_loop() {
  return io::accept_each(env_, *listener_, [this](StreamPtr s) {
    ++counters_.accepted;
    scope_.spawn(serve(std::move(s)));
  });
}

Task<void> Outbound::serve(StreamPtr downstream) {
  Result<Endpoint> dst = downstream->original_dst();
  if (!dst) {
    ++counters_.refused;  // not captured: nowhere to go
    downstream->abort();
    co_return;
  }
  co_await forward(std::move(downstream), *dst);
}

Task<void> Outbound::forward(StreamPtr downstream, Endpoint dst) {
  ActiveGuard active(active_);
  auto snap = state_();
  const IpAddr src_ip = downstream->peer().ip;
  const mesh::Workload* source = snap ? snap->workload_by_address({"", src_ip}) : nullptr;
  if (is_proxy_port(dst.port) || !source) {
    ++counters_.refused;  // a loop, or a source we do not serve
    downstream->abort();
    co_return;
  }
  mesh::RoutePlan plan = mesh::route_outbound(*snap, *source, dst, rng_, route_options());
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
  OutboundUpstream up = co_await connect_upstream(*source, downstream->peer(), dst, std::move(plan));
  const bool mtls = up.plan.kind == mesh::RouteKind::hbone || up.plan.kind == mesh::RouteKind::waypoint;
  TrafficReport report(cfg_.metrics, labels_for("source", source, source->identity().to_string(),
                                                up.plan.next_hop_workload.get(), mtls));
  if (!up.stream) {
    ++counters_.failed;  // refused, 401, 503 or no connection: the client sees a reset
    report.failed("UF");
    downstream->abort();
    co_return;
  }
  report.opened();
  CopyStats stats;
  (void)co_await copy_bidirectional(env_, *downstream, *up.stream, stats);
  report.closed(stats.bytes_a_to_b, stats.bytes_b_to_a);
  downstream->close();
  up.stream->close();
}

// --- inbound --------------------------------------------------------------------

Inbound::Inbound(Env& env, std::unique_ptr<Listener> listener, std::shared_ptr<const tls::TlsContext> tls,
                 StateSource state, InboundConfig cfg)
    : env_(env), state_(std::move(state)), cfg_(cfg) {
  server_ = std::make_unique<hbone::Server>(
      env, std::move(listener), std::move(tls),
      [this](hbone::InboundRequest req, hbone::Answer a) { on_request(std::move(req), std::move(a)); });
}

Inbound::~Inbound() {
  server_.reset();
  scope_.clear();
}

void Inbound::start() { server_->start(); }

void Inbound::on_request(hbone::InboundRequest req, hbone::Answer answer) {
  ++counters_.requests;
  scope_.spawn(serve(std::move(req), std::move(answer)));
}

Task<void> Inbound::serve(hbone::InboundRequest req, hbone::Answer answer) {
  ActiveGuard active(active_);
  auto snap = state_();
  const mesh::Workload* dst = snap ? snap->workload_by_address({"", req.target.ip}) : nullptr;
  if (!dst) {
    ++counters_.unknown_target;
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
  const mesh::Workload* src = snap->workload_by_address({"", req.connection_peer.ip});
  TrafficReport report(cfg_.metrics, labels_for("destination", src,
                                                req.peer_identity ? req.peer_identity->to_string() : "", dst, true));
  const mesh::Decision decision = mesh::authorize(snap->policies_for(*dst), conn);
  if (!decision.allowed) {
    ++counters_.denied;
    report.failed("RBAC");
    answer->reject(401);
    co_return;
  }
  SocketOptions opts;
  opts.mark = cfg_.mark;
  Result<StreamPtr> upstream = co_await io::connect(env_, req.target, opts, cfg_.connect_timeout);
  if (!upstream) {
    ++counters_.upstream_failed;
    report.failed("UF");
    answer->reject(503);
    co_return;
  }
  StreamPtr tunnel = answer->accept();
  if (!tunnel) co_return;
  ++counters_.allowed;
  report.opened();
  CopyStats stats;
  (void)co_await copy_bidirectional(env_, *tunnel, **upstream, stats);
  report.closed(stats.bytes_a_to_b, stats.bytes_b_to_a);
  tunnel->close();
  (*upstream)->close();
}

// --- inbound plaintext -------------------------------------------------------------

InboundPlaintext::InboundPlaintext(Env& env, std::unique_ptr<Listener> listener, StateSource state, InboundConfig cfg)
    : env_(env), listener_(std::move(listener)), state_(std::move(state)), cfg_(cfg) {}

InboundPlaintext::~InboundPlaintext() { scope_.clear(); }

void InboundPlaintext::start() { scope_.spawn(accept_loop()); }

Task<void> InboundPlaintext::accept_loop() {
  return io::accept_each(env_, *listener_, [this](StreamPtr s) { scope_.spawn(serve(std::move(s))); });
}

Task<void> InboundPlaintext::serve(StreamPtr downstream) {
  ActiveGuard active(active_);
  ++counters_.requests;
  Result<Endpoint> dst = downstream->original_dst();
  auto snap = state_();
  const mesh::Workload* wl = dst && snap ? snap->workload_by_address({"", dst->ip}) : nullptr;
  if (!dst || is_proxy_port(dst->port) || !wl) {
    ++counters_.unknown_target;
    downstream->abort();
    co_return;
  }
  mesh::Connection conn;  // no identity: plaintext
  conn.src = downstream->peer();
  conn.dst = *dst;
  TrafficReport report(cfg_.metrics, labels_for("destination", snap->workload_by_address({"", conn.src.ip}), "",
                                                wl, false));
  if (!mesh::authorize(snap->policies_for(*wl), conn).allowed) {
    ++counters_.denied;
    report.failed("RBAC");
    downstream->abort();
    co_return;
  }
  RelayConfig relay;
  relay.connect_timeout = cfg_.connect_timeout;
  relay.upstream.mark = cfg_.mark;
  RelayResult r = co_await relay_connection(env_, std::move(downstream), *dst, relay);
  if (r.outcome == RelayOutcome::connect_failed) {
    ++counters_.upstream_failed;
    report.failed("UF");
  } else {
    ++counters_.allowed;
    report.opened();
    report.closed(r.bytes.bytes_a_to_b, r.bytes.bytes_b_to_a);
  }
}

}  // namespace zt::core::proxy
