#include "core/mesh/validate.h"

#include <algorithm>
#include <cctype>

namespace zt::core::mesh {

namespace {

namespace pw = istio::workload;
namespace ps = istio::security;

Error invalid(std::string detail) { return Error(Errc::invalid_argument, std::move(detail)); }

Result<IpAddr> ip_from_bytes(const std::string& bytes, std::string_view what) {
  auto ip = IpAddr::from_raw(bytes);
  if (!ip) return invalid(std::string(what) + ": " + ip.error().detail);
  return ip;
}

Result<GatewayAddress> gateway(const pw::GatewayAddress& g, std::string_view what) {
  auto port = validate_port(g.hbone_mtls_port(), std::string(what) + " hbone_mtls_port");
  if (!port) return port.error();
  GatewayAddress out;
  out.hbone_mtls_port = *port;
  switch (g.destination_case()) {
    case pw::GatewayAddress::kAddress: {
      auto ip = ip_from_bytes(g.address().address(), what);
      if (!ip) return ip.error();
      out.destination = NetworkAddress{g.address().network(), *ip};
      return out;
    }
    case pw::GatewayAddress::kHostname:
      if (g.hostname().hostname().empty()) return invalid(std::string(what) + ": empty hostname");
      out.destination = NamespacedHostname{g.hostname().namespace_(), g.hostname().hostname()};
      return out;
    default:
      return invalid(std::string(what) + ": gateway address has no destination");
  }
}

Result<PortMap> ports(const google::protobuf::RepeatedPtrField<pw::Port>& list, std::string_view what) {
  PortMap out;
  for (const pw::Port& p : list) {
    auto service_port = validate_port(p.service_port(), std::string(what) + " service_port");
    if (!service_port) return service_port.error();
    auto target_port = validate_port(p.target_port(), std::string(what) + " target_port");
    if (!target_port) return target_port.error();
    out[*service_port] = *target_port;
  }
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

Result<void> workload_enums(const pw::Workload& p, Workload& w) {
  switch (p.tunnel_protocol()) {
    case pw::NONE: w.protocol = InboundProtocol::tcp; break;
    case pw::HBONE: w.protocol = InboundProtocol::hbone; break;
    case pw::LEGACY_ISTIO_MTLS: return invalid("tunnel protocol LEGACY_ISTIO_MTLS is not supported");
    default: return invalid("unknown tunnel protocol " + std::to_string(p.tunnel_protocol()));
  }
  switch (p.network_mode()) {
    case pw::STANDARD: w.network_mode = NetworkMode::standard; break;
    case pw::HOST_NETWORK: w.network_mode = NetworkMode::host_network; break;
    default: return invalid("unknown network mode " + std::to_string(p.network_mode()));
  }
  switch (p.status()) {
    case pw::HEALTHY: w.status = HealthStatus::healthy; break;
    case pw::UNHEALTHY: w.status = HealthStatus::unhealthy; break;
    default: return invalid("unknown workload status " + std::to_string(p.status()));
  }
  if (!pw::WorkloadType_IsValid(p.workload_type()))
    return invalid("unknown workload type " + std::to_string(p.workload_type()));
  w.workload_type = lower(pw::WorkloadType_Name(p.workload_type()));
  return {};
}

Result<void> workload_links(const pw::Workload& p, Workload& w) {
  if (p.has_waypoint()) {
    auto g = gateway(p.waypoint(), "waypoint");
    if (!g) return g.error();
    w.waypoint = *g;
  }
  if (p.has_network_gateway()) {
    auto g = gateway(p.network_gateway(), "network_gateway");
    if (!g) return g.error();
    w.network_gateway = *g;
  }
  if (p.has_application_tunnel()) {
    const auto& t = p.application_tunnel();
    ApplicationTunnel tunnel;
    if (t.protocol() == pw::ApplicationTunnel::PROXY) tunnel.protocol = ApplicationTunnel::Protocol::proxy;
    else if (t.protocol() != pw::ApplicationTunnel::NONE)
      return invalid("unknown application tunnel protocol " + std::to_string(t.protocol()));
    auto port = validate_port(t.port(), "application_tunnel port");
    if (!port) return port.error();
    if (*port != 0) tunnel.port = *port;
    w.application_tunnel = tunnel;
  }
  // Protobuf maps iterate in no fixed order; std::map sorts them.
  for (const auto& [key, list] : p.services()) {
    auto host = NamespacedHostname::parse(key);
    if (!host) return invalid("services: " + host.error().detail);
    auto mapping = ports(list.ports(), "services[" + key + "]");
    if (!mapping) return mapping.error();
    w.services[*host] = std::move(*mapping);
  }
  return {};
}

}  // namespace

Result<uint16_t> validate_port(uint64_t value, std::string_view what) {
  if (value > 65535) return invalid(std::string(what) + " " + std::to_string(value) + " is not a port");
  return uint16_t(value);
}

Result<Workload> validate_workload(const pw::Workload& p) {
  if (p.uid().empty()) return invalid("workload has no uid");
  Workload w;
  w.uid = p.uid();
  w.name = p.name();
  w.ns = p.namespace_();
  if (!p.trust_domain().empty()) w.trust_domain = p.trust_domain();
  if (!p.service_account().empty()) w.service_account = p.service_account();
  if (!p.cluster_id().empty()) w.cluster_id = p.cluster_id();
  w.network = p.network();
  w.hostname = p.hostname();
  w.node = p.node();
  w.canonical_name = p.canonical_name();
  w.canonical_revision = p.canonical_revision();
  w.workload_name = p.workload_name();
  w.native_tunnel = p.native_tunnel();
  w.capacity = p.has_capacity() ? p.capacity().value() : 1;
  if (p.has_locality()) w.locality = {p.locality().region(), p.locality().zone(), p.locality().subzone()};
  w.authorization_policies.assign(p.authorization_policies().begin(), p.authorization_policies().end());
  for (const std::string& raw : p.addresses()) {
    auto ip = ip_from_bytes(raw, "addresses");
    if (!ip) return ip.error();
    w.ips.push_back(*ip);
  }
  if (auto r = workload_enums(p, w); !r) return r.error();
  if (auto r = workload_links(p, w); !r) return r.error();
  return w;
}

namespace {

Result<LoadBalancer> load_balancer(const pw::LoadBalancing& lb) {
  LoadBalancer out;
  for (int scope : lb.routing_preference()) {
    if (scope < pw::LoadBalancing::REGION || scope > pw::LoadBalancing::NETWORK)
      return invalid("load_balancing: invalid routing preference scope " + std::to_string(scope));
    out.routing_preference.push_back(LbScope(scope - pw::LoadBalancing::REGION));
  }
  switch (lb.mode()) {
    case pw::LoadBalancing::UNSPECIFIED_MODE: out.mode = LbMode::standard; break;
    case pw::LoadBalancing::STRICT: out.mode = LbMode::strict; break;
    case pw::LoadBalancing::FAILOVER: out.mode = LbMode::failover; break;
    case pw::LoadBalancing::PASSTHROUGH: out.mode = LbMode::passthrough; break;
    default: return invalid("load_balancing: unknown mode " + std::to_string(lb.mode()));
  }
  switch (lb.health_policy()) {
    case pw::LoadBalancing::ONLY_HEALTHY: out.health_policy = HealthPolicy::only_healthy; break;
    case pw::LoadBalancing::ALLOW_ALL: out.health_policy = HealthPolicy::allow_all; break;
    default: return invalid("load_balancing: unknown health policy " + std::to_string(lb.health_policy()));
  }
  return out;
}

}  // namespace

Result<Service> validate_service(const pw::Service& p) {
  if (p.hostname().empty()) return invalid("service has no hostname");
  Service s;
  s.name = p.name();
  s.ns = p.namespace_();
  s.hostname = p.hostname();
  s.canonical = p.canonical();
  s.ingress_use_waypoint = p.ingress_use_waypoint();
  s.subject_alt_names.assign(p.subject_alt_names().begin(), p.subject_alt_names().end());
  for (const pw::NetworkAddress& a : p.addresses()) {
    auto ip = ip_from_bytes(a.address(), "addresses");
    if (!ip) return ip.error();
    s.vips.push_back({a.network(), *ip});
  }
  auto mapping = ports(p.ports(), "ports");
  if (!mapping) return mapping.error();
  s.ports = std::move(*mapping);
  if (p.has_waypoint()) {
    auto g = gateway(p.waypoint(), "waypoint");
    if (!g) return g.error();
    s.waypoint = *g;
  }
  if (p.has_load_balancing()) {
    auto lb = load_balancer(p.load_balancing());
    if (!lb) return lb.error();
    s.load_balancer = *lb;
  }
  if (!pw::IPFamilies_IsValid(p.ip_families()))
    return invalid("unknown ip_families " + std::to_string(p.ip_families()));
  s.ip_families = IpFamilies(p.ip_families());
  return s;
}

namespace {

Result<void> string_matches(const google::protobuf::RepeatedPtrField<ps::StringMatch>& in,
                            std::vector<StringMatch>& out, std::string_view what) {
  for (const ps::StringMatch& m : in) {
    switch (m.match_type_case()) {
      case ps::StringMatch::kExact: out.push_back({StringMatch::Kind::exact, m.exact()}); break;
      case ps::StringMatch::kPrefix: out.push_back({StringMatch::Kind::prefix, m.prefix()}); break;
      case ps::StringMatch::kSuffix: out.push_back({StringMatch::Kind::suffix, m.suffix()}); break;
      case ps::StringMatch::kPresence: out.push_back({StringMatch::Kind::presence, {}}); break;
      // Upstream silently drops a matcher with no type, which can turn a
      // positive list into an empty one that matches everything. We reject.
      default: return invalid(std::string(what) + ": string match without a match type");
    }
  }
  return {};
}

Result<void> cidrs(const google::protobuf::RepeatedPtrField<ps::Address>& in, std::vector<Cidr>& out,
                   std::string_view what) {
  for (const ps::Address& a : in) {
    auto ip = ip_from_bytes(a.address(), what);
    if (!ip) return ip.error();
    uint32_t max_len = ip->is_v4() ? 32 : 128;
    if (a.length() > max_len)
      return invalid(std::string(what) + ": prefix length " + std::to_string(a.length()) + " too long");
    out.push_back({*ip, uint8_t(a.length())});
  }
  return {};
}

Result<void> port_list(const google::protobuf::RepeatedField<uint32_t>& in, std::vector<uint16_t>& out,
                       std::string_view what) {
  for (uint32_t v : in) {
    auto port = validate_port(v, what);
    if (!port) return port.error();
    out.push_back(*port);
  }
  return {};
}

void service_accounts(const google::protobuf::RepeatedPtrField<ps::ServiceAccountMatch>& in,
                      std::vector<ServiceAccountMatch>& out) {
  for (const auto& sa : in) out.push_back({sa.namespace_(), sa.serviceaccount()});
}

Result<RbacMatch> rbac_match(const ps::Match& m) {
  RbacMatch out;
  service_accounts(m.service_accounts(), out.service_accounts);
  service_accounts(m.not_service_accounts(), out.not_service_accounts);
  for (auto r : {string_matches(m.namespaces(), out.namespaces, "namespaces"),
                 string_matches(m.not_namespaces(), out.not_namespaces, "not_namespaces"),
                 string_matches(m.principals(), out.principals, "principals"),
                 string_matches(m.not_principals(), out.not_principals, "not_principals"),
                 cidrs(m.source_ips(), out.source_ips, "source_ips"),
                 cidrs(m.not_source_ips(), out.not_source_ips, "not_source_ips"),
                 cidrs(m.destination_ips(), out.destination_ips, "destination_ips"),
                 cidrs(m.not_destination_ips(), out.not_destination_ips, "not_destination_ips"),
                 port_list(m.destination_ports(), out.destination_ports, "destination_ports"),
                 port_list(m.not_destination_ports(), out.not_destination_ports, "not_destination_ports")})
    if (!r) return r.error();
  return out;
}

}  // namespace

Result<Authorization> validate_authorization(const ps::Authorization& p) {
  if (p.name().empty()) return invalid("authorization has no name");
  Authorization a;
  a.name = p.name();
  a.ns = p.namespace_();
  a.dry_run = p.dry_run();
  switch (p.scope()) {
    case ps::GLOBAL: a.scope = RbacScope::global; break;
    case ps::NAMESPACE: a.scope = RbacScope::ns; break;
    case ps::WORKLOAD_SELECTOR: a.scope = RbacScope::workload_selector; break;
    default: return invalid("unknown scope " + std::to_string(p.scope()));
  }
  switch (p.action()) {
    case ps::ALLOW: a.action = RbacAction::allow; break;
    case ps::DENY: a.action = RbacAction::deny; break;
    default: return invalid("unknown action " + std::to_string(p.action()));
  }
  for (const ps::Rule& rule : p.rules()) {
    RbacRule& r = a.rules.emplace_back();
    for (const ps::Clause& clause : rule.clauses()) {
      RbacClause& c = r.emplace_back();
      for (const ps::Match& m : clause.matches()) {
        auto match = rbac_match(m);
        if (!match) return invalid("rule " + std::to_string(a.rules.size() - 1) + ": " + match.error().detail);
        c.push_back(std::move(*match));
      }
    }
  }
  return a;
}

}  // namespace zt::core::mesh
