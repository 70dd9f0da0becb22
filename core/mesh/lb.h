// Load balancing: which endpoint of a service a connection goes to.
//
// Upstream's rules: drop endpoints that are unhealthy (unless the service's
// health policy is ALLOW_ALL), unreachable (no address and no usable network
// gateway) or without the port; with STRICT or FAILOVER rank the rest by how
// many routing_preference scopes (in order) they share with the source, keep
// the best rank (STRICT: only a full match); then pick at random weighted by
// workload capacity, drawing from the Rng passed in.
//
// Beyond upstream: an optional `avoid` predicate (passive outlier detection:
// endpoints that just failed) is applied first; the choice is made among the
// endpoints it does not avoid, and only if none of those qualifies among all
// of them, so avoiding never makes a service unreachable.
//
//   Rng lb = env.rng.stream("lb");
//   auto pick = choose_endpoint(*snap, source, service, 80, ResolutionMode::standard, lb);
//   if (pick) connect(pick->workload->ips, target_port(service, *pick->endpoint, 80));
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>

#include "core/mesh/model.h"
#include "core/mesh/snapshot.h"
#include "io/result.h"
#include "io/rng.h"

namespace zt::core::mesh {

// Standard: a user asked for this service port, which must exist.
// Waypoint: we look a waypoint up by its HBONE port, which the service need
// not list when the waypoint accepts application tunnels.
enum class ResolutionMode : uint8_t { standard, waypoint };

// True for an endpoint to steer away from: the workload and the port that
// would be dialled on it (the target port).
using AvoidEndpoint = std::function<bool(const Workload&, uint16_t port)>;

struct EndpointChoice {
  const Workload* workload = nullptr;
  const ServiceEndpoint* endpoint = nullptr;
};

// How many leading scopes of `preference` src and dst share.
size_t locality_rank(const Workload& src, const Workload& dst, std::span<const LbScope> preference);

// The last two steps over prepared candidates (health, ranking, weighted
// choice); the index into `candidates`, or none if nothing qualifies.
std::optional<size_t> choose_candidate(std::span<const EndpointChoice> candidates, const Workload& src,
                                       const std::optional<LoadBalancer>& lb, Rng& rng);

Result<EndpointChoice> choose_endpoint(const StateSnapshot& state, const Workload& src, const Service& service,
                                       uint16_t service_port, ResolutionMode mode, Rng& rng,
                                       const AvoidEndpoint& avoid = {});

// The port to dial on the chosen endpoint: the endpoint's own mapping, else
// the service's, else (application tunnel) the service port itself.
std::optional<uint16_t> target_port(const Service& service, const EndpointChoice& choice, uint16_t service_port);

}  // namespace zt::core::mesh
