#include "core/mesh/config_dump.h"

#include <nlohmann/json.hpp>

namespace zt::core::mesh {

namespace {

using json = nlohmann::ordered_json;

json port_map(const PortMap& ports) {
  json out = json::object();
  for (const auto& [from, to] : ports) out[std::to_string(from)] = to;
  return out;
}

json gateway(const GatewayAddress& g) {
  json out;
  if (const auto* addr = std::get_if<NetworkAddress>(&g.destination)) {
    out["destination"] = addr->to_string();
  } else {
    const auto& host = std::get<NamespacedHostname>(g.destination);
    out["destination"] = {{"namespace", host.ns}, {"hostname", host.hostname}};
  }
  out["hboneMtlsPort"] = g.hbone_mtls_port;
  return out;
}

json workload(const Workload& w) {
  json out;
  out["uid"] = w.uid;
  out["name"] = w.name;
  out["namespace"] = w.ns;
  json ips = json::array();
  for (const IpAddr& ip : w.ips) ips.push_back(ip.to_string());
  out["workloadIps"] = ips;
  out["protocol"] = to_string(w.protocol);
  out["networkMode"] = w.network_mode == NetworkMode::host_network ? "HostNetwork" : "Standard";
  out["trustDomain"] = w.trust_domain;
  out["serviceAccount"] = w.service_account;
  for (auto [key, value] : {std::pair{"network", &w.network}, {"hostname", &w.hostname}, {"node", &w.node},
                            {"workloadName", &w.workload_name}, {"workloadType", &w.workload_type},
                            {"canonicalName", &w.canonical_name}, {"canonicalRevision", &w.canonical_revision}})
    if (!value->empty()) out[key] = *value;
  out["clusterId"] = w.cluster_id;
  out["status"] = to_string(w.status);
  out["capacity"] = w.capacity;
  if (w.waypoint) out["waypoint"] = gateway(*w.waypoint);
  if (w.network_gateway) out["networkGateway"] = gateway(*w.network_gateway);
  if (w.native_tunnel) out["nativeTunnel"] = true;
  if (w.application_tunnel) {
    out["applicationTunnel"]["protocol"] =
        w.application_tunnel->protocol == ApplicationTunnel::Protocol::proxy ? "PROXY" : "NONE";
    if (w.application_tunnel->port) out["applicationTunnel"]["port"] = *w.application_tunnel->port;
  }
  if (!w.authorization_policies.empty()) out["authorizationPolicies"] = w.authorization_policies;
  if (w.locality != Locality{})
    out["locality"] = {{"region", w.locality.region}, {"zone", w.locality.zone}, {"subzone", w.locality.subzone}};
  if (!w.services.empty()) {
    json services = json::object();
    for (const auto& [host, ports] : w.services) services[host.to_string()] = port_map(ports);
    out["services"] = services;
  }
  return out;
}

json load_balancer(const LoadBalancer& lb) {
  json prefs = json::array();
  for (LbScope s : lb.routing_preference) prefs.push_back(to_string(s));
  return {{"routingPreferences", prefs}, {"mode", to_string(lb.mode)}, {"healthPolicy", to_string(lb.health_policy)}};
}

json service(const Service& s, const EndpointSet& endpoints) {
  json out;
  out["name"] = s.name;
  out["namespace"] = s.ns;
  out["hostname"] = s.hostname;
  json vips = json::array();
  for (const NetworkAddress& vip : s.vips) vips.push_back(vip.to_string());
  out["vips"] = vips;
  out["ports"] = port_map(s.ports);
  json eps = json::object();
  for (const auto& [uid, ep] : endpoints)
    eps[uid] = {{"workloadUid", ep.workload_uid}, {"port", port_map(ep.ports)}, {"status", to_string(ep.status)}};
  out["endpoints"] = eps;
  out["subjectAltNames"] = s.subject_alt_names;
  if (s.waypoint) out["waypoint"] = gateway(*s.waypoint);
  if (s.load_balancer) out["loadBalancer"] = load_balancer(*s.load_balancer);
  if (s.ip_families != IpFamilies::automatic) out["ipFamilies"] = to_string(s.ip_families);
  out["canonical"] = s.canonical;
  return out;
}

json string_matches(const std::vector<StringMatch>& matches) {
  json out = json::array();
  for (const StringMatch& m : matches) {
    switch (m.kind) {
      case StringMatch::Kind::exact: out.push_back({{"Exact", m.value}}); break;
      case StringMatch::Kind::prefix: out.push_back({{"Prefix", m.value}}); break;
      case StringMatch::Kind::suffix: out.push_back({{"Suffix", m.value}}); break;
      case StringMatch::Kind::presence: out.push_back({{"Presence", json::array()}}); break;
    }
  }
  return out;
}

json cidrs(const std::vector<Cidr>& list) {
  json out = json::array();
  for (const Cidr& c : list) out.push_back(c.to_string());
  return out;
}

json accounts(const std::vector<ServiceAccountMatch>& list) {
  json out = json::array();
  for (const auto& sa : list) out.push_back({{"namespace", sa.ns}, {"serviceAccount", sa.service_account}});
  return out;
}

// Empty fields are left out, as upstream's serde does.
json match(const RbacMatch& m) {
  json out = json::object();
  auto put = [&](const char* key, json value) {
    if (!value.empty()) out[key] = std::move(value);
  };
  put("namespaces", string_matches(m.namespaces));
  put("notNamespaces", string_matches(m.not_namespaces));
  put("serviceAccounts", accounts(m.service_accounts));
  put("notServiceAccounts", accounts(m.not_service_accounts));
  put("principals", string_matches(m.principals));
  put("notPrincipals", string_matches(m.not_principals));
  put("sourceIps", cidrs(m.source_ips));
  put("notSourceIps", cidrs(m.not_source_ips));
  put("destinationIps", cidrs(m.destination_ips));
  put("notDestinationIps", cidrs(m.not_destination_ips));
  put("destinationPorts", m.destination_ports);
  put("notDestinationPorts", m.not_destination_ports);
  return out;
}

json policy(const Authorization& a) {
  json rules = json::array();
  for (const RbacRule& rule : a.rules) {
    json clauses = json::array();
    for (const RbacClause& clause : rule) {
      json matches = json::array();
      for (const RbacMatch& m : clause) matches.push_back(match(m));
      clauses.push_back(matches);
    }
    rules.push_back(clauses);
  }
  return {{"name", a.name},          {"namespace", a.ns}, {"scope", to_string(a.scope)},
          {"action", to_string(a.action)}, {"rules", rules},   {"dryRun", a.dry_run}};
}

}  // namespace

std::string config_dump_json(const StateSnapshot& state, int indent) {
  json out;
  out["workloads"] = json::array();
  for (const auto& [uid, w] : state.workloads().by_uid) out["workloads"].push_back(workload(*w));
  out["services"] = json::array();
  for (const auto& [key, s] : state.services().by_host)
    out["services"].push_back(service(*s, state.endpoints_of(key)));
  out["policies"] = json::array();
  for (const auto& [key, p] : state.policies().by_key) out["policies"].push_back(policy(*p));
  // Endpoints whose service has not arrived yet (upstream: stagedServices).
  json staged = json::object();
  for (const auto& [key, set] : state.endpoints().by_service)
    if (!state.service_by_host(key)) staged[key.to_string()] = json(set->size());
  out["stagedServices"] = staged;
  // Strings from xDS may hold invalid UTF-8: replace rather than throw.
  return out.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace zt::core::mesh
