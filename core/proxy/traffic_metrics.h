// Connection metrics for the data path: istio_tcp_connections_opened_total,
// _closed_total, _failed_total and istio_tcp_sent/received_bytes_total, with
// upstream's labels, reported by the source side (outbound) or the
// destination side (inbound); and, from the same report, the connection's
// access log record (access_log.h) when it ends.
//
//   TrafficMetrics metrics(registry);          // one per registry (per worker)
//   TrafficReport r(&metrics, labels_for("source", src, principal, dst, true),
//                   {&cfg.access_log, &env.log, &env.clock, record});
//   r.opened();  ...  r.closed(bytes_to_destination, bytes_from_destination);
#pragma once

#include <array>
#include <compare>
#include <map>
#include <string>

#include "core/mesh/model.h"
#include "core/mesh/routing.h"
#include "core/metrics/registry.h"
#include "core/proxy/access_log.h"

namespace zt::core::proxy {

// The istio_tcp_* families (docs/PROTOCOL.md, Metrics).
enum class TrafficFamily : uint8_t { opened, closed, failed, sent_bytes, received_bytes };
inline constexpr size_t kTrafficFamilies = 5;
std::string_view family_name(TrafficFamily f);

// The labels of the istio_tcp_* series, as upstream names them. Unknown
// values are "unknown", as upstream reports them.
struct TrafficLabels {
  std::string reporter = "unknown";  // "source" (outbound) or "destination" (inbound)
  std::string source_workload = "unknown";
  std::string source_canonical_service = "unknown";
  std::string source_canonical_revision = "unknown";
  std::string source_workload_namespace = "unknown";
  std::string source_principal = "unknown";
  std::string source_app = "unknown";
  std::string source_version = "unknown";
  std::string source_cluster = "unknown";
  std::string destination_service = "unknown";
  std::string destination_service_namespace = "unknown";
  std::string destination_service_name = "unknown";
  std::string destination_workload = "unknown";
  std::string destination_canonical_service = "unknown";
  std::string destination_canonical_revision = "unknown";
  std::string destination_workload_namespace = "unknown";
  std::string destination_principal = "unknown";
  std::string destination_app = "unknown";
  std::string destination_version = "unknown";
  std::string destination_cluster = "unknown";
  std::string request_protocol = "tcp";
  std::string response_flags = "-";
  std::string connection_security_policy = "unknown";  // or "mutual_tls"

  metrics::Labels to_labels() const;
  auto operator<=>(const TrafficLabels&) const = default;
  bool operator==(const TrafficLabels&) const = default;
};

// The istio_tcp_* series of one registry (a worker's), remembered per label
// set: the data path reports every connection with 23 labels, and building,
// sorting and comparing them cost more than the rest of the report. One
// lookup per connection finds the series of all five families; a family's
// series is created on its first use, so a label set that never failed has
// no _failed_total series. Counters point into the registry, which must
// outlive this (a copy of the registry, as a scrape takes, is not counted).
class TrafficMetrics {
 public:
  // Declares the five families in `registry`.
  explicit TrafficMetrics(metrics::Registry& registry);
  TrafficMetrics(const TrafficMetrics&) = delete;
  TrafficMetrics& operator=(const TrafficMetrics&) = delete;

  class Series {
   public:
    metrics::Counter& counter(TrafficFamily family);

   private:
    friend class TrafficMetrics;
    Series(metrics::Registry& registry, const TrafficLabels& labels) : registry_(&registry), labels_(&labels) {}
    metrics::Registry* registry_;
    const TrafficLabels* labels_;  // the cache's key, a map node: stable
    std::array<metrics::Counter*, kTrafficFamilies> counters_{};
  };
  Series& series(const TrafficLabels& labels);
  metrics::Registry& registry() { return registry_; }

 private:
  metrics::Registry& registry_;
  std::map<TrafficLabels, Series> by_labels_;
};

// response_flags values, as upstream ztunnel writes them (not Envoy's
// RBAC/UF): denied by policy, and no upstream connection.
inline constexpr std::string_view kFlagDenied = "DENY";
inline constexpr std::string_view kFlagConnectFailure = "CONNECT";

TrafficLabels labels_for(std::string_view reporter, const mesh::Workload* source,
                                const std::string& source_principal, const mesh::Workload* destination, bool mutual_tls);

// The access log record of an outbound connection routed by `plan` (HBONE
// plans name the tunnel's :authority and both identities).
ConnectionRecord outbound_record(Endpoint src, const mesh::Workload& source, const mesh::RoutePlan& plan);

// Where a connection's access log record goes, and what is known of the
// connection when it starts (addresses, names, identities).
struct AccessLogContext {
  const AccessLogSink* sink = nullptr;  // null or empty: no records handed out
  Log* log = nullptr;                   // the "access" target (log_access); null: not logged
  const Clock* clock = nullptr;         // for the duration; required with a sink or a log
  ConnectionRecord record;
};

// One connection's report; null metrics and no sink make every call a
// no-op. failed() and closed() each end the report: call one, once.
class TrafficReport {
 public:
  TrafficReport(TrafficMetrics* metrics, TrafficLabels labels, AccessLogContext log = {});
  void opened();
  // The connection never carried bytes (denied, or no upstream).
  void failed(std::string_view response_flags, std::string_view error = {});
  // As failed(), in the metrics only: the access log record is left to a
  // summary of many (requests cut short under rapid reset).
  void failed_unlogged(std::string_view response_flags);
  // sent: bytes towards the destination; received: bytes back from it. An
  // error (a reset, a policy change) still counts as a close in the metrics.
  void closed(uint64_t sent, uint64_t received, std::string_view error = {}, std::string_view response_flags = {});
  // For tests and callers that add to the record before it is emitted.
  ConnectionRecord& record() { return log_.record; }

 private:
  void emit(std::string_view error, std::string_view response_flags);
  // The registry's series for labels_, looked up once (labels_ change only
  // when a response flag is set).
  TrafficMetrics::Series& series();
  void set_response_flags(std::string_view flags);

  TrafficMetrics* metrics_;
  TrafficLabels labels_;
  TrafficMetrics::Series* series_ = nullptr;
  AccessLogContext log_;
  MonoTime start_{};
};

}  // namespace zt::core::proxy
