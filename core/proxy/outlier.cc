#include "core/proxy/outlier.h"

#include <vector>

namespace zt::core::proxy {

std::optional<EndpointKey> endpoint_of(const mesh::RoutePlan& plan) {
  if (!plan.next_hop_workload) return std::nullopt;
  return EndpointKey{plan.next_hop_workload->uid, plan.endpoint_port};
}

metrics::Counter& declare_ejections_metric(metrics::Registry& registry) {
  static constexpr std::string_view kName = "ztunnel_endpoint_ejections_total";
  registry.declare(kName, metrics::MetricType::counter,
                   "Endpoints ejected from load balancing after a connection to them failed before any byte was sent");
  return registry.counter(kName, {});
}

OutlierDetector::OutlierDetector(const Clock& clock, OutlierConfig config) : clock_(clock), config_(config) {}

Duration OutlierDetector::ejection_for(uint32_t ejections) const {
  Duration d = config_.base_ejection;
  for (uint32_t i = 1; i < ejections && d < config_.max_ejection; ++i) d *= 2;
  return std::min(d, config_.max_ejection);
}

// Records whose ejection ended long ago say nothing about the endpoint now;
// dropping them also bounds the table by the endpoints failing recently.
void OutlierDetector::forget_stale(MonoTime now) {
  for (auto it = records_.begin(); it != records_.end();) {
    if (now - it->second.until > config_.max_ejection)
      it = records_.erase(it);
    else
      ++it;
  }
}

bool OutlierDetector::record_failure(const EndpointKey& key) {
  const MonoTime now = clock_.now();
  forget_stale(now);
  Record& r = records_[key];
  if (r.ejections > 0 && now < r.until) return false;  // part of the ejection in progress
  ++r.ejections;
  r.until = now + ejection_for(r.ejections);
  return true;
}

void OutlierDetector::record_success(const EndpointKey& key) {
  if (!records_.empty()) records_.erase(key);
}

bool OutlierDetector::ejected(const EndpointKey& key) const { return ejected_until(key).has_value(); }

std::optional<MonoTime> OutlierDetector::ejected_until(const EndpointKey& key) const {
  auto it = records_.find(key);
  if (it == records_.end() || clock_.now() >= it->second.until) return std::nullopt;
  return it->second.until;
}

size_t OutlierDetector::ejected_count() const {
  const MonoTime now = clock_.now();
  size_t n = 0;
  for (const auto& [key, r] : records_) n += now < r.until;
  return n;
}

mesh::AvoidEndpoint OutlierDetector::avoid() const {
  return [this](const mesh::Workload& w, uint16_t port) {
    if (records_.empty()) return false;
    return ejected(EndpointKey{w.uid, port});
  };
}

}  // namespace zt::core::proxy
