// The encoder against the decoder: local config files encoded to xDS and
// applied the way the ADS client applies them give the state the file loads
// to directly; single values survive encode + validate unchanged; values the
// wire cannot carry are refused with a reason, and (a property over random
// values) only those are.
#include "core/mesh/proto_encode.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cctype>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "core/mesh/config_dump.h"
#include "core/mesh/validate.h"
#include "testing/mesh_fixtures.h"

namespace zt::core::mesh {
namespace {

using zt::testing::ip;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_FALSE(text.str().empty()) << path;
  return text.str();
}

// Endpoints hold a pointer to their workload: compare what they say, not where.
void expect_same_endpoints(const StateSnapshot& want, const StateSnapshot& got) {
  ASSERT_EQ(want.endpoints().by_service.size(), got.endpoints().by_service.size());
  for (const auto& [service, set] : want.endpoints().by_service) {
    const EndpointSet& other = got.endpoints_of(service);
    ASSERT_EQ(set->size(), other.size()) << service.to_string();
    for (const auto& [uid, endpoint] : *set) {
      auto it = other.find(uid);
      ASSERT_NE(it, other.end()) << uid;
      EXPECT_EQ(endpoint.ports, it->second.ports) << uid;
      EXPECT_EQ(endpoint.status, it->second.status) << uid;
      EXPECT_EQ(*endpoint.workload, *it->second.workload) << uid;
    }
  }
}

void expect_same_state(const StateSnapshot& want, const StateSnapshot& got) {
  EXPECT_EQ(config_dump_json(want), config_dump_json(got));
  ASSERT_EQ(want.workloads().by_uid.size(), got.workloads().by_uid.size());
  for (const auto& [uid, w] : want.workloads().by_uid) {
    const Workload* other = got.workload_by_uid(uid);
    ASSERT_NE(other, nullptr) << uid;
    EXPECT_EQ(*w, *other) << uid;
  }
  ASSERT_EQ(want.services().by_host.size(), got.services().by_host.size());
  for (const auto& [key, s] : want.services().by_host) {
    const Service* other = got.service_by_host(key);
    ASSERT_NE(other, nullptr) << key.to_string();
    EXPECT_EQ(*s, *other) << key.to_string();
  }
  EXPECT_EQ(want.services().by_vip, got.services().by_vip);
  ASSERT_EQ(want.policies().by_key.size(), got.policies().by_key.size());
  for (const auto& [key, p] : want.policies().by_key) {
    const Authorization* other = got.policy(key);
    ASSERT_NE(other, nullptr) << key;
    EXPECT_EQ(*p, *other) << key;
  }
  expect_same_endpoints(want, got);
}

class RoundTrip : public ::testing::TestWithParam<std::string> {};

// The path of the xDS client: named resources through the delta API of a
// fresh store, against load_local_config's direct upserts.
TEST_P(RoundTrip, EncodedConfigAppliesToTheStateTheFileLoads) {
  auto config = parse_local_config(read_text(GetParam()), GetParam());
  ASSERT_TRUE(config.ok()) << config.error().message();
  ASSERT_FALSE(config->workloads.empty());

  MeshStore direct;
  load_local_config(direct, *config);

  auto resources = encode_local_config(*config);
  ASSERT_TRUE(resources.ok()) << resources.error().message();
  EXPECT_EQ(resources->addresses.size(), config->workloads.size() + config->services.size());
  EXPECT_EQ(resources->authorizations.size(), config->policies.size());
  MeshStore via_xds;
  EXPECT_EQ(via_xds.apply_address_delta(resources->addresses, {}), std::vector<Rejection>{});
  EXPECT_EQ(via_xds.apply_authorization_delta(resources->authorizations, {}), std::vector<Rejection>{});

  expect_same_state(*direct.publish(), *via_xds.publish());
}

// Removal by resource name reaches what the name was given to.
TEST_P(RoundTrip, ResourceNamesRemoveWhatTheyName) {
  auto config = parse_local_config(read_text(GetParam()), GetParam());
  ASSERT_TRUE(config.ok()) << config.error().message();
  auto resources = encode_local_config(*config);
  ASSERT_TRUE(resources.ok()) << resources.error().message();
  MeshStore store;
  (void)store.apply_address_delta(resources->addresses, {});
  (void)store.apply_authorization_delta(resources->authorizations, {});

  std::vector<std::string> addresses, policies;
  for (const NamedResource& r : resources->addresses) addresses.push_back(r.name);
  for (const NamedResource& r : resources->authorizations) policies.push_back(r.name);
  (void)store.apply_address_delta({}, addresses);
  (void)store.apply_authorization_delta({}, policies);
  auto snap = store.publish();
  EXPECT_TRUE(snap->workloads().by_uid.empty());
  EXPECT_TRUE(snap->services().by_host.empty());
  EXPECT_TRUE(snap->policies().by_key.empty());
}

// Cases named "<folder>_<file>" (testdata_full), not by their whole path.
std::string file_case_name(const ::testing::TestParamInfo<std::string>& info) {
  const std::string& path = info.param;
  size_t file = path.rfind('/');
  size_t folder = path.rfind('/', file - 1);
  std::string name = path.substr(folder + 1, path.rfind('.') - folder - 1);
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Files, RoundTrip,
                         ::testing::Values(std::string(ZT_MESH_TESTDATA) + "/localhost.yaml",
                                           std::string(ZT_MESH_TESTDATA) + "/full.yaml",
                                           std::string(ZT_DEMO_DIR) + "/mesh.yaml"),
                         file_case_name);

TEST(ProtoEncode, ResourceNamesAreIstiodKeys) {
  Workload w;
  w.uid = "c1//v1/Pod/apps/web-0";
  Service s;
  s.ns = "apps";
  s.hostname = "web.apps.svc.cluster.local";
  Authorization a;
  a.ns = "apps";
  a.name = "allow-frontend";
  EXPECT_EQ(resource_name(w), "c1//v1/Pod/apps/web-0");
  EXPECT_EQ(resource_name(s), "apps/web.apps.svc.cluster.local");
  EXPECT_EQ(resource_name(a), "apps/allow-frontend");
}

TEST(ProtoEncode, WireFieldsAreIstios) {
  Workload w;
  w.uid = "u";
  w.workload_type = "cronjob";
  w.ips = {ip("10.0.0.1")};
  w.protocol = InboundProtocol::hbone;
  w.capacity = 1;
  auto address = encode_address(w);
  ASSERT_TRUE(address.ok()) << address.error().message();
  const istio::workload::Workload& p = address->workload();
  EXPECT_EQ(p.workload_type(), istio::workload::CRONJOB);
  EXPECT_EQ(p.tunnel_protocol(), istio::workload::HBONE);
  EXPECT_EQ(p.addresses(0), std::string("\x0a\x00\x00\x01", 4));
  EXPECT_EQ(p.trust_domain(), "cluster.local");  // defaults are written out
  EXPECT_FALSE(p.has_capacity());                // 1 is what an absent capacity means
  EXPECT_FALSE(p.has_locality());
}

TEST(ProtoEncode, SerializationIsDeterministicAcrossMapOrder) {
  Workload w;
  w.uid = "u";
  istio::workload::Address a1 = *encode_address(w), a2 = *encode_address(w);
  // The same map filled in opposite orders.
  for (const char* host : {"ns/a", "ns/b", "ns/c", "ns/d"})
    (*a1.mutable_workload()->mutable_services())[host].add_ports()->set_service_port(80);
  for (const char* host : {"ns/d", "ns/c", "ns/b", "ns/a"})
    (*a2.mutable_workload()->mutable_services())[host].add_ports()->set_service_port(80);
  EXPECT_EQ(serialize_deterministic(a1), serialize_deterministic(a2));
  istio::workload::Address back;
  ASSERT_TRUE(back.ParseFromString(serialize_deterministic(a1)));
  EXPECT_EQ(back.workload().services().size(), 4u);
}

Result<Workload> workload_round_trip(const Workload& w) {
  auto address = encode_address(w);
  if (!address) return address.error();
  istio::workload::Address decoded;
  if (!decoded.ParseFromString(serialize_deterministic(*address)))
    return Error(Errc::invalid_argument, "undecodable");
  return validate_workload(decoded.workload());
}

TEST(ProtoEncode, RefusesWhatWouldReadBackDifferently) {
  Workload good;
  good.uid = "u";
  ASSERT_TRUE(workload_round_trip(good).ok());

  struct Case {
    const char* why;
    void (*spoil)(Workload&);
  };
  const Case cases[] = {
      {"no uid", [](Workload& w) { w.uid.clear(); }},
      {"unknown type", [](Workload& w) { w.workload_type = "statefulset"; }},
      {"type in other case", [](Workload& w) { w.workload_type = "Deployment"; }},
      {"empty trust domain", [](Workload& w) { w.trust_domain.clear(); }},
      {"empty service account", [](Workload& w) { w.service_account.clear(); }},
      {"empty cluster id", [](Workload& w) { w.cluster_id.clear(); }},
      {"tunnel port 0", [](Workload& w) { w.application_tunnel = ApplicationTunnel{{}, uint16_t{0}}; }},
      {"'/' in a service namespace", [](Workload& w) { w.services[{"a/b", "c"}] = {}; }},
      {"waypoint without host", [](Workload& w) { w.waypoint = GatewayAddress{NamespacedHostname{"ns", ""}, 15008}; }},
  };
  for (const Case& c : cases) {
    Workload w = good;
    c.spoil(w);
    auto encoded = encode_address(w);
    ASSERT_FALSE(encoded.ok()) << c.why;
    EXPECT_FALSE(encoded.error().detail.empty()) << c.why;
  }

  Service no_host;
  EXPECT_FALSE(encode_address(no_host).ok());
  Authorization presence_with_value;
  presence_with_value.name = "p";
  presence_with_value.rules = {{{RbacMatch{.principals = {{StringMatch::Kind::presence, "x"}}}}}};
  EXPECT_FALSE(encode_authorization(presence_with_value).ok());
  Authorization long_prefix;
  long_prefix.name = "p";
  long_prefix.rules = {{{RbacMatch{.source_ips = {Cidr{ip("10.0.0.0"), 33}}}}}};
  EXPECT_FALSE(encode_authorization(long_prefix).ok());
}

TEST(ProtoEncode, LocalConfigWithAnUnencodableValueNamesIt) {
  LocalConfig config;
  Workload w;
  w.uid = "odd";
  w.workload_type = "statefulset";
  config.workloads.push_back(w);
  auto resources = encode_local_config(config);
  ASSERT_FALSE(resources.ok());
  EXPECT_NE(resources.error().detail.find("odd"), std::string::npos) << resources.error().detail;
  EXPECT_NE(resources.error().detail.find("statefulset"), std::string::npos) << resources.error().detail;
}

// --- Property: encoding refuses exactly what cannot round-trip, and what
// it accepts comes back equal. Values are drawn from small pools that
// include every refused shape, so both outcomes are common.

template <class T>
rc::Gen<T> one_of(std::vector<T> pool) {
  return rc::gen::elementOf(std::move(pool));
}

// Mostly a good value, now and then one that cannot be encoded.
template <class T>
rc::Gen<T> rarely_bad(std::vector<T> good, std::vector<T> bad) {
  return rc::gen::weightedOneOf<T>(
      {{12, rc::gen::elementOf(std::move(good))}, {1, rc::gen::elementOf(std::move(bad))}});
}

rc::Gen<std::string> word() { return one_of<std::string>({"", "a", "apps", "x.y", "td.org"}); }
rc::Gen<IpAddr> any_ip() {
  return rc::gen::map(one_of<std::string>({"10.0.0.1", "192.0.2.7", "fd00::1", "::"}),
                      [](const std::string& s) { return ip(s); });
}
rc::Gen<uint16_t> port() { return one_of<uint16_t>({0, 80, 8080, 15008}); }

// Short lists: the pools are small, and a long list is as telling as three.
template <class T>
std::vector<T> few(rc::Gen<T> g) {
  return *rc::gen::container<std::vector<T>>(size_t(*rc::gen::inRange(0, 4)), std::move(g));
}

// Maps from few pairs (a map generator wants more distinct keys than a pool has).
template <class Map>
Map few_entries(rc::Gen<typename Map::key_type> key, rc::Gen<typename Map::mapped_type> value) {
  Map out;
  for (int n = *rc::gen::inRange(0, 4); n > 0; --n) out[*key] = *value;
  return out;
}

PortMap random_ports() { return few_entries<PortMap>(port(), port()); }

rc::Gen<GatewayAddress> gateway() {
  return rc::gen::exec([] {
    GatewayAddress g;
    g.hbone_mtls_port = *port();
    if (*rc::gen::arbitrary<bool>())
      g.destination = NetworkAddress{*word(), *any_ip()};
    else
      g.destination = NamespacedHostname{*word(), *rarely_bad<std::string>({"wp.ns.svc"}, {""})};
    return g;
  });
}

template <class T>
std::optional<T> maybe(rc::Gen<T> g) {
  if (*rc::gen::arbitrary<bool>()) return std::nullopt;
  return *g;
}

Workload random_workload() {
  Workload w;
  w.uid = *rarely_bad<std::string>({"c//v1/Pod/apps/a", "u2"}, {""});
  w.name = *word();
  w.ns = *word();
  w.trust_domain = *rarely_bad<std::string>({"cluster.local", "td.org"}, {""});
  w.service_account = *rarely_bad<std::string>({"default", "web"}, {""});
  w.cluster_id = *rarely_bad<std::string>({"Kubernetes", "c1"}, {""});
  w.network = *word();
  w.hostname = *word();
  w.node = *word();
  w.canonical_name = *word();
  w.canonical_revision = *word();
  w.workload_type = *rarely_bad<std::string>({"deployment", "cronjob", "pod", "job"}, {"statefulset", "Pod"});
  w.workload_name = *word();
  w.ips = few(any_ip());
  w.waypoint = maybe(gateway());
  w.network_gateway = maybe(gateway());
  w.protocol = *rc::gen::element(InboundProtocol::tcp, InboundProtocol::hbone);
  w.network_mode = *rc::gen::element(NetworkMode::standard, NetworkMode::host_network);
  w.native_tunnel = *rc::gen::arbitrary<bool>();
  if (*rc::gen::arbitrary<bool>()) {
    ApplicationTunnel t;
    t.protocol = *rc::gen::element(ApplicationTunnel::Protocol::none, ApplicationTunnel::Protocol::proxy);
    t.port = maybe(rarely_bad<uint16_t>({80, 15088}, {0}));
    w.application_tunnel = t;
  }
  w.authorization_policies = few(word());
  w.status = *rc::gen::element(HealthStatus::healthy, HealthStatus::unhealthy);
  w.locality = {*word(), *word(), *word()};
  w.capacity = *one_of<uint32_t>({0, 1, 3, UINT32_MAX});
  auto service_key = rc::gen::construct<NamespacedHostname>(rarely_bad<std::string>({"ns", ""}, {"a/b"}), word());
  w.services = few_entries<std::map<NamespacedHostname, PortMap>>(
      service_key, rc::gen::exec([] { return random_ports(); }));
  return w;
}

bool gateway_encodable(const std::optional<GatewayAddress>& g) {
  const auto* host = g ? std::get_if<NamespacedHostname>(&g->destination) : nullptr;
  return !host || !host->hostname.empty();
}

bool workload_encodable(const Workload& w) {
  static const std::set<std::string> types = {"deployment", "cronjob", "pod", "job"};
  bool ok = !w.uid.empty() && !w.trust_domain.empty() && !w.service_account.empty() && !w.cluster_id.empty() &&
            types.contains(w.workload_type) && gateway_encodable(w.waypoint) &&
            gateway_encodable(w.network_gateway);
  if (w.application_tunnel && w.application_tunnel->port == uint16_t{0}) ok = false;
  for (const auto& entry : w.services)
    if (entry.first.ns.find('/') != std::string::npos) ok = false;
  return ok;
}

RC_GTEST_PROP(ProtoEncodeProperty, WorkloadsRoundTripOrAreRefused, ()) {
  const Workload w = random_workload();
  auto back = workload_round_trip(w);
  RC_TAG(back.ok() ? "encoded" : "refused");
  RC_ASSERT(back.ok() == workload_encodable(w));
  if (back.ok()) RC_ASSERT(*back == w);
}

RC_GTEST_PROP(ProtoEncodeProperty, ServicesRoundTripOrAreRefused, ()) {
  Service s;
  s.name = *word();
  s.ns = *word();
  s.hostname = *rarely_bad<std::string>({"web.apps.svc"}, {""});
  s.vips = few(rc::gen::construct<NetworkAddress>(word(), any_ip()));
  s.ports = random_ports();
  s.subject_alt_names = few(word());
  s.waypoint = maybe(gateway());
  if (*rc::gen::arbitrary<bool>()) {
    LoadBalancer lb;
    lb.routing_preference = few(rc::gen::element(LbScope::region, LbScope::zone, LbScope::subzone, LbScope::node,
                                                 LbScope::cluster, LbScope::network));
    lb.mode = *rc::gen::element(LbMode::standard, LbMode::strict, LbMode::failover, LbMode::passthrough);
    lb.health_policy = *rc::gen::element(HealthPolicy::only_healthy, HealthPolicy::allow_all);
    s.load_balancer = lb;
  }
  s.ip_families = *rc::gen::element(IpFamilies::automatic, IpFamilies::ipv4_only, IpFamilies::ipv6_only,
                                    IpFamilies::dual);
  s.canonical = *rc::gen::arbitrary<bool>();
  s.ingress_use_waypoint = *rc::gen::arbitrary<bool>();

  auto address = encode_address(s);
  RC_ASSERT(address.ok() == (!s.hostname.empty() && gateway_encodable(s.waypoint)));
  if (!address.ok()) return;
  auto back = validate_service(address->service());
  RC_ASSERT(back.ok());
  RC_ASSERT(*back == s);
}

rc::Gen<StringMatch> string_match() {
  return rc::gen::exec([] {
    auto kind = *rc::gen::element(StringMatch::Kind::exact, StringMatch::Kind::prefix, StringMatch::Kind::suffix,
                                  StringMatch::Kind::presence);
    bool presence = kind == StringMatch::Kind::presence;
    return StringMatch{kind, presence ? *rarely_bad<std::string>({""}, {"x"}) : *word()};
  });
}

rc::Gen<Cidr> cidr() {
  return rc::gen::construct<Cidr>(any_ip(), rarely_bad<uint8_t>({0, 8, 24, 32}, {33, 129}));
}

RbacMatch random_match() {
  RbacMatch m;
  auto account = rc::gen::construct<ServiceAccountMatch>(word(), word());
  // One field at a time, or the match is almost never encodable.
  switch (*rc::gen::inRange(0, 12)) {
    case 0: m.namespaces = few(string_match()); break;
    case 1: m.not_namespaces = few(string_match()); break;
    case 2: m.principals = few(string_match()); break;
    case 3: m.not_principals = few(string_match()); break;
    case 4: m.source_ips = few(cidr()); break;
    case 5: m.not_source_ips = few(cidr()); break;
    case 6: m.destination_ips = few(cidr()); break;
    case 7: m.not_destination_ips = few(cidr()); break;
    case 8: m.destination_ports = few(port()); break;
    case 9: m.not_destination_ports = few(port()); break;
    case 10: m.service_accounts = few(account); break;
    default: m.not_service_accounts = few(account); break;
  }
  return m;
}

bool match_encodable(const RbacMatch& m) {
  for (const auto* list : {&m.namespaces, &m.not_namespaces, &m.principals, &m.not_principals})
    for (const StringMatch& s : *list)
      if (s.kind == StringMatch::Kind::presence && !s.value.empty()) return false;
  for (const auto* list : {&m.source_ips, &m.not_source_ips, &m.destination_ips, &m.not_destination_ips})
    for (const Cidr& c : *list)
      if (c.prefix_len > (c.ip.is_v4() ? 32 : 128)) return false;
  return true;
}

RC_GTEST_PROP(ProtoEncodeProperty, PoliciesRoundTripOrAreRefused, ()) {
  Authorization a;
  a.name = *rarely_bad<std::string>({"allow-web"}, {""});
  a.ns = *word();
  a.scope = *rc::gen::element(RbacScope::global, RbacScope::ns, RbacScope::workload_selector);
  a.action = *rc::gen::element(RbacAction::allow, RbacAction::deny);
  a.dry_run = *rc::gen::arbitrary<bool>();
  bool encodable = !a.name.empty();
  for (int r = *rc::gen::inRange(0, 3); r > 0; --r) {
    RbacRule& rule = a.rules.emplace_back();
    for (int c = *rc::gen::inRange(0, 3); c > 0; --c) {
      RbacClause& clause = rule.emplace_back();
      for (int m = *rc::gen::inRange(0, 3); m > 0; --m) {
        clause.push_back(random_match());
        encodable = encodable && match_encodable(clause.back());
      }
    }
  }
  auto encoded = encode_authorization(a);
  RC_TAG(encoded.ok() ? "encoded" : "refused");
  RC_ASSERT(encoded.ok() == encodable);
  if (!encoded.ok()) return;
  auto back = validate_authorization(*encoded);
  RC_ASSERT(back.ok());
  RC_ASSERT(*back == a);
}

}  // namespace
}  // namespace zt::core::mesh
