#include "core/mesh/validate.h"

#include <gtest/gtest.h>

#include "testing/mesh_fixtures.h"

namespace zt::core::mesh {
namespace {

using namespace zt::testing;

namespace pw = istio::workload;
namespace ps = istio::security;

TEST(ValidateWorkload, AppliesUpstreamDefaults) {
  auto w = validate_workload(workload_proto("cluster1//v1/Pod/default/a", "10.0.0.1"));
  ASSERT_TRUE(w.ok()) << w.error().message();
  EXPECT_EQ(w->trust_domain, "cluster.local");
  EXPECT_EQ(w->service_account, "default");
  EXPECT_EQ(w->cluster_id, "Kubernetes");
  EXPECT_EQ(w->capacity, 1u);
  EXPECT_EQ(w->workload_type, "deployment");
  EXPECT_EQ(w->protocol, InboundProtocol::hbone);
  ASSERT_EQ(w->ips.size(), 1u);
  EXPECT_EQ(w->ips[0], ip("10.0.0.1"));
  EXPECT_EQ(w->identity().to_string(), "spiffe://cluster.local/ns/default/sa/default");
}

TEST(ValidateWorkload, ReadsEveryLinkedField) {
  pw::Workload p = workload_proto("u", "fd00::1");
  p.mutable_capacity()->set_value(5);
  p.set_workload_type(pw::POD);
  p.mutable_locality()->set_region("r1");
  p.mutable_waypoint()->mutable_hostname()->set_hostname("wp.ns.svc");
  p.mutable_waypoint()->set_hbone_mtls_port(15008);
  p.mutable_network_gateway()->mutable_address()->set_address(raw("192.0.2.1"));
  p.mutable_network_gateway()->mutable_address()->set_network("far");
  p.mutable_application_tunnel()->set_protocol(pw::ApplicationTunnel::PROXY);
  pw::PortList ports;
  auto* port = ports.add_ports();
  port->set_service_port(80);
  port->set_target_port(8080);
  (*p.mutable_services())["ns/svc.ns.svc"] = ports;
  auto w = validate_workload(p);
  ASSERT_TRUE(w.ok()) << w.error().message();
  EXPECT_EQ(w->capacity, 5u);
  EXPECT_EQ(w->workload_type, "pod");
  EXPECT_EQ(w->locality.region, "r1");
  ASSERT_TRUE(w->waypoint);
  EXPECT_EQ(to_string(*w->waypoint), "/wp.ns.svc:15008");
  ASSERT_TRUE(w->network_gateway);
  EXPECT_EQ(to_string(*w->network_gateway), "far/192.0.2.1:0");
  ASSERT_TRUE(w->application_tunnel);
  EXPECT_FALSE(w->application_tunnel->port.has_value());
  EXPECT_EQ(w->services.at({"ns", "svc.ns.svc"}).at(80), 8080);
}

struct BadWorkload {
  const char* what;
  void (*spoil)(pw::Workload&);
  const char* reason;
};

class ValidateWorkloadRejects : public ::testing::TestWithParam<BadWorkload> {};

TEST_P(ValidateWorkloadRejects, WithReason) {
  pw::Workload p = workload_proto("u", "10.0.0.1");
  GetParam().spoil(p);
  auto w = validate_workload(p);
  ASSERT_FALSE(w.ok()) << GetParam().what;
  EXPECT_NE(w.error().detail.find(GetParam().reason), std::string::npos) << w.error().detail;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ValidateWorkloadRejects,
    ::testing::Values(
        BadWorkload{"missing uid", [](pw::Workload& p) { p.clear_uid(); }, "no uid"},
        BadWorkload{"3-byte IP", [](pw::Workload& p) { p.add_addresses("abc"); }, "4 or 16 bytes"},
        BadWorkload{"legacy mTLS", [](pw::Workload& p) { p.set_tunnel_protocol(pw::LEGACY_ISTIO_MTLS); },
                    "LEGACY_ISTIO_MTLS"},
        BadWorkload{"unknown tunnel", [](pw::Workload& p) { p.set_tunnel_protocol(pw::TunnelProtocol(9)); },
                    "unknown tunnel protocol"},
        BadWorkload{"unknown status", [](pw::Workload& p) { p.set_status(pw::WorkloadStatus(4)); },
                    "unknown workload status"},
        BadWorkload{"service key", [](pw::Workload& p) { (*p.mutable_services())["no-slash"]; },
                    "namespace/hostname"},
        BadWorkload{"port range",
                    [](pw::Workload& p) {
                      (*p.mutable_services())["ns/h"].add_ports()->set_service_port(70000);
                    },
                    "not a port"},
        BadWorkload{"empty gateway", [](pw::Workload& p) { p.mutable_waypoint(); }, "no destination"},
        BadWorkload{"gateway IP",
                    [](pw::Workload& p) { p.mutable_network_gateway()->mutable_address()->set_address("x"); },
                    "network_gateway"}));

TEST(ValidateService, ReadsLoadBalancing) {
  pw::Service p = service_proto("ns", "svc.ns.svc", "10.96.0.1", 80, 8080);
  p.mutable_load_balancing()->add_routing_preference(pw::LoadBalancing::NETWORK);
  p.mutable_load_balancing()->add_routing_preference(pw::LoadBalancing::ZONE);
  p.mutable_load_balancing()->set_mode(pw::LoadBalancing::FAILOVER);
  p.mutable_load_balancing()->set_health_policy(pw::LoadBalancing::ALLOW_ALL);
  auto s = validate_service(p);
  ASSERT_TRUE(s.ok()) << s.error().message();
  ASSERT_TRUE(s->load_balancer);
  EXPECT_EQ(s->load_balancer->routing_preference, (std::vector{LbScope::network, LbScope::zone}));
  EXPECT_EQ(s->load_balancer->mode, LbMode::failover);
  EXPECT_EQ(s->load_balancer->health_policy, HealthPolicy::allow_all);
  EXPECT_EQ(s->ports.at(80), 8080);
  EXPECT_EQ(s->vips.at(0).to_string(), "/10.96.0.1");
}

TEST(ValidateService, RejectsWithReasons) {
  pw::Service p = service_proto("ns", "svc", "10.96.0.1", 80, 8080);
  p.clear_hostname();
  EXPECT_NE(validate_service(p).error().detail.find("no hostname"), std::string::npos);
  p = service_proto("ns", "svc", "10.96.0.1", 80, 8080);
  p.mutable_addresses(0)->set_address("12345");
  EXPECT_NE(validate_service(p).error().detail.find("addresses"), std::string::npos);
  p = service_proto("ns", "svc", "10.96.0.1", 80, 8080);
  p.mutable_load_balancing()->add_routing_preference(pw::LoadBalancing::UNSPECIFIED_SCOPE);
  EXPECT_NE(validate_service(p).error().detail.find("routing preference"), std::string::npos);
  p = service_proto("ns", "svc", "10.96.0.1", 80, 8080);
  p.mutable_load_balancing()->set_mode(pw::LoadBalancing::Mode(7));
  EXPECT_NE(validate_service(p).error().detail.find("unknown mode"), std::string::npos);
}

ps::Authorization policy_with_match(void (*fill)(ps::Match&)) {
  ps::Authorization p;
  p.set_name("p");
  p.set_namespace_("ns");
  fill(*p.add_rules()->add_clauses()->add_matches());
  return p;
}

TEST(ValidateAuthorization, ConvertsNestedRules) {
  auto p = validate_authorization(policy_with_match([](ps::Match& m) {
    m.add_destination_ports(80);
    m.add_principals()->set_prefix("cluster.local/");
    m.add_not_namespaces()->mutable_presence();
    auto* cidr = m.add_source_ips();
    cidr->set_address(raw("10.0.0.0"));
    cidr->set_length(8);
    auto* sa = m.add_service_accounts();
    sa->set_namespace_("ns");
    sa->set_serviceaccount("sa");
  }));
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_EQ(p->rules.size(), 1u);
  const RbacMatch& m = p->rules[0][0][0];
  EXPECT_EQ(m.destination_ports, std::vector<uint16_t>{80});
  EXPECT_EQ(m.principals[0].kind, StringMatch::Kind::prefix);
  EXPECT_EQ(m.not_namespaces[0].kind, StringMatch::Kind::presence);
  EXPECT_EQ(m.source_ips[0].to_string(), "10.0.0.0/8");
  EXPECT_EQ(m.service_accounts[0].service_account, "sa");
  EXPECT_EQ(p->key(), "ns/p");
}

TEST(ValidateAuthorization, RejectsWhatCouldWidenAPolicy) {
  auto bad_ip = validate_authorization(policy_with_match([](ps::Match& m) { m.add_source_ips()->set_address("1"); }));
  EXPECT_NE(bad_ip.error().detail.find("source_ips"), std::string::npos);
  auto long_prefix = validate_authorization(policy_with_match([](ps::Match& m) {
    m.add_destination_ips()->set_address(raw("10.0.0.1"));
    m.mutable_destination_ips(0)->set_length(33);
  }));
  EXPECT_NE(long_prefix.error().detail.find("prefix length"), std::string::npos);
  auto typeless = validate_authorization(policy_with_match([](ps::Match& m) { m.add_principals(); }));
  EXPECT_NE(typeless.error().detail.find("without a match type"), std::string::npos);
  auto port = validate_authorization(policy_with_match([](ps::Match& m) { m.add_not_destination_ports(65536); }));
  EXPECT_NE(port.error().detail.find("not a port"), std::string::npos);
  ps::Authorization unnamed;
  EXPECT_FALSE(validate_authorization(unnamed).ok());
  ps::Authorization scope;
  scope.set_name("x");
  scope.set_scope(ps::Scope(5));
  EXPECT_NE(validate_authorization(scope).error().detail.find("unknown scope"), std::string::npos);
}

// Wire check against hand-encoded bytes: Clause.matches is field 2 (a
// decoder expecting 1 would see an empty clause, which matches everything).
TEST(ValidateAuthorization, ClauseMatchesIsFieldTwo) {
  // Match{destination_ports(9, varint): 80}
  std::string match = {char(9 << 3 | 0), char(80)};
  std::string clause = {char(2 << 3 | 2), char(match.size())};
  clause += match;
  std::string rule = {char(1 << 3 | 2), char(clause.size())};
  rule += clause;
  std::string policy = {char(1 << 3 | 2), 1, 'p', char(5 << 3 | 2), char(rule.size())};
  policy += rule;
  ps::Authorization proto;
  ASSERT_TRUE(proto.ParseFromString(policy));
  auto p = validate_authorization(proto);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->rules.at(0).at(0).size(), 1u);
  EXPECT_EQ(p->rules[0][0][0].destination_ports, std::vector<uint16_t>{80});
}

}  // namespace
}  // namespace zt::core::mesh
