// Connection metrics for the data path: istio_tcp_connections_opened_total,
// _closed_total, _failed_total and istio_tcp_sent/received_bytes_total, with
// upstream's labels, reported by the source side (outbound) or the
// destination side (inbound).
//
//   TrafficReport r(registry, labels_for("source", src, dst, principal, true));
//   r.opened();  ...  r.closed(bytes_to_destination, bytes_from_destination);
#pragma once

#include <string>

#include "core/admin/metrics.h"
#include "core/state/model.h"

namespace zt::core::proxy {

admin::TrafficLabels labels_for(std::string_view reporter, const mesh::Workload* source,
                                const std::string& source_principal, const mesh::Workload* destination, bool mutual_tls);

// One connection's report; a null registry makes every call a no-op.
class TrafficReport {
 public:
  TrafficReport(admin::Registry* registry, admin::TrafficLabels labels);
  void opened();
  void failed(std::string_view response_flags);
  // sent: bytes towards the destination; received: bytes back from it.
  void closed(uint64_t sent, uint64_t received);

 private:
  admin::Registry* registry_;
  admin::TrafficLabels labels_;
};

}  // namespace zt::core::proxy
