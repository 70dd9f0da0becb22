// Passive outlier detection for outbound load balancing (beyond upstream
// ztunnel): an endpoint whose connection failed before any byte was sent is
// ejected for a while, and load balancing steers around it as long as
// another eligible endpoint exists. Nothing is probed; a later success
// (after the ejection ran out, or when it was the only choice) clears it.
//
//   OutlierDetector outliers(env.clock, {});
//   RouteOptions options;
//   options.avoid = outliers.avoid();
//   ... connect fails: if (outliers.record_failure(key)) ++ejections;
//   ... connect works: outliers.record_success(key);
//
// Ejection lasts base_ejection x 2^(consecutive ejections - 1), capped at
// max_ejection (5 s, 10 s, 20 s, ... 5 min). Failures while an endpoint is
// ejected (connections that were already on their way to it) belong to the
// same ejection and do not lengthen it. An endpoint whose last ejection
// ended more than max_ejection ago starts again from base_ejection.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "core/metrics/registry.h"
#include "core/mesh/lb.h"
#include "core/mesh/routing.h"
#include "io/time.h"

namespace zt::core::proxy {

// An endpoint: a workload and the port dialled on it.
struct EndpointKey {
  std::string workload_uid;
  uint16_t port = 0;
  auto operator<=>(const EndpointKey&) const = default;
  bool operator==(const EndpointKey&) const = default;
};

// The endpoint a plan goes to; none for plans without a workload (passthrough).
std::optional<EndpointKey> endpoint_of(const mesh::RoutePlan& plan);

// ztunnel_endpoint_ejections_total (ours; upstream has no such metric),
// declared in `registry`; the series to count ejections on.
metrics::Counter& declare_ejections_metric(metrics::Registry& registry);

struct OutlierConfig {
  Duration base_ejection = std::chrono::seconds(5);
  Duration max_ejection = std::chrono::minutes(5);
};

class OutlierDetector {
 public:
  OutlierDetector(const Clock& clock, OutlierConfig config = {});

  // A connection to `key` failed before any byte was sent. True when this
  // ejected it (false: it was ejected already).
  bool record_failure(const EndpointKey& key);
  // A connection to `key` was established: forget its failures.
  void record_success(const EndpointKey& key);

  bool ejected(const EndpointKey& key) const;
  // When the current ejection of `key` ends (none if not ejected).
  std::optional<MonoTime> ejected_until(const EndpointKey& key) const;
  // Endpoints currently ejected.
  size_t ejected_count() const;

  // A predicate for RouteOptions::avoid: ejected endpoints. It refers to
  // this detector, which must outlive it.
  mesh::AvoidEndpoint avoid() const;

 private:
  struct Record {
    uint32_t ejections = 0;  // consecutive, without a success in between
    MonoTime until{};
  };
  Duration ejection_for(uint32_t ejections) const;
  void forget_stale(MonoTime now);

  const Clock& clock_;
  OutlierConfig config_;
  std::map<EndpointKey, Record> records_;
};

}  // namespace zt::core::proxy
