#include "core/mesh/local_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <initializer_list>

#include "core/mesh/validate.h"

namespace zt::core::mesh {

namespace {

// Reads one document, turning every problem into an Error that names the
// source and the line (yaml-cpp marks are 0-based; editors count from 1).
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  Error at(const YAML::Node& node, const std::string& message) const {
    std::string where(source_);
    if (node.IsDefined() && node.Mark().line >= 0)
      where += ":" + std::to_string(node.Mark().line + 1) + ":" + std::to_string(node.Mark().column + 1);
    return Error(Errc::invalid_argument, where + ": " + message);
  }

  // Upstream denies unknown fields, so a typo is an error, not a silent default.
  Result<void> known_keys(const YAML::Node& map, std::initializer_list<std::string_view> keys) const {
    if (!map.IsMap()) return at(map, "expected a mapping");
    for (const auto& kv : map) {
      std::string key = kv.first.Scalar();
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) return at(kv.first, "unknown field '" + key + "'");
    }
    return {};
  }

  Result<YAML::Node> required(const YAML::Node& map, const char* key) const {
    if (!map[key]) return at(map, std::string("missing field '") + key + "'");
    return map[key];
  }

  Result<std::string> string(const YAML::Node& node, std::string_view what) const {
    if (!node.IsScalar()) return at(node, std::string(what) + ": expected a string");
    return node.Scalar();
  }

  Result<uint64_t> number(const YAML::Node& node, std::string_view what, uint64_t max) const {
    uint64_t value = 0;
    if (!node.IsScalar() || !YAML::convert<uint64_t>::decode(node, value) || value > max)
      return at(node, std::string(what) + ": expected a number up to " + std::to_string(max));
    return value;
  }

  Result<bool> boolean(const YAML::Node& node, std::string_view what) const {
    bool value = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value))
      return at(node, std::string(what) + ": expected true or false");
    return value;
  }

  Result<uint16_t> port(const YAML::Node& node, std::string_view what) const {
    auto n = number(node, what, 65535);
    if (!n) return n.error();
    return uint16_t(*n);
  }

  Result<std::vector<std::string>> strings(const YAML::Node& node, std::string_view what) const {
    if (!node.IsSequence()) return at(node, std::string(what) + ": expected a list");
    std::vector<std::string> out;
    for (const auto& item : node) {
      auto s = string(item, what);
      if (!s) return s.error();
      out.push_back(*s);
    }
    return out;
  }

  // An enum written as its upstream variant name.
  template <class E>
  Result<E> choice(const YAML::Node& node, std::string_view what,
                   std::initializer_list<std::pair<std::string_view, E>> names) const {
    auto s = string(node, what);
    if (!s) return s.error();
    for (const auto& [name, value] : names)
      if (*s == name) return value;
    std::string expected;
    for (const auto& entry : names) expected += (expected.empty() ? "" : ", ") + std::string(entry.first);
    return at(node, std::string(what) + ": '" + *s + "' is not one of " + expected);
  }

 private:
  std::string_view source_;
};

#define ZT_TRY(var, expr)          \
  auto var = (expr);               \
  if (!var) return var.error()

Result<PortMap> port_map(const Reader& r, const YAML::Node& node, std::string_view what) {
  if (!node.IsMap()) return r.at(node, std::string(what) + ": expected a mapping of port: port");
  PortMap out;
  for (const auto& kv : node) {
    ZT_TRY(from, r.port(kv.first, what));
    ZT_TRY(to, r.port(kv.second, what));
    out[*from] = *to;
  }
  return out;
}

Result<NetworkAddress> network_address(const Reader& r, const YAML::Node& node, std::string_view what) {
  ZT_TRY(text, r.string(node, what));
  auto addr = NetworkAddress::parse(*text);
  if (!addr) return r.at(node, std::string(what) + ": " + addr.error().detail);
  return addr;
}

Result<GatewayAddress> gateway(const Reader& r, const YAML::Node& node, std::string_view what) {
  if (auto ok = r.known_keys(node, {"destination", "hboneMtlsPort"}); !ok) return ok.error();
  GatewayAddress out;
  if (node["hboneMtlsPort"]) {
    ZT_TRY(port, r.port(node["hboneMtlsPort"], "hboneMtlsPort"));
    out.hbone_mtls_port = *port;
  }
  const YAML::Node dest = node["destination"];
  if (!dest) return r.at(node, std::string(what) + ": missing destination");
  if (dest.IsScalar()) {  // "network/ip"
    ZT_TRY(addr, network_address(r, dest, what));
    out.destination = *addr;
    return out;
  }
  if (auto ok = r.known_keys(dest, {"namespace", "hostname"}); !ok) return ok.error();
  NamespacedHostname host;
  if (dest["namespace"]) { ZT_TRY(ns, r.string(dest["namespace"], "namespace")); host.ns = *ns; }
  ZT_TRY(hostname_node, r.required(dest, "hostname"));
  ZT_TRY(hostname, r.string(*hostname_node, "hostname"));
  host.hostname = *hostname;
  out.destination = host;
  return out;
}

