#include "core/mesh/model.h"

#include "io/rng.h"

namespace zt::core::mesh {

std::string NetworkAddress::to_string() const { return network + "/" + ip.to_string(); }

Result<NetworkAddress> NetworkAddress::parse(std::string_view text) {
  // IPv6 addresses contain ':' but never '/', so the last '/' splits safely.
  size_t slash = text.rfind('/');
  std::string_view network = slash == std::string_view::npos ? "" : text.substr(0, slash);
  std::string_view ip_text = slash == std::string_view::npos ? text : text.substr(slash + 1);
  auto ip = IpAddr::parse(ip_text);
  if (!ip) return Error(Errc::invalid_argument, "bad network address '" + std::string(text) + "'");
  return NetworkAddress{std::string(network), *ip};
}

size_t NetworkAddressHash::operator()(const NetworkAddress& a) const {
  return size_t(stable_hash(a.ip) ^ (stable_hash(a.network) * 0x9e3779b97f4a7c15ULL));
}

std::string NamespacedHostname::to_string() const { return ns + "/" + hostname; }

Result<NamespacedHostname> NamespacedHostname::parse(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos)
    return Error(Errc::invalid_argument, "expected namespace/hostname, got '" + std::string(text) + "'");
  return NamespacedHostname{std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
}

std::string Identity::to_string() const {
  return "spiffe://" + trust_domain + "/ns/" + ns + "/sa/" + service_account;
}

Result<Identity> Identity::parse(std::string_view uri) {
  auto fail = [&] { return Error(Errc::invalid_argument, "not a SPIFFE identity: '" + std::string(uri) + "'"); };
  constexpr std::string_view scheme = "spiffe://";
  if (uri.substr(0, scheme.size()) != scheme) return fail();
  std::string_view rest = uri.substr(scheme.size());
  // Exactly <td>/ns/<ns>/sa/<sa>, each part non-empty.
  std::string_view parts[5];
  for (int i = 0; i < 4; ++i) {
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos) return fail();
    parts[i] = rest.substr(0, slash);
    rest = rest.substr(slash + 1);
  }
  parts[4] = rest;
  if (parts[1] != "ns" || parts[3] != "sa" || rest.find('/') != std::string_view::npos) return fail();
  if (parts[0].empty() || parts[2].empty() || parts[4].empty()) return fail();
  return Identity{std::string(parts[0]), std::string(parts[2]), std::string(parts[4])};
}

std::string_view to_string(InboundProtocol p) { return p == InboundProtocol::hbone ? "HBONE" : "TCP"; }
std::string_view to_string(HealthStatus s) { return s == HealthStatus::healthy ? "Healthy" : "Unhealthy"; }

std::string_view to_string(LbScope s) {
  switch (s) {
    case LbScope::region: return "Region";
    case LbScope::zone: return "Zone";
    case LbScope::subzone: return "Subzone";
    case LbScope::node: return "Node";
    case LbScope::cluster: return "Cluster";
    case LbScope::network: return "Network";
  }
  return "?";
}

std::string_view to_string(LbMode m) {
  switch (m) {
    case LbMode::standard: return "Standard";
    case LbMode::strict: return "Strict";
    case LbMode::failover: return "Failover";
    case LbMode::passthrough: return "Passthrough";
  }
  return "?";
}

std::string_view to_string(HealthPolicy p) {
  return p == HealthPolicy::allow_all ? "AllowAll" : "OnlyHealthy";
}

std::string_view to_string(IpFamilies f) {
  switch (f) {
    case IpFamilies::automatic: return "Automatic";
    case IpFamilies::ipv4_only: return "IPv4";
    case IpFamilies::ipv6_only: return "IPv6";
    case IpFamilies::dual: return "Dual";
  }
  return "?";
}

std::string to_string(const GatewayAddress& g) {
  std::string where = std::holds_alternative<NetworkAddress>(g.destination)
                          ? std::get<NetworkAddress>(g.destination).to_string()
                          : std::get<NamespacedHostname>(g.destination).to_string();
  return where + ":" + std::to_string(g.hbone_mtls_port);
}

}  // namespace zt::core::mesh
