// Connection metrics for the data path: istio_tcp_connections_opened_total,
// _closed_total, _failed_total and istio_tcp_sent/received_bytes_total, with
// upstream's labels, reported by the source side (outbound) or the
// destination side (inbound); and, from the same report, the connection's
// access log record (access_log.h) when it ends.
//
//   TrafficReport r(registry, labels_for("source", src, dst, principal, true),
//                   {&cfg.access_log, &env.clock, record});
//   r.opened();  ...  r.closed(bytes_to_destination, bytes_from_destination);
#pragma once

#include <string>

#include "core/admin/metrics.h"
#include "core/proxy/access_log.h"
#include "core/state/model.h"
#include "core/state/routing.h"

namespace zt::core::proxy {

// response_flags values, as upstream ztunnel writes them (not Envoy's
// RBAC/UF): denied by policy, and no upstream connection.
inline constexpr std::string_view kFlagDenied = "DENY";
inline constexpr std::string_view kFlagConnectFailure = "CONNECT";

admin::TrafficLabels labels_for(std::string_view reporter, const mesh::Workload* source,
                                const std::string& source_principal, const mesh::Workload* destination, bool mutual_tls);

// The access log record of an outbound connection routed by `plan` (HBONE
// plans name the tunnel's :authority and both identities).
ConnectionRecord outbound_record(Endpoint src, const mesh::Workload& source, const mesh::RoutePlan& plan);

// Where a connection's access log record goes, and what is known of the
// connection when it starts (addresses, names, identities).
struct AccessLogContext {
  const AccessLogSink* sink = nullptr;  // null or empty: no access log
  const Clock* clock = nullptr;         // for the duration; required with a sink
  ConnectionRecord record;
};

// One connection's report; a null registry and no sink make every call a
// no-op. failed() and closed() each end the report: call one, once.
class TrafficReport {
 public:
  TrafficReport(admin::Registry* registry, admin::TrafficLabels labels, AccessLogContext log = {});
  void opened();
  // The connection never carried bytes (denied, or no upstream).
  void failed(std::string_view response_flags, std::string_view error = {});
  // sent: bytes towards the destination; received: bytes back from it. An
  // error (a reset, a policy change) still counts as a close in the metrics.
  void closed(uint64_t sent, uint64_t received, std::string_view error = {}, std::string_view response_flags = {});
  // For tests and callers that add to the record before it is emitted.
  ConnectionRecord& record() { return log_.record; }

 private:
  void emit(std::string_view error, std::string_view response_flags);
  // The registry's series for labels_, looked up once (labels_ change only
  // when a response flag is set).
  admin::Registry::TrafficSeries& series();
  void set_response_flags(std::string_view flags);

  admin::Registry* registry_;
  admin::TrafficLabels labels_;
  admin::Registry::TrafficSeries* series_ = nullptr;
  AccessLogContext log_;
  MonoTime start_{};
};

}  // namespace zt::core::proxy