// Assigns an optional field when present: `if (has(n, "x")) ...` reads badly
// forty times, so the readers below use these.
Result<void> opt_string(const Reader& r, const YAML::Node& n, const char* key, std::string& out) {
  if (!n[key]) return {};
  ZT_TRY(s, r.string(n[key], key));
  out = *s;
  return {};
}

Result<void> workload_strings(const Reader& r, const YAML::Node& n, Workload& w) {
  struct Field { const char* key; std::string* out; };
  for (Field f : {Field{"uid", &w.uid}, {"name", &w.name}, {"namespace", &w.ns}, {"trustDomain", &w.trust_domain},
                  {"serviceAccount", &w.service_account}, {"network", &w.network}, {"hostname", &w.hostname},
                  {"node", &w.node}, {"clusterId", &w.cluster_id}, {"canonicalName", &w.canonical_name},
                  {"canonicalRevision", &w.canonical_revision}, {"workloadName", &w.workload_name},
                  {"workloadType", &w.workload_type}})
    if (auto ok = opt_string(r, n, f.key, *f.out); !ok) return ok;
  return {};
}

Result<void> workload_enums(const Reader& r, const YAML::Node& n, Workload& w) {
  if (n["protocol"]) {
    ZT_TRY(p, r.choice<InboundProtocol>(n["protocol"], "protocol",
                                         {{"TCP", InboundProtocol::tcp}, {"HBONE", InboundProtocol::hbone}}));
    w.protocol = *p;
  }
  if (n["networkMode"]) {
    ZT_TRY(m, r.choice<NetworkMode>(n["networkMode"], "networkMode",
                                     {{"Standard", NetworkMode::standard}, {"HostNetwork", NetworkMode::host_network}}));
    w.network_mode = *m;
  }
  if (n["status"]) {
    ZT_TRY(s, r.choice<HealthStatus>(n["status"], "status",
                                      {{"Healthy", HealthStatus::healthy}, {"Unhealthy", HealthStatus::unhealthy}}));
    w.status = *s;
  }
  if (n["nativeTunnel"]) {
    ZT_TRY(b, r.boolean(n["nativeTunnel"], "nativeTunnel"));
    w.native_tunnel = *b;
  }
  if (n["capacity"]) {
    ZT_TRY(c, r.number(n["capacity"], "capacity", UINT32_MAX));
    w.capacity = uint32_t(*c);
  }
  return {};
}

Result<void> workload_lists(const Reader& r, const YAML::Node& n, Workload& w) {
  if (n["workloadIps"]) {
    ZT_TRY(ips, r.strings(n["workloadIps"], "workloadIps"));
    for (size_t i = 0; i < ips->size(); ++i) {
      auto ip = IpAddr::parse((*ips)[i]);
      if (!ip) return r.at(n["workloadIps"][i], ip.error().detail);
      w.ips.push_back(*ip);
    }
  }
  if (n["authorizationPolicies"]) {
    ZT_TRY(keys, r.strings(n["authorizationPolicies"], "authorizationPolicies"));
    w.authorization_policies = *keys;
  }
  if (const YAML::Node services = n["services"]) {
    if (!services.IsMap()) return r.at(services, "services: expected a mapping of \"ns/host\": {port: port}");
    for (const auto& kv : services) {
      auto host = NamespacedHostname::parse(kv.first.Scalar());
      if (!host) return r.at(kv.first, host.error().detail);
      ZT_TRY(ports, port_map(r, kv.second, "services"));
      w.services[*host] = *ports;
    }
  }
  return {};
}

