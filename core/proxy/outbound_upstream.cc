// Outbound's upstream side: opening the HBONE tunnel or TCP connection a
// route plan names, and what happens when that fails before the
// destination's application saw any of the client's bytes (beyond upstream
// ztunnel; early data behind a refused CONNECT goes again with the retry):
// the endpoint is ejected from load balancing for a while
// (OutlierDetector), and if the client addressed
// a service, the connection is routed once more, avoiding ejected
// endpoints, and tried on the other endpoint. The client sees a reset only
// if that fails too. A connection to a workload's own address is not sent
// elsewhere (there is no other endpoint), but its failure still counts.
#include <algorithm>

#include "core/hbone/headers.h"
#include "core/proxy/proxy.h"
#include "io/async.h"

namespace zt::core::proxy {

enum class Outbound::OpenFailure : uint8_t {
  none,
  endpoint,  // connect refused or timed out, TLS or pool failure, CONNECT answered 503: eject, retry elsewhere
  // The tunnel broke before its answer after the client's early data left:
  // the destination may have consumed it, so it is not sent elsewhere (the
  // client sees a reset). Counts against the endpoint like `endpoint`.
  lost,
  rejected,  // the destination answered but said no (401 policy, 400): not the endpoint's fault
};

struct Outbound::Opened {
  StreamPtr stream;
  OpenFailure failure = OpenFailure::none;
  std::string error;  // why it failed, for the access log
};

mesh::RouteOptions Outbound::route_options() const {
  mesh::RouteOptions options;
  options.avoid = outliers_.avoid();
  return options;
}

namespace {

bool connectable(const mesh::RoutePlan& plan) {
  switch (plan.kind) {
    case mesh::RouteKind::hbone:
    case mesh::RouteKind::waypoint:
    case mesh::RouteKind::tcp:
    case mesh::RouteKind::passthrough: return true;
    case mesh::RouteKind::double_hbone:
    case mesh::RouteKind::refused: return false;
  }
  return false;
}

}  // namespace

Task<OutboundUpstream> Outbound::connect_upstream(const mesh::Workload& source, EarlyData& client, Endpoint dst,
                                                  mesh::RoutePlan plan) {
  OutboundUpstream up;
  Opened first = co_await open_upstream(source, client, plan);
  record_outcome(plan, first.failure);
  const std::optional<EndpointKey> failed = endpoint_of(plan);
  if (first.failure != OpenFailure::endpoint || !plan.service || !failed) {  // `lost` included
    up.stream = std::move(first.stream);
    up.plan = std::move(plan);
    up.error = std::move(first.error);
    co_return up;
  }
  // Service traffic: route again (the failed endpoint is ejected now) with
  // the newest state, and try once more if that found another endpoint.
  auto snap = state_();
  mesh::RoutePlan again = snap ? mesh::route_outbound(*snap, source, dst, rng_, route_options()) : mesh::RoutePlan{};
  const std::optional<EndpointKey> other = endpoint_of(again);
  if (!connectable(again) || (other && *other == *failed)) {
    up.plan = std::move(plan);  // nowhere else to go
    up.error = std::move(first.error);
    co_return up;
  }
  ++counters_.retried;
  Opened second = co_await open_upstream(source, client, again);
  record_outcome(again, second.failure);
  up.stream = std::move(second.stream);
  up.plan = std::move(again);
  up.error = second.error.empty() ? std::string() : second.error + " (after a retry: " + first.error + ")";
  co_return up;
}

void Outbound::record_outcome(const mesh::RoutePlan& plan, OpenFailure failure) {
  const std::optional<EndpointKey> key = endpoint_of(plan);
  if (!key) return;  // passthrough: not an endpoint we balance over
  if (failure == OpenFailure::none) {
    outliers_.record_success(*key);
  } else if ((failure == OpenFailure::endpoint || failure == OpenFailure::lost) && outliers_.record_failure(*key)) {
    ++counters_.ejected;
    if (ejections_metric_) ejections_metric_->inc();
  }
}

Task<Outbound::Opened> Outbound::open_upstream(const mesh::Workload& source, EarlyData& client,
                                               const mesh::RoutePlan& plan) {
  if (plan.kind == mesh::RouteKind::hbone || plan.kind == mesh::RouteKind::waypoint)
    co_return co_await open_hbone(source, client, plan);
  Opened out;
  SocketOptions opts;
  opts.mark = cfg_.mark;
  Result<StreamPtr> s = co_await io::connect(env_, plan.next_hop, opts, cfg_.connect_timeout);
  if (s && client.started()) {
    // A retry after an HBONE attempt read the client's first bytes: they
    // go here too.
    client.attach(std::move(*s));
    co_await client.settle();
    out.stream = client.take();
  } else if (s) {
    out.stream = std::move(*s);
  } else {
    out.failure = OpenFailure::endpoint;
    out.error = s.error().message();
  }
  co_return out;
}

Task<Outbound::Opened> Outbound::open_hbone(const mesh::Workload& source, EarlyData& client,
                                            const mesh::RoutePlan& plan) {
  hbone::PoolKey key;
  key.source_identity = source.identity().to_string();
  key.destination_identities = plan.upstream_identities;
  std::sort(key.destination_identities.begin(), key.destination_identities.end());
  key.destination = plan.next_hop;
  key.source_ip = client.peer().ip;
  hbone::SourceInfo info;
  info.address = client.peer();
  // baggage as upstream fills it from the source workload: the workload's
  // name (not the pod's) under its type, its canonical service and
  // revision, cluster and locality; empty fields are left out.
  info.cluster = source.cluster_id;
  info.ns = source.ns;
  info.workload_type = source.workload_type;
  info.workload_name = source.workload_name;
  info.canonical_name = source.canonical_name;
  info.canonical_revision = source.canonical_revision;
  info.region = source.locality.region;
  info.zone = source.locality.zone;
  if (plan.service) info.host = plan.service->hostname;
  h2::Request req{"CONNECT", plan.authority, hbone::request_headers(info, rng_)};
  Opened out;
  // Each CONNECT submitted gets the client's first bytes right behind it.
  Result<h2::Opened> opened =
      co_await pool_.open(key, std::move(req), [&client](StreamPtr tunnel) { client.attach(std::move(tunnel)); });
  if (!opened) {
    // No connection, TLS failure, or the stream never reached the peer;
    // or it may have (kLost): then the early bytes must not go elsewhere.
    out.failure = opened.code() == h2::kLost ? OpenFailure::lost : OpenFailure::endpoint;
    out.error = opened.error().message();
  } else if (opened->response.status < 200 || opened->response.status >= 300) {
    // 503: the peer has no such workload, or the workload refused the
    // connection. Other answers (401 policy, 400) are about the request.
    out.failure = opened->response.status == 503 ? OpenFailure::endpoint : OpenFailure::rejected;
    out.error = "upstream answered " + std::to_string(opened->response.status);
  } else {
    co_await client.settle();
    out.stream = client.take();
  }
  co_return out;
}

}  // namespace zt::core::proxy
