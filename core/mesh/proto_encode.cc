#include "core/mesh/proto_encode.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cctype>

namespace zt::core::mesh {

namespace {

namespace pw = istio::workload;
namespace ps = istio::security;

Error refuse(std::string detail) { return Error(Errc::invalid_argument, std::move(detail)); }

std::string raw_bytes(const IpAddr& ip) { return std::string(reinterpret_cast<const char*>(ip.data()), ip.size()); }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void set_network_address(const NetworkAddress& in, pw::NetworkAddress& out) {
  out.set_network(in.network);
  out.set_address(raw_bytes(in.ip));
}

Result<void> set_gateway(const GatewayAddress& in, pw::GatewayAddress& out, std::string_view what) {
  out.set_hbone_mtls_port(in.hbone_mtls_port);
  if (const auto* addr = std::get_if<NetworkAddress>(&in.destination)) {
    set_network_address(*addr, *out.mutable_address());
    return {};
  }
  const auto& host = std::get<NamespacedHostname>(in.destination);
  if (host.hostname.empty()) return refuse(std::string(what) + ": empty hostname");
  out.mutable_hostname()->set_namespace_(host.ns);
  out.mutable_hostname()->set_hostname(host.hostname);
  return {};
}

void add_ports(const PortMap& ports, google::protobuf::RepeatedPtrField<pw::Port>& out) {
  for (const auto& [service_port, target_port] : ports) {
    pw::Port* p = out.Add();
    p->set_service_port(service_port);
    p->set_target_port(target_port);
  }
}

// validate.h reads the enum's name in lower case ("DEPLOYMENT" ->
// "deployment"); only a string that reads back identically has a form.
Result<pw::WorkloadType> workload_type(const std::string& name) {
  for (int v = pw::WorkloadType_MIN; v <= pw::WorkloadType_MAX; ++v)
    if (pw::WorkloadType_IsValid(v) && lower(pw::WorkloadType_Name(pw::WorkloadType(v))) == name)
      return pw::WorkloadType(v);
  return refuse("workload type '" + name + "' has no xDS form (deployment, cronjob, pod, job)");
}

// Fields whose empty value the decoder replaces with a default.
Result<void> defaults_survive(const Workload& w) {
  struct Field { std::string_view what; const std::string* value; };
  for (Field f : {Field{"trust domain", &w.trust_domain}, {"service account", &w.service_account},
                  {"cluster id", &w.cluster_id}})
    if (f.value->empty()) return refuse(std::string(f.what) + " is empty (it would read back as the default)");
  return {};
}

void workload_scalars(const Workload& w, pw::Workload& p) {
  p.set_uid(w.uid);
  p.set_name(w.name);
  p.set_namespace_(w.ns);
  p.set_trust_domain(w.trust_domain);
  p.set_service_account(w.service_account);
  p.set_network(w.network);
  p.set_hostname(w.hostname);
  p.set_node(w.node);
  p.set_cluster_id(w.cluster_id);
  p.set_canonical_name(w.canonical_name);
  p.set_canonical_revision(w.canonical_revision);
  p.set_workload_name(w.workload_name);
  p.set_native_tunnel(w.native_tunnel);
  for (const IpAddr& ip : w.ips) p.add_addresses(raw_bytes(ip));
  for (const std::string& key : w.authorization_policies) p.add_authorization_policies(key);
  p.set_tunnel_protocol(w.protocol == InboundProtocol::hbone ? pw::HBONE : pw::NONE);
  p.set_network_mode(w.network_mode == NetworkMode::host_network ? pw::HOST_NETWORK : pw::STANDARD);
  p.set_status(w.status == HealthStatus::unhealthy ? pw::UNHEALTHY : pw::HEALTHY);
  // An absent capacity reads as 1; only other values need the wrapper.
  if (w.capacity != 1) p.mutable_capacity()->set_value(w.capacity);
  if (w.locality != Locality{}) {
    p.mutable_locality()->set_region(w.locality.region);
    p.mutable_locality()->set_zone(w.locality.zone);
    p.mutable_locality()->set_subzone(w.locality.subzone);
  }
}

Result<void> workload_links(const Workload& w, pw::Workload& p) {
  if (w.waypoint)
    if (auto ok = set_gateway(*w.waypoint, *p.mutable_waypoint(), "waypoint"); !ok) return ok;
  if (w.network_gateway)
    if (auto ok = set_gateway(*w.network_gateway, *p.mutable_network_gateway(), "network_gateway"); !ok) return ok;
  if (w.application_tunnel) {
    if (w.application_tunnel->port == uint16_t{0})
      return refuse("application tunnel port 0 (it would read back as unset)");
    pw::ApplicationTunnel* t = p.mutable_application_tunnel();
    t->set_protocol(w.application_tunnel->protocol == ApplicationTunnel::Protocol::proxy
                        ? pw::ApplicationTunnel::PROXY
                        : pw::ApplicationTunnel::NONE);
    t->set_port(w.application_tunnel->port.value_or(0));
  }
  for (const auto& [service, ports] : w.services) {
    if (service.ns.find('/') != std::string::npos)
      return refuse("service " + service.to_string() + ": a namespace with '/' does not survive \"ns/host\"");
    add_ports(ports, *(*p.mutable_services())[service.to_string()].mutable_ports());
  }
  return {};
}

void set_load_balancer(const LoadBalancer& lb, pw::LoadBalancing& p) {
  for (LbScope scope : lb.routing_preference)
    p.add_routing_preference(pw::LoadBalancing::Scope(int(scope) + pw::LoadBalancing::REGION));
  switch (lb.mode) {
    case LbMode::standard: p.set_mode(pw::LoadBalancing::UNSPECIFIED_MODE); break;
    case LbMode::strict: p.set_mode(pw::LoadBalancing::STRICT); break;
    case LbMode::failover: p.set_mode(pw::LoadBalancing::FAILOVER); break;
    case LbMode::passthrough: p.set_mode(pw::LoadBalancing::PASSTHROUGH); break;
  }
  p.set_health_policy(lb.health_policy == HealthPolicy::allow_all ? pw::LoadBalancing::ALLOW_ALL
                                                                  : pw::LoadBalancing::ONLY_HEALTHY);
}

Result<void> add_string_matches(const std::vector<StringMatch>& in,
                                 google::protobuf::RepeatedPtrField<ps::StringMatch>& out) {
  for (const StringMatch& m : in) {
    ps::StringMatch* p = out.Add();
    switch (m.kind) {
      case StringMatch::Kind::exact: p->set_exact(m.value); break;
      case StringMatch::Kind::prefix: p->set_prefix(m.value); break;
      case StringMatch::Kind::suffix: p->set_suffix(m.value); break;
      case StringMatch::Kind::presence:
        if (!m.value.empty()) return refuse("a presence match carries a value ('" + m.value + "')");
        p->mutable_presence();
        break;
    }
  }
  return {};
}

Result<void> add_cidrs(const std::vector<Cidr>& in, google::protobuf::RepeatedPtrField<ps::Address>& out) {
  for (const Cidr& c : in) {
    if (c.prefix_len > (c.ip.is_v4() ? 32 : 128)) return refuse("CIDR prefix too long: " + c.to_string());
    ps::Address* a = out.Add();
    a->set_address(raw_bytes(c.ip));
    a->set_length(c.prefix_len);
  }
  return {};
}

void add_accounts(const std::vector<ServiceAccountMatch>& in,
                  google::protobuf::RepeatedPtrField<ps::ServiceAccountMatch>& out) {
  for (const ServiceAccountMatch& sa : in) {
    ps::ServiceAccountMatch* p = out.Add();
    p->set_namespace_(sa.ns);
    p->set_serviceaccount(sa.service_account);
  }
}

Result<void> set_match(const RbacMatch& m, ps::Match& p) {
  for (auto ok : {add_string_matches(m.namespaces, *p.mutable_namespaces()),
                  add_string_matches(m.not_namespaces, *p.mutable_not_namespaces()),
                  add_string_matches(m.principals, *p.mutable_principals()),
                  add_string_matches(m.not_principals, *p.mutable_not_principals()),
                  add_cidrs(m.source_ips, *p.mutable_source_ips()),
                  add_cidrs(m.not_source_ips, *p.mutable_not_source_ips()),
                  add_cidrs(m.destination_ips, *p.mutable_destination_ips()),
                  add_cidrs(m.not_destination_ips, *p.mutable_not_destination_ips())})
    if (!ok) return ok;
  for (uint16_t port : m.destination_ports) p.add_destination_ports(port);
  for (uint16_t port : m.not_destination_ports) p.add_not_destination_ports(port);
  add_accounts(m.service_accounts, *p.mutable_service_accounts());
  add_accounts(m.not_service_accounts, *p.mutable_not_service_accounts());
  return {};
}

}  // namespace

Result<pw::Address> encode_address(const Workload& w) {
  auto fail = [&](const Error& e) { return refuse("workload " + w.uid + ": " + e.detail); };
  if (w.uid.empty()) return refuse("workload has no uid");
  pw::Address address;
  pw::Workload& p = *address.mutable_workload();
  if (auto ok = defaults_survive(w); !ok) return fail(ok.error());
  auto type = workload_type(w.workload_type);
  if (!type) return fail(type.error());
  p.set_workload_type(*type);
  workload_scalars(w, p);
  if (auto ok = workload_links(w, p); !ok) return fail(ok.error());
  return address;
}

Result<pw::Address> encode_address(const Service& s) {
  if (s.hostname.empty()) return refuse("service " + s.name + " has no hostname");
  pw::Address address;
  pw::Service& p = *address.mutable_service();
  p.set_name(s.name);
  p.set_namespace_(s.ns);
  p.set_hostname(s.hostname);
  for (const NetworkAddress& vip : s.vips) set_network_address(vip, *p.add_addresses());
  add_ports(s.ports, *p.mutable_ports());
  for (const std::string& san : s.subject_alt_names) p.add_subject_alt_names(san);
  if (s.waypoint)
    if (auto ok = set_gateway(*s.waypoint, *p.mutable_waypoint(), "waypoint"); !ok)
      return refuse("service " + resource_name(s) + ": " + ok.error().detail);
  if (s.load_balancer) set_load_balancer(*s.load_balancer, *p.mutable_load_balancing());
  p.set_ip_families(pw::IPFamilies(int(s.ip_families)));
  p.set_canonical(s.canonical);
  p.set_ingress_use_waypoint(s.ingress_use_waypoint);
  return address;
}

Result<ps::Authorization> encode_authorization(const Authorization& a) {
  if (a.name.empty()) return refuse("authorization has no name");
  ps::Authorization p;
  p.set_name(a.name);
  p.set_namespace_(a.ns);
  p.set_dry_run(a.dry_run);
  switch (a.scope) {
    case RbacScope::global: p.set_scope(ps::GLOBAL); break;
    case RbacScope::ns: p.set_scope(ps::NAMESPACE); break;
    case RbacScope::workload_selector: p.set_scope(ps::WORKLOAD_SELECTOR); break;
  }
  p.set_action(a.action == RbacAction::deny ? ps::DENY : ps::ALLOW);
  for (const RbacRule& rule : a.rules) {
    ps::Rule* r = p.add_rules();
    for (const RbacClause& clause : rule) {
      ps::Clause* c = r->add_clauses();
      for (const RbacMatch& match : clause)
        if (auto ok = set_match(match, *c->add_matches()); !ok)
          return refuse("authorization " + a.key() + ": " + ok.error().detail);
    }
  }
  return p;
}

std::string resource_name(const Workload& workload) { return workload.uid; }
std::string resource_name(const Service& service) { return service.key().to_string(); }
std::string resource_name(const Authorization& policy) { return policy.key(); }

std::string serialize_deterministic(const google::protobuf::MessageLite& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }  // the coded stream flushes into `out` when it goes
  return out;
}

Result<XdsResources> encode_local_config(const LocalConfig& config) {
  XdsResources out;
  for (const Workload& w : config.workloads) {
    auto address = encode_address(w);
    if (!address) return address.error();
    out.addresses.push_back({resource_name(w), serialize_deterministic(*address)});
  }
  for (const Service& s : config.services) {
    auto address = encode_address(s);
    if (!address) return address.error();
    out.addresses.push_back({resource_name(s), serialize_deterministic(*address)});
  }
  for (const Authorization& a : config.policies) {
    auto policy = encode_authorization(a);
    if (!policy) return policy.error();
    out.authorizations.push_back({resource_name(a), serialize_deterministic(*policy)});
  }
  return out;
}

}  // namespace zt::core::mesh
