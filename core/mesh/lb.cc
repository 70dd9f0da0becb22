#include "core/mesh/lb.h"

#include <vector>

namespace zt::core::mesh {

size_t locality_rank(const Workload& src, const Workload& dst, std::span<const LbScope> preference) {
  size_t rank = 0;
  for (LbScope scope : preference) {
    bool same = false;
    switch (scope) {
      case LbScope::region: same = src.locality.region == dst.locality.region; break;
      case LbScope::zone: same = src.locality.zone == dst.locality.zone; break;
      case LbScope::subzone: same = src.locality.subzone == dst.locality.subzone; break;
      case LbScope::node: same = src.node == dst.node; break;
      case LbScope::cluster: same = src.cluster_id == dst.cluster_id; break;
      case LbScope::network: same = src.network == dst.network; break;
    }
    if (!same) break;  // scopes nest: a zone match means nothing in another region
    ++rank;
  }
  return rank;
}

namespace {

bool healthy_enough(const EndpointChoice& c, const std::optional<LoadBalancer>& lb) {
  bool allow_all = lb && lb->health_policy == HealthPolicy::allow_all;
  return allow_all || c.endpoint->status == HealthStatus::healthy;
}

// Weighted by capacity; a total of zero means no candidate can take traffic.
std::optional<size_t> weighted_pick(std::span<const EndpointChoice> candidates, std::span<const size_t> eligible,
                                    Rng& rng) {
  uint64_t total = 0;
  for (size_t i : eligible) total += candidates[i].workload->capacity;
  if (total == 0) return std::nullopt;
  uint64_t draw = rng.below(total);
  for (size_t i : eligible) {
    uint64_t weight = candidates[i].workload->capacity;
    if (draw < weight) return i;
    draw -= weight;
  }
  ZT_ASSERT(false);  // draw < total
  return std::nullopt;
}

}  // namespace

std::optional<size_t> choose_candidate(std::span<const EndpointChoice> candidates, const Workload& src,
                                       const std::optional<LoadBalancer>& lb, Rng& rng) {
  bool ranked = lb && (lb->mode == LbMode::strict || lb->mode == LbMode::failover);
  std::vector<size_t> eligible;
  eligible.reserve(candidates.size());
  size_t best_rank = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!healthy_enough(candidates[i], lb)) continue;
    if (!ranked) {
      eligible.push_back(i);
      continue;
    }
    size_t rank = locality_rank(src, *candidates[i].workload, lb->routing_preference);
    if (lb->mode == LbMode::strict && rank != lb->routing_preference.size()) continue;
    if (eligible.empty() || rank > best_rank) {
      eligible.clear();
      best_rank = rank;
    } else if (rank < best_rank) {
      continue;
    }
    eligible.push_back(i);
  }
  return weighted_pick(candidates, eligible, rng);
}

namespace {

// What the service says about the requested port, looked up once per choice.
struct PortRule {
  uint16_t port;
  bool service_has_port;   // listed at all
  bool service_maps_port;  // listed with a target
};

// Reachability and port filters (upstream's find-upstream rules).
bool usable(const Workload& src, const ServiceEndpoint& ep, const PortRule& rule, ResolutionMode mode) {
  const Workload& w = *ep.workload;
  bool has_address = !w.ips.empty() || !w.hostname.empty();
  // Without an address only a network gateway reaches it, and only from
  // another network (WDS sends gateways even to same-network clients).
  if (!has_address && (w.network == src.network || !w.network_gateway)) return false;
  if (mode == ResolutionMode::standard) return rule.service_maps_port || ep.ports.contains(rule.port);
  return rule.service_has_port || w.application_tunnel.has_value();
}

}  // namespace

Result<EndpointChoice> choose_endpoint(const StateSnapshot& state, const Workload& src, const Service& service,
                                       uint16_t service_port, ResolutionMode mode, Rng& rng,
                                       const AvoidEndpoint& avoid) {
  if (mode == ResolutionMode::standard && !service.ports.contains(service_port))
    return Error(Errc::invalid_argument,
                 "service " + service.hostname + " has no port " + std::to_string(service_port));
  auto listed = service.ports.find(service_port);
  PortRule rule{service_port, listed != service.ports.end(), listed != service.ports.end() && listed->second != 0};
  const EndpointSet& endpoints = state.endpoints_of(service.key());
  std::vector<EndpointChoice> candidates;
  candidates.reserve(endpoints.size());
  for (const auto& [uid, ep] : endpoints)
    if (ep.workload && usable(src, ep, rule, mode))
      candidates.push_back({ep.workload.get(), &ep});
  std::optional<size_t> picked;
  if (avoid) {
    // Choose among the endpoints not avoided first; health and locality
    // still apply, so a FAILOVER service fails over past avoided ones.
    std::vector<EndpointChoice> preferred;
    std::vector<size_t> index;  // into candidates
    for (size_t i = 0; i < candidates.size(); ++i) {
      uint16_t port = target_port(service, candidates[i], service_port).value_or(service_port);
      if (avoid(*candidates[i].workload, port)) continue;
      preferred.push_back(candidates[i]);
      index.push_back(i);
    }
    if (preferred.size() < candidates.size())
      if (auto p = choose_candidate(preferred, src, service.load_balancer, rng)) picked = index[*p];
  }
  if (!picked) picked = choose_candidate(candidates, src, service.load_balancer, rng);
  if (!picked) return Error(Errc::host_unreachable, "service " + service.hostname + " has no usable endpoints");
  return candidates[*picked];
}

std::optional<uint16_t> target_port(const Service& service, const EndpointChoice& choice, uint16_t service_port) {
  if (auto it = choice.endpoint->ports.find(service_port); it != choice.endpoint->ports.end() && it->second != 0)
    return it->second;
  if (auto it = service.ports.find(service_port); it != service.ports.end() && it->second != 0) return it->second;
  if (choice.workload->application_tunnel && choice.workload->application_tunnel->port) return service_port;
  return std::nullopt;
}

}  // namespace zt::core::mesh
