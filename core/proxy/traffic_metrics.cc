#include "core/proxy/traffic_metrics.h"

namespace zt::core::proxy {
namespace {

void describe(admin::TrafficLabels& l, const mesh::Workload& w, bool source) {
  const std::string name = w.canonical_name.empty() ? w.name : w.canonical_name;
  const std::string version = w.canonical_revision.empty() ? "latest" : w.canonical_revision;
  // Upstream's workload label is the workload (deployment) name, not the pod's.
  if (!w.workload_name.empty()) (source ? l.source_workload : l.destination_workload) = w.workload_name;
  (source ? l.source_workload_namespace : l.destination_workload_namespace) = w.ns;
  (source ? l.source_canonical_service : l.destination_canonical_service) = name;
  (source ? l.source_canonical_revision : l.destination_canonical_revision) = version;
  (source ? l.source_app : l.destination_app) = name;
  (source ? l.source_version : l.destination_version) = version;
  (source ? l.source_cluster : l.destination_cluster) = w.cluster_id;
}

}  // namespace

admin::TrafficLabels labels_for(std::string_view reporter, const mesh::Workload* source,
                                const std::string& source_principal, const mesh::Workload* destination,
                                bool mutual_tls) {
  admin::TrafficLabels l;
  l.reporter = std::string(reporter);
  if (source) describe(l, *source, true);
  if (destination) {
    describe(l, *destination, false);
    l.destination_principal = destination->identity().to_string();
  }
  if (!source_principal.empty()) l.source_principal = source_principal;
  l.connection_security_policy = mutual_tls ? "mutual_tls" : "unknown";
  return l;
}

ConnectionRecord outbound_record(Endpoint src, const mesh::Workload& source, const mesh::RoutePlan& plan) {
  const bool hbone = !plan.authority.empty();
  ConnectionRecord r = start_record(Direction::outbound, src, &source, source.identity().to_string(), plan.next_hop,
                                    plan.next_hop_workload.get(), hbone);
  r.hbone_addr = plan.authority;
  if (plan.service) r.dst_service = plan.service->hostname;
  return r;
}

TrafficReport::TrafficReport(admin::Registry* registry, admin::TrafficLabels labels, AccessLogContext log)
    : registry_(registry), labels_(std::move(labels)), log_(std::move(log)) {
  if (log_.sink && *log_.sink && log_.clock) start_ = log_.clock->now();
}

admin::Registry::TrafficSeries& TrafficReport::series() {
  if (!series_) series_ = &registry_->traffic_series(labels_);
  return *series_;
}

void TrafficReport::set_response_flags(std::string_view flags) {
  if (flags.empty() || flags == labels_.response_flags) return;
  labels_.response_flags = std::string(flags);
  series_ = nullptr;  // another label set
}

void TrafficReport::opened() {
  if (registry_) series().counter(admin::kTcpConnectionsOpened).inc(1);
}

void TrafficReport::failed(std::string_view response_flags, std::string_view error) {
  if (registry_) {
    set_response_flags(response_flags);
    series().counter(admin::kTcpConnectionsFailed).inc(1);
  }
  emit(error.empty() ? std::string_view("connection failed") : error, response_flags);
}

void TrafficReport::closed(uint64_t sent, uint64_t received, std::string_view error, std::string_view response_flags) {
  // As upstream counts them: istio_tcp_received_bytes_total is the request
  // direction (client to server) and istio_tcp_sent_bytes_total the
  // response, for either reporter; the access log speaks from the reporting
  // side, so the destination's bytes_sent is the response.
  const bool inbound = log_.record.direction == Direction::inbound;
  log_.record.bytes_sent = inbound ? received : sent;
  log_.record.bytes_recv = inbound ? sent : received;
  if (registry_) {
    set_response_flags(response_flags);
    admin::Registry::TrafficSeries& s = series();
    s.counter(admin::kTcpConnectionsClosed).inc(1);
    s.counter(admin::kTcpReceivedBytes).inc(sent);
    s.counter(admin::kTcpSentBytes).inc(received);
  }
  emit(error, response_flags);
}

void TrafficReport::emit(std::string_view error, std::string_view response_flags) {
  if (!log_.sink || !*log_.sink || !log_.clock) return;
  ConnectionRecord& r = log_.record;
  r.duration = log_.clock->now() - start_;
  r.error = std::string(error);
  r.response_flags = std::string(response_flags);
  (*log_.sink)(r);
}

}  // namespace zt::core::proxy