Result<void> workload_links(const Reader& r, const YAML::Node& n, Workload& w) {
  if (n["waypoint"]) {
    ZT_TRY(g, gateway(r, n["waypoint"], "waypoint"));
    w.waypoint = *g;
  }
  if (n["networkGateway"]) {
    ZT_TRY(g, gateway(r, n["networkGateway"], "networkGateway"));
    w.network_gateway = *g;
  }
  if (const YAML::Node loc = n["locality"]) {
    if (auto ok = r.known_keys(loc, {"region", "zone", "subzone"}); !ok) return ok;
    for (auto [key, out] : {std::pair{"region", &w.locality.region}, {"zone", &w.locality.zone},
                            {"subzone", &w.locality.subzone}})
      if (auto ok = opt_string(r, loc, key, *out); !ok) return ok;
  }
  if (const YAML::Node tunnel = n["applicationTunnel"]) {
    if (auto ok = r.known_keys(tunnel, {"protocol", "port"}); !ok) return ok;
    ApplicationTunnel t;
    ZT_TRY(protocol, r.required(tunnel, "protocol"));
    ZT_TRY(p, r.choice<ApplicationTunnel::Protocol>(*protocol, "protocol",
                                                    {{"NONE", ApplicationTunnel::Protocol::none},
                                                     {"PROXY", ApplicationTunnel::Protocol::proxy}}));
    t.protocol = *p;
    if (tunnel["port"]) {
      ZT_TRY(port, r.port(tunnel["port"], "port"));
      t.port = *port;
    }
    w.application_tunnel = t;
  }
  return {};
}

Result<Workload> read_workload(const Reader& r, const YAML::Node& n) {
  auto known = r.known_keys(n, {"uid", "name", "namespace", "trustDomain", "serviceAccount", "network", "hostname",
                                "node", "clusterId", "canonicalName", "canonicalRevision", "workloadName",
                                "workloadType", "workloadIps", "protocol", "networkMode", "status", "nativeTunnel",
                                "capacity", "authorizationPolicies", "services", "waypoint", "networkGateway",
                                "locality", "applicationTunnel"});
  if (!known) return known.error();
  Workload w;
  for (auto step : {workload_strings, workload_enums, workload_lists, workload_links})
    if (auto ok = step(r, n, w); !ok) return ok.error();
  if (w.uid.empty()) return r.at(n, "workload has no uid");
  return w;
}

Result<LoadBalancer> read_load_balancer(const Reader& r, const YAML::Node& n) {
  if (auto ok = r.known_keys(n, {"routingPreferences", "mode", "healthPolicy"}); !ok) return ok.error();
  LoadBalancer lb;
  if (const YAML::Node prefs = n["routingPreferences"]) {
    if (!prefs.IsSequence()) return r.at(prefs, "routingPreferences: expected a list");
    for (const auto& p : prefs) {
      ZT_TRY(scope, r.choice<LbScope>(p, "routingPreferences",
                                      {{"Region", LbScope::region}, {"Zone", LbScope::zone},
                                       {"Subzone", LbScope::subzone}, {"Node", LbScope::node},
                                       {"Cluster", LbScope::cluster}, {"Network", LbScope::network}}));
      lb.routing_preference.push_back(*scope);
    }
  }
  if (n["mode"]) {
    ZT_TRY(mode, r.choice<LbMode>(n["mode"], "mode",
                                  {{"Standard", LbMode::standard}, {"Strict", LbMode::strict},
                                   {"Failover", LbMode::failover}, {"Passthrough", LbMode::passthrough}}));
    lb.mode = *mode;
  }
  if (n["healthPolicy"]) {
    ZT_TRY(hp, r.choice<HealthPolicy>(n["healthPolicy"], "healthPolicy",
                                      {{"OnlyHealthy", HealthPolicy::only_healthy},
                                       {"AllowAll", HealthPolicy::allow_all}}));
    lb.health_policy = *hp;
  }
  return lb;
}

Result<void> service_extras(const Reader& r, const YAML::Node& n, Service& s) {
  if (n["subjectAltNames"]) {
    ZT_TRY(sans, r.strings(n["subjectAltNames"], "subjectAltNames"));
    s.subject_alt_names = *sans;
  }
  if (n["waypoint"]) {
    ZT_TRY(g, gateway(r, n["waypoint"], "waypoint"));
    s.waypoint = *g;
  }
  if (n["loadBalancer"]) {
    ZT_TRY(lb, read_load_balancer(r, n["loadBalancer"]));
    s.load_balancer = *lb;
  }
  if (n["ipFamilies"]) {
    ZT_TRY(f, r.choice<IpFamilies>(n["ipFamilies"], "ipFamilies",
                                   {{"Dual", IpFamilies::dual}, {"IPv4", IpFamilies::ipv4_only},
                                    {"IPv6", IpFamilies::ipv6_only}}));
    s.ip_families = *f;
  }
  if (n["canonical"]) {
    ZT_TRY(b, r.boolean(n["canonical"], "canonical"));
    s.canonical = *b;
  }
  return {};
}

