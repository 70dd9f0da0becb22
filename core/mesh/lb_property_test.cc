// Load-balancing properties over random endpoint sets, sources and policies:
// ONLY_HEALTHY never picks an unhealthy endpoint, STRICT never leaves the
// scope, FAILOVER picks from the best rank available, zero capacity never
// takes traffic, and a pick exists whenever one is possible.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "core/mesh/lb.h"

namespace zt::core::mesh {
namespace {

rc::Gen<Workload> placed_workload() {
  return rc::gen::exec([] {
    Workload w;
    w.uid = "w";
    w.locality.region = *rc::gen::element<std::string>("r1", "r2");
    w.locality.zone = *rc::gen::element<std::string>("z1", "z2");
    w.locality.subzone = *rc::gen::element<std::string>("s1", "s2");
    w.node = *rc::gen::element<std::string>("n1", "n2");
    w.cluster_id = *rc::gen::element<std::string>("c1", "c2");
    w.network = *rc::gen::element<std::string>("", "far");
    w.capacity = *rc::gen::weightedElement<uint32_t>({{1, 0}, {4, 1}, {2, 2}, {1, 5}});
    w.status = *rc::gen::weightedElement<HealthStatus>({{3, HealthStatus::healthy}, {1, HealthStatus::unhealthy}});
    return w;
  });
}

rc::Gen<LoadBalancer> load_balancer() {
  return rc::gen::exec([] {
    LoadBalancer lb;
    auto scopes = *rc::gen::container<std::vector<LbScope>>(
        size_t(*rc::gen::inRange(0, 4)), rc::gen::element(LbScope::region, LbScope::zone, LbScope::subzone,
                                                         LbScope::node, LbScope::cluster, LbScope::network));
    lb.routing_preference = scopes;
    lb.mode = *rc::gen::element(LbMode::standard, LbMode::strict, LbMode::failover);
    lb.health_policy = *rc::gen::element(HealthPolicy::only_healthy, HealthPolicy::allow_all);
    return lb;
  });
}

struct Setup {
  std::vector<Workload> workloads;
  std::vector<ServiceEndpoint> endpoints;
  std::vector<EndpointChoice> candidates;
};

void build(Setup& s) {
  for (size_t i = 0; i < s.workloads.size(); ++i) s.endpoints.push_back({"w", {}, s.workloads[i].status, nullptr});
  for (size_t i = 0; i < s.workloads.size(); ++i) s.candidates.push_back({&s.workloads[i], &s.endpoints[i]});
}

RC_GTEST_PROP(LbProperty, PickRespectsHealthScopeRankAndCapacity, ()) {
  Setup s;
  s.workloads = *rc::gen::container<std::vector<Workload>>(size_t(*rc::gen::inRange(0, 12)), placed_workload());
  build(s);
  Workload src = *placed_workload();
  std::optional<LoadBalancer> lb;
  if (*rc::gen::arbitrary<bool>()) lb = *load_balancer();
  Rng rng(*rc::gen::arbitrary<uint64_t>());

  bool only_healthy = !lb || lb->health_policy == HealthPolicy::only_healthy;
  bool ranked = lb && lb->mode != LbMode::standard;
  size_t full = lb ? lb->routing_preference.size() : 0;
  // What the rules allow, computed independently of choose_candidate.
  std::optional<size_t> best;
  for (const Workload& w : s.workloads) {
    if (only_healthy && w.status != HealthStatus::healthy) continue;
    size_t rank = ranked ? locality_rank(src, w, lb->routing_preference) : 0;
    if (ranked && lb->mode == LbMode::strict && rank != full) continue;
    best = best ? std::max(*best, rank) : rank;
  }
  bool possible = false;
  for (const Workload& w : s.workloads) {
    if (only_healthy && w.status != HealthStatus::healthy) continue;
    size_t rank = ranked ? locality_rank(src, w, lb->routing_preference) : 0;
    if (best && rank == *best && w.capacity > 0 && (!ranked || lb->mode != LbMode::strict || rank == full))
      possible = true;
  }

  auto pick = choose_candidate(s.candidates, src, lb, rng);
  RC_ASSERT(pick.has_value() == possible);
  if (!pick) return;
  const Workload& chosen = s.workloads[*pick];
  RC_ASSERT(chosen.capacity > 0u);
  if (only_healthy) RC_ASSERT(chosen.status == HealthStatus::healthy);
  if (ranked) {
    size_t rank = locality_rank(src, chosen, lb->routing_preference);
    if (lb->mode == LbMode::strict) RC_ASSERT(rank == full);
    RC_ASSERT(rank == *best);
  }
}

RC_GTEST_PROP(LbProperty, LocalityRankCountsLeadingMatches, ()) {
  Workload a = *placed_workload();
  Workload b = *placed_workload();
  LoadBalancer lb = *load_balancer();
  size_t rank = locality_rank(a, b, lb.routing_preference);
  RC_ASSERT(rank <= lb.routing_preference.size());
  RC_ASSERT(locality_rank(a, a, lb.routing_preference) == lb.routing_preference.size());
  RC_ASSERT(rank == locality_rank(b, a, lb.routing_preference));
}

}  // namespace
}  // namespace zt::core::mesh
