// Outbound routing as a pure function: given who is connecting, where it
// was going and a snapshot, decide how to get there (upstream's
// build_request). No I/O; randomness only from the Rng passed in.
//
//   Rng rng = env.rng.stream("lb");
//   RoutePlan plan = route_outbound(*snap, *source, original_dst, rng);
//   if (plan.kind == RouteKind::refused) log(plan.reason);
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/mesh/lb.h"
#include "core/mesh/model.h"
#include "core/mesh/snapshot.h"
#include "io/address.h"
#include "io/rng.h"

namespace zt::core::mesh {

inline constexpr uint16_t hbone_port_default = 15008;

enum class RouteKind : uint8_t {
  hbone,         // HBONE to the destination's node: next_hop = ip:15008, authority = ip:target_port
  tcp,           // plain TCP to a known workload outside the mesh (port translated)
  waypoint,      // HBONE to the service's or workload's waypoint; authority = original destination
  double_hbone,  // destination on another network: outer HBONE to its network gateway,
                 // inner HBONE with authority = service-hostname:port
  passthrough,   // unknown destination or PASSTHROUGH service: TCP to the original destination
  refused,       // cannot be routed; `reason` says why
};

std::string_view to_string(RouteKind k);

struct RoutePlan {
  RouteKind kind = RouteKind::refused;
  Endpoint next_hop;       // where the TCP connection goes
  std::string authority;   // HBONE CONNECT :authority (empty without HBONE)
  // SPIFFE ids the next hop must present (waypoint or gateway or destination).
  std::vector<std::string> upstream_identities;
  // Double HBONE only: ids for the inner tunnel's peer.
  std::vector<std::string> final_identities;
  std::shared_ptr<const Workload> next_hop_workload;  // null for passthrough
  // The port load balancing saw on next_hop_workload: the target port on the
  // workload (also for HBONE, whose next_hop is the HBONE port), or a
  // waypoint's or gateway's HBONE port. With the workload's uid it names the
  // endpoint for outlier detection (RouteOptions::avoid). 0 for passthrough.
  uint16_t endpoint_port = 0;
  std::optional<NamespacedHostname> service;          // the service the client addressed
  std::string reason;                                 // why refused (and a note otherwise)
};

struct RouteOptions {
  uint16_t hbone_port = hbone_port_default;
  // Endpoints to steer away from wherever a service's endpoints are load
  // balanced (service, waypoint, gateway); see choose_endpoint. The function
  // stays pure: the caller owns whatever state the predicate reads.
  AvoidEndpoint avoid;
};

RoutePlan route_outbound(const StateSnapshot& state, const Workload& source, const Endpoint& original_dst,
                         Rng& rng, const RouteOptions& options = {});

}  // namespace zt::core::mesh