Result<Service> read_service(const Reader& r, const YAML::Node& n) {
  auto known = r.known_keys(n, {"name", "namespace", "hostname", "vips", "ports", "subjectAltNames", "waypoint",
                                "loadBalancer", "ipFamilies", "canonical", "endpoints"});
  if (!known) return known.error();
  if (n["endpoints"]) return r.at(n["endpoints"], "endpoints come from workloads' `services`; list them there");
  Service s;
  for (auto [key, out] : {std::pair{"name", &s.name}, {"namespace", &s.ns}, {"hostname", &s.hostname}})
    if (auto ok = opt_string(r, n, key, *out); !ok) return ok.error();
  if (s.hostname.empty()) return r.at(n, "service has no hostname");
  if (const YAML::Node vips = n["vips"]) {
    if (!vips.IsSequence()) return r.at(vips, "vips: expected a list of \"network/ip\"");
    for (const auto& v : vips) {
      ZT_TRY(addr, network_address(r, v, "vips"));
      s.vips.push_back(*addr);
    }
  }
  if (n["ports"]) {
    ZT_TRY(ports, port_map(r, n["ports"], "ports"));
    s.ports = *ports;
  }
  if (auto ok = service_extras(r, n, s); !ok) return ok.error();
  return s;
}

// A StringMatch as serde writes it: {Exact: x} / {Prefix: x} / {Suffix: x} /
// {Presence: []}, or with a YAML tag (!Exact x).
Result<StringMatch> read_string_match(const Reader& r, const YAML::Node& n) {
  std::string kind;
  YAML::Node value;
  if (n.IsMap() && n.size() == 1) {
    kind = n.begin()->first.Scalar();
    value = n.begin()->second;
  } else if (n.Tag().size() > 1 && n.Tag()[0] == '!') {
    kind = n.Tag().substr(1);
    value = n;
  } else {
    return r.at(n, "expected a string match: {Exact|Prefix|Suffix: text} or {Presence: []}");
  }
  if (kind == "Presence") return StringMatch{StringMatch::Kind::presence, {}};
  ZT_TRY(text, r.string(value, kind));
  if (kind == "Exact") return StringMatch{StringMatch::Kind::exact, *text};
  if (kind == "Prefix") return StringMatch{StringMatch::Kind::prefix, *text};
  if (kind == "Suffix") return StringMatch{StringMatch::Kind::suffix, *text};
  return r.at(n, "unknown string match '" + kind + "'");
}

template <class T, class ReadOne>
Result<void> read_list(const Reader& r, const YAML::Node& n, const char* key, std::vector<T>& out, ReadOne read) {
  if (!n[key]) return {};
  if (!n[key].IsSequence()) return r.at(n[key], std::string(key) + ": expected a list");
  for (const auto& item : n[key]) {
    auto value = read(item);
    if (!value) return value.error();
    out.push_back(*value);
  }
  return {};
}

Result<RbacMatch> read_match(const Reader& r, const YAML::Node& n) {
  if (auto ok = r.known_keys(n, {"namespaces", "notNamespaces", "principals", "notPrincipals", "sourceIps",
                                 "notSourceIps", "destinationIps", "notDestinationIps", "destinationPorts",
                                 "notDestinationPorts", "serviceAccounts", "notServiceAccounts"});
      !ok)
    return ok.error();
  RbacMatch m;
  auto strings = [&](const YAML::Node& item) { return read_string_match(r, item); };
  auto cidr = [&](const YAML::Node& item) -> Result<Cidr> {
    ZT_TRY(text, r.string(item, "CIDR"));
    auto c = Cidr::parse(*text);
    if (!c) return r.at(item, c.error().detail);
    return c;
  };
  auto port = [&](const YAML::Node& item) { return r.port(item, "port"); };
  auto account = [&](const YAML::Node& item) -> Result<ServiceAccountMatch> {
    if (auto ok = r.known_keys(item, {"namespace", "serviceAccount"}); !ok) return ok.error();
    ZT_TRY(ns_node, r.required(item, "namespace"));
    ZT_TRY(sa_node, r.required(item, "serviceAccount"));
    ZT_TRY(ns, r.string(*ns_node, "namespace"));
    ZT_TRY(sa, r.string(*sa_node, "serviceAccount"));
    return ServiceAccountMatch{*ns, *sa};
  };
  for (auto ok : {read_list(r, n, "namespaces", m.namespaces, strings),
                  read_list(r, n, "notNamespaces", m.not_namespaces, strings),
                  read_list(r, n, "principals", m.principals, strings),
                  read_list(r, n, "notPrincipals", m.not_principals, strings),
                  read_list(r, n, "sourceIps", m.source_ips, cidr),
                  read_list(r, n, "notSourceIps", m.not_source_ips, cidr),
                  read_list(r, n, "destinationIps", m.destination_ips, cidr),
                  read_list(r, n, "notDestinationIps", m.not_destination_ips, cidr),
                  read_list(r, n, "destinationPorts", m.destination_ports, port),
                  read_list(r, n, "notDestinationPorts", m.not_destination_ports, port),
                  read_list(r, n, "serviceAccounts", m.service_accounts, account),
                  read_list(r, n, "notServiceAccounts", m.not_service_accounts, account)})
    if (!ok) return ok.error();
  return m;
}

