#include "core/mesh/routing.h"

#include <algorithm>

#include "core/mesh/lb.h"

namespace zt::core::mesh {

std::string_view to_string(RouteKind k) {
  switch (k) {
    case RouteKind::hbone: return "hbone";
    case RouteKind::tcp: return "tcp";
    case RouteKind::waypoint: return "waypoint";
    case RouteKind::double_hbone: return "double_hbone";
    case RouteKind::passthrough: return "passthrough";
    case RouteKind::refused: return "refused";
  }
  return "?";
}

namespace {

// A resolved next hop: a workload, the IP chosen on it (none: reachable only
// through its network gateway), the port, and the service it was found by.
struct Upstream {
  const Workload* workload = nullptr;
  std::optional<IpAddr> ip;
  uint16_t port = 0;
  const Service* service = nullptr;
};

Error no_route(std::string why) { return Error(Errc::host_unreachable, std::move(why)); }

bool family_allowed(IpFamilies f, const IpAddr& ip) {
  if (f == IpFamilies::ipv4_only) return ip.is_v4();
  if (f == IpFamilies::ipv6_only) return ip.is_v6();
  return true;
}

// Which of the workload's IPs to dial: the one asked for if it is the
// workload's, else one the service's family allows, preferring the caller's
// family. Only-hostname workloads would need DNS, which core does not do.
Result<Upstream> pick_ip(Upstream up, const Endpoint& original) {
  const Workload& w = *up.workload;
  if (std::find(w.ips.begin(), w.ips.end(), original.ip) != w.ips.end()) {
    up.ip = original.ip;
    return up;
  }
  IpFamilies families = up.service ? up.service->ip_families : IpFamilies::automatic;
  const IpAddr* fallback = nullptr;
  for (const IpAddr& ip : w.ips) {
    if (!family_allowed(families, ip)) continue;
    if (ip.family() == original.ip.family()) {
      up.ip = ip;
      return up;
    }
    if (!fallback) fallback = &ip;
  }
  if (fallback) {
    up.ip = *fallback;
    return up;
  }
  if (!w.hostname.empty()) return no_route("workload " + w.uid + " has only a hostname; DNS is not supported");
  if (!w.network_gateway) return no_route("workload " + w.uid + " has no suitable address");
  return up;  // no IP: reachable through its network gateway
}

Result<std::optional<Upstream>> from_service(const StateSnapshot& state, const Workload& src, const Service& svc,
                                             uint16_t port, ResolutionMode mode, Rng& rng,
                                             const AvoidEndpoint& avoid) {
  auto choice = choose_endpoint(state, src, svc, port, mode, rng, avoid);
  if (!choice) return choice.error();
  auto target = target_port(svc, *choice, port);
  if (!target) return no_route("service " + svc.hostname + " port " + std::to_string(port) + " has no target");
  return std::optional<Upstream>(Upstream{choice->workload, std::nullopt, *target, &svc});
}

// Service VIP first, then workload address; none for unknown addresses and
// PASSTHROUGH services (both go to the original destination).
Result<std::optional<Upstream>> find_upstream(const StateSnapshot& state, const std::string& network,
                                              const Workload& src, const Endpoint& dst, ResolutionMode mode,
                                              Rng& rng, const AvoidEndpoint& avoid) {
  if (const Service* svc = state.service_by_vip({network, dst.ip})) {
    if (svc->load_balancer && svc->load_balancer->mode == LbMode::passthrough) return std::optional<Upstream>();
    return from_service(state, src, *svc, dst.port, mode, rng, avoid);
  }
  if (const Workload* w = state.workload_by_address({network, dst.ip}))
    return std::optional<Upstream>(Upstream{w, std::nullopt, dst.port, nullptr});
  return std::optional<Upstream>();
}

// A waypoint or network gateway, by address or by host name.
Result<Upstream> resolve_gateway(const StateSnapshot& state, const GatewayAddress& gw, const Workload& src,
                                 const Endpoint& original, ResolutionMode mode, Rng& rng, const AvoidEndpoint& avoid,
                                 std::string_view what) {
  std::optional<Upstream> up;
  Endpoint family_hint = original;
  if (const auto* addr = std::get_if<NetworkAddress>(&gw.destination)) {
    family_hint = {addr->ip, gw.hbone_mtls_port};  // by IP: that IP's family wins
    auto found = find_upstream(state, addr->network, src, family_hint, mode, rng, avoid);
    if (!found) return found.error();
    up = *found;
  } else {
    const auto& host = std::get<NamespacedHostname>(gw.destination);
    if (const Service* svc = state.service_by_host(host)) {
      auto found = from_service(state, src, *svc, gw.hbone_mtls_port, mode, rng, avoid);
      if (!found) return found.error();
      up = *found;
    } else {
      for (const auto& [uid, w] : state.workloads().by_uid)  // rare: workloads named as gateways
        if (w->hostname == host.hostname && w->ns == host.ns) up = Upstream{w.get(), std::nullopt, gw.hbone_mtls_port};
    }
  }
  if (!up) return no_route(std::string(what) + " " + to_string(gw) + " not found");
  return pick_ip(*up, family_hint);
}

std::vector<std::string> identities(const Upstream& up, bool with_workload) {
  std::vector<std::string> out;
  if (up.service)
    for (const std::string& san : up.service->subject_alt_names)
      if (Identity::parse(san)) out.push_back(san);  // upstream ignores malformed SANs
  if (with_workload) out.push_back(up.workload->identity().to_string());
  return out;
}

RoutePlan refused(std::string reason) {
  RoutePlan plan;
  plan.reason = std::move(reason);
  return plan;
}

RoutePlan hbone_to(const StateSnapshot& state, RouteKind kind, const Upstream& next, std::string authority) {
  RoutePlan plan;
  plan.kind = kind;
  plan.next_hop = {*next.ip, next.port};
  plan.authority = std::move(authority);
  plan.upstream_identities = identities(next, true);
  plan.next_hop_workload = state.workload_shared(next.workload->uid);
  plan.endpoint_port = next.port;
  return plan;
}

// Cross-network: outer HBONE to the far network's gateway, inner HBONE to
// service-hostname:port, which the gateway routes.
RoutePlan through_gateway(const StateSnapshot& state, const Workload& src, const Upstream& far,
                          const Service& service, const Endpoint& original, Rng& rng, const AvoidEndpoint& avoid) {
  if (!far.workload->network_gateway)
    return refused("workload " + far.workload->uid + " is on network '" + far.workload->network +
                   "' without a network gateway");
  auto gw = resolve_gateway(state, *far.workload->network_gateway, src, original, ResolutionMode::standard, rng,
                            avoid, "network gateway");
  if (!gw) return refused(gw.error().detail);
  if (!gw->ip) return refused("network gateway " + gw->workload->uid + " has no address");
  RoutePlan plan =
      hbone_to(state, RouteKind::double_hbone, *gw, service.hostname + ":" + std::to_string(original.port));
  plan.final_identities = identities(far, false);  // as upstream: the service's SANs only
  plan.service = service.key();
  return plan;
}

RoutePlan to_waypoint(const StateSnapshot& state, const Workload& src, const GatewayAddress& waypoint,
                      const Service* service, const Endpoint& original, Rng& rng, const AvoidEndpoint& avoid) {
  auto wp = resolve_gateway(state, waypoint, src, original, ResolutionMode::waypoint, rng, avoid, "waypoint");
  if (!wp) return refused(wp.error().detail);
  if (wp->workload->network != src.network) {
    if (!service) return refused("waypoint " + wp->workload->uid + " is on another network");
    return through_gateway(state, src, *wp, *service, original, rng, avoid);
  }
  if (!wp->ip) return refused("waypoint " + wp->workload->uid + " has no address");
  RoutePlan plan = hbone_to(state, RouteKind::waypoint, *wp, original.to_string());
  if (service) plan.service = service->key();
  return plan;
}

RoutePlan direct(const StateSnapshot& state, const Upstream& up, const RouteOptions& options) {
  if (!up.ip) return refused("workload " + up.workload->uid + " has no address");
  Endpoint target{*up.ip, up.port};
  RoutePlan plan;
  if (up.workload->protocol == InboundProtocol::hbone) {
    plan = hbone_to(state, RouteKind::hbone, Upstream{up.workload, up.ip, options.hbone_port, up.service},
                    target.to_string());
  } else {
    plan.kind = RouteKind::tcp;
    plan.next_hop = target;
    plan.upstream_identities = identities(up, true);
    plan.next_hop_workload = state.workload_shared(up.workload->uid);
  }
  plan.endpoint_port = up.port;  // the target port, also for HBONE (next_hop is the HBONE port)
  if (up.service) plan.service = up.service->key();
  return plan;
}

}  // namespace

RoutePlan route_outbound(const StateSnapshot& state, const Workload& source, const Endpoint& original_dst,
                         Rng& rng, const RouteOptions& options) {
  const std::string& network = source.network;
  // Addressed to a service? (An IP that is also a workload's counts as the workload.)
  const Service* service = nullptr;
  if (!state.workload_by_address({network, original_dst.ip})) service = state.service_by_vip({network, original_dst.ip});
  const AvoidEndpoint& avoid = options.avoid;
  if (service && service->waypoint)
    return to_waypoint(state, source, *service->waypoint, service, original_dst, rng, avoid);

  auto found = find_upstream(state, network, source, original_dst, ResolutionMode::standard, rng, avoid);
  if (!found) return refused(found.error().detail);
  if (!*found) {
    bool passthrough = service && service->load_balancer && service->load_balancer->mode == LbMode::passthrough;
    if (service && !passthrough) return refused("service " + service->hostname + " has no healthy upstream");
    RoutePlan plan;
    plan.kind = RouteKind::passthrough;
    plan.next_hop = original_dst;
    plan.reason = service ? "passthrough service" : "unknown destination";
    return plan;
  }
  Upstream up = **found;
  if (up.workload->network != source.network) {
    if (!service) return refused("workload " + up.workload->uid + " on another network is not service-addressed");
    return through_gateway(state, source, up, *service, original_dst, rng, avoid);
  }
  auto picked = pick_ip(up, original_dst);
  if (!picked) return refused(picked.error().detail);
  // Workload-addressed traffic honours the workload's waypoint.
  if (!service && up.workload->waypoint)
    return to_waypoint(state, source, *up.workload->waypoint, nullptr, original_dst, rng, avoid);
  return direct(state, *picked, options);
}

}  // namespace zt::core::mesh
