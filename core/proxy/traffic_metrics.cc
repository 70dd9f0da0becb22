#include "core/proxy/traffic_metrics.h"

namespace zt::core::proxy {
namespace {

void describe(TrafficLabels& l, const mesh::Workload& w, bool source) {
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

std::string_view family_name(TrafficFamily f) {
  switch (f) {
    case TrafficFamily::opened: return "istio_tcp_connections_opened_total";
    case TrafficFamily::closed: return "istio_tcp_connections_closed_total";
    case TrafficFamily::failed: return "istio_tcp_connections_failed_total";
    case TrafficFamily::sent_bytes: return "istio_tcp_sent_bytes_total";
    case TrafficFamily::received_bytes: return "istio_tcp_received_bytes_total";
  }
  return "";
}

metrics::Labels TrafficLabels::to_labels() const {
  return {
      {"reporter", reporter},
      {"source_workload", source_workload},
      {"source_canonical_service", source_canonical_service},
      {"source_canonical_revision", source_canonical_revision},
      {"source_workload_namespace", source_workload_namespace},
      {"source_principal", source_principal},
      {"source_app", source_app},
      {"source_version", source_version},
      {"source_cluster", source_cluster},
      {"destination_service", destination_service},
      {"destination_service_namespace", destination_service_namespace},
      {"destination_service_name", destination_service_name},
      {"destination_workload", destination_workload},
      {"destination_canonical_service", destination_canonical_service},
      {"destination_canonical_revision", destination_canonical_revision},
      {"destination_workload_namespace", destination_workload_namespace},
      {"destination_principal", destination_principal},
      {"destination_app", destination_app},
      {"destination_version", destination_version},
      {"destination_cluster", destination_cluster},
      {"request_protocol", request_protocol},
      {"response_flags", response_flags},
      {"connection_security_policy", connection_security_policy},
  };
}

TrafficMetrics::TrafficMetrics(metrics::Registry& registry) : registry_(registry) {
  using metrics::MetricType;
  registry.declare(family_name(TrafficFamily::opened), MetricType::counter, "The total number of TCP connections opened.");
  registry.declare(family_name(TrafficFamily::closed), MetricType::counter, "The total number of TCP connections closed.");
  registry.declare(family_name(TrafficFamily::failed), MetricType::counter,
                   "The total number of TCP connections that failed to establish.");
  registry.declare(family_name(TrafficFamily::sent_bytes), MetricType::counter,
                   "The size of total bytes sent during response in case of a TCP connection.");
  registry.declare(family_name(TrafficFamily::received_bytes), MetricType::counter,
                   "The size of total bytes received during request in case of a TCP connection.");
}

TrafficMetrics::Series& TrafficMetrics::series(const TrafficLabels& labels) {
  auto it = by_labels_.find(labels);
  if (it == by_labels_.end()) {
    it = by_labels_.emplace(labels, Series(registry_, labels)).first;
    it->second.labels_ = &it->first;  // the key in the map, not the caller's copy
  }
  return it->second;
}

metrics::Counter& TrafficMetrics::Series::counter(TrafficFamily family) {
  metrics::Counter*& c = counters_[size_t(family)];
  if (!c) c = &registry_->counter(family_name(family), labels_->to_labels());
  return *c;
}

TrafficLabels labels_for(std::string_view reporter, const mesh::Workload* source,
                                const std::string& source_principal, const mesh::Workload* destination,
                                bool mutual_tls) {
  TrafficLabels l;
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

TrafficReport::TrafficReport(TrafficMetrics* metrics, TrafficLabels labels, AccessLogContext log)
    : metrics_(metrics), labels_(std::move(labels)), log_(std::move(log)) {
  if (log_.clock && ((log_.sink && *log_.sink) || log_.log)) start_ = log_.clock->now();
}

TrafficMetrics::Series& TrafficReport::series() {
  if (!series_) series_ = &metrics_->series(labels_);
  return *series_;
}

void TrafficReport::set_response_flags(std::string_view flags) {
  if (flags.empty() || flags == labels_.response_flags) return;
  labels_.response_flags = std::string(flags);
  series_ = nullptr;  // another label set
}

void TrafficReport::opened() {
  if (metrics_) series().counter(TrafficFamily::opened).inc(1);
}

void TrafficReport::failed(std::string_view response_flags, std::string_view error) {
  if (metrics_) {
    set_response_flags(response_flags);
    series().counter(TrafficFamily::failed).inc(1);
  }
  emit(error.empty() ? std::string_view("connection failed") : error, response_flags);
}

void TrafficReport::failed_unlogged(std::string_view response_flags) {
  if (!metrics_) return;
  set_response_flags(response_flags);
  series().counter(TrafficFamily::failed).inc(1);
}

void TrafficReport::closed(uint64_t sent, uint64_t received, std::string_view error, std::string_view response_flags) {
  // As upstream counts them: istio_tcp_received_bytes_total is the request
  // direction (client to server) and istio_tcp_sent_bytes_total the
  // response, for either reporter; the access log speaks from the reporting
  // side, so the destination's bytes_sent is the response.
  const bool inbound = log_.record.direction == Direction::inbound;
  log_.record.bytes_sent = inbound ? received : sent;
  log_.record.bytes_recv = inbound ? sent : received;
  if (metrics_) {
    set_response_flags(response_flags);
    TrafficMetrics::Series& s = series();
    s.counter(TrafficFamily::closed).inc(1);
    s.counter(TrafficFamily::received_bytes).inc(sent);
    s.counter(TrafficFamily::sent_bytes).inc(received);
  }
  emit(error, response_flags);
}

void TrafficReport::emit(std::string_view error, std::string_view response_flags) {
  const bool to_sink = log_.sink && *log_.sink;
  if (!log_.clock || (!to_sink && !log_.log)) return;
  ConnectionRecord& r = log_.record;
  r.duration = log_.clock->now() - start_;
  r.error = std::string(error);
  r.response_flags = std::string(response_flags);
  if (to_sink) (*log_.sink)(r);
  if (log_.log) log_access(*log_.log, r);
}

}  // namespace zt::core::proxy