// rules: a list (ORed) of lists (ANDed) of lists (ORed) of matches.
Result<void> read_rules(const Reader& r, const YAML::Node& n, Authorization& a) {
  if (!n.IsSequence()) return r.at(n, "rules: expected a list of rules");
  for (const auto& rule : n) {
    if (!rule.IsSequence()) return r.at(rule, "rule: expected a list of clauses");
    RbacRule& out_rule = a.rules.emplace_back();
    for (const auto& clause : rule) {
      if (!clause.IsSequence()) return r.at(clause, "clause: expected a list of matches");
      RbacClause& out_clause = out_rule.emplace_back();
      for (const auto& match : clause) {
        ZT_TRY(m, read_match(r, match));
        out_clause.push_back(*m);
      }
    }
  }
  return {};
}

Result<Authorization> read_policy(const Reader& r, const YAML::Node& n) {
  if (auto ok = r.known_keys(n, {"name", "namespace", "scope", "action", "rules", "dryRun"}); !ok) return ok.error();
  Authorization a;
  if (auto ok = opt_string(r, n, "name", a.name); !ok) return ok.error();
  if (auto ok = opt_string(r, n, "namespace", a.ns); !ok) return ok.error();
  if (a.name.empty()) return r.at(n, "policy has no name");
  ZT_TRY(scope_node, r.required(n, "scope"));
  ZT_TRY(action_node, r.required(n, "action"));
  ZT_TRY(scope, r.choice<RbacScope>(*scope_node, "scope",
                                    {{"Global", RbacScope::global}, {"Namespace", RbacScope::ns},
                                     {"WorkloadSelector", RbacScope::workload_selector}}));
  a.scope = *scope;
  ZT_TRY(action, r.choice<RbacAction>(*action_node, "action",
                                      {{"Allow", RbacAction::allow}, {"Deny", RbacAction::deny}}));
  a.action = *action;
  if (n["dryRun"]) {
    ZT_TRY(b, r.boolean(n["dryRun"], "dryRun"));
    a.dry_run = *b;
  }
  if (n["rules"])
    if (auto ok = read_rules(r, n["rules"], a); !ok) return ok.error();
  return a;
}

Result<LocalConfig> read_document(const Reader& r, const YAML::Node& root) {
  LocalConfig config;
  if (!root || root.IsNull()) return config;  // an empty file is an empty mesh
  if (!root.IsMap()) return r.at(root, "expected a mapping with workloads, policies and services");
  if (auto ok = r.known_keys(root, {"workloads", "policies", "services"}); !ok) return ok.error();
  auto workload = [&](const YAML::Node& n) { return read_workload(r, n); };
  auto service = [&](const YAML::Node& n) { return read_service(r, n); };
  auto policy = [&](const YAML::Node& n) { return read_policy(r, n); };
  for (auto ok : {read_list(r, root, "workloads", config.workloads, workload),
                  read_list(r, root, "services", config.services, service),
                  read_list(r, root, "policies", config.policies, policy)})
    if (!ok) return ok.error();
  return config;
}

}  // namespace

Result<LocalConfig> parse_local_config(std::string_view yaml_text, std::string_view source_name) {
  Reader reader(source_name);
  // yaml-cpp throws on syntax errors (and on misuse); nothing may escape core.
  try {
    YAML::Node root = YAML::Load(std::string(yaml_text));
    return read_document(reader, root);
  } catch (const YAML::Exception& e) {
    return Error(Errc::invalid_argument, std::string(source_name) + ":" + std::to_string(e.mark.line + 1) + ":" +
                                             std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
}

void load_local_config(MeshStore& store, const LocalConfig& config) {
  store.clear();
  for (const Workload& w : config.workloads) store.upsert_workload(w);
  for (const Service& s : config.services) store.upsert_service(s);
  for (const Authorization& a : config.policies) store.upsert_policy(a.key(), a);
}

}  // namespace zt::core::mesh
