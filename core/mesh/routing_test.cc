#include "core/mesh/routing.h"

#include <gtest/gtest.h>

#include "core/mesh/store.h"
#include "testing/mesh_fixtures.h"

namespace zt::core::mesh {
namespace {

using namespace zt::testing;


// A small mesh with one example of every route.
class Routing : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = make_workload("src", "ns", {ip("10.0.0.1")});
    store_.upsert_workload(source_);
    backing("dst-hbone", ip("10.0.0.2"), InboundProtocol::hbone, "svc.ns.svc");
    backing("dst-tcp", ip("10.0.0.3"), InboundProtocol::tcp, "tcp.ns.svc");
    Service svc = make_service("ns", "svc.ns.svc", {{"", ip("10.96.0.1")}}, {{80, 8080}});
    svc.subject_alt_names = {"spiffe://cluster.local/ns/ns/sa/svc-sa", "not-a-spiffe-id"};
    store_.upsert_service(svc);
    store_.upsert_service(make_service("ns", "tcp.ns.svc", {{"", ip("10.96.0.6")}}, {{80, 8081}}));
    store_.upsert_service(make_service("ns", "empty.ns.svc", {{"", ip("10.96.0.4")}}, {{80, 8080}}));
    Service passthrough = make_service("ns", "pass.ns.svc", {{"", ip("10.96.0.3")}}, {{80, 80}});
    passthrough.load_balancer = LoadBalancer{{}, LbMode::passthrough, HealthPolicy::only_healthy};
    store_.upsert_service(passthrough);
    add_waypoint();
    add_remote_network();
  }

  void backing(std::string uid, IpAddr addr, InboundProtocol protocol, std::string host, PortMap ports = {{80, 0}}) {
    Workload w = make_workload(std::move(uid), "ns", {addr}, protocol);
    w.services[{"ns", std::move(host)}] = std::move(ports);
    store_.upsert_workload(w);
  }

  void add_waypoint() {
    Workload wp = make_workload("wp", "ns", {ip("10.0.0.10")});
    wp.service_account = "waypoint";
    wp.services[{"ns", "waypoint.ns.svc"}] = {{15008, 15008}};
    store_.upsert_workload(wp);
    store_.upsert_service(make_service("ns", "waypoint.ns.svc", {{"", ip("10.96.0.10")}}, {{15008, 15008}}));
    Service behind = make_service("ns", "behind.ns.svc", {{"", ip("10.96.0.2")}}, {{80, 8080}});
    behind.waypoint = GatewayAddress{NamespacedHostname{"ns", "waypoint.ns.svc"}, 15008};
    store_.upsert_service(behind);
    Workload guarded = make_workload("guarded", "ns", {ip("10.0.0.4")});
    guarded.waypoint = GatewayAddress{NetworkAddress{"", ip("10.0.0.10")}, 15008};
    store_.upsert_workload(guarded);
  }

  void add_remote_network() {
    Workload far = make_workload("far", "ns", {});
    far.network = "remote";
    far.network_gateway = GatewayAddress{NamespacedHostname{"ns", "eastwest.ns.svc"}, 15008};
    far.services[{"ns", "remote.ns.svc"}] = {{80, 9080}};
    store_.upsert_workload(far);
    Service remote = make_service("ns", "remote.ns.svc", {{"", ip("10.96.0.5")}}, {{80, 9080}});
    remote.subject_alt_names = {"spiffe://cluster.local/ns/ns/sa/remote"};
    store_.upsert_service(remote);
    Workload gw = make_workload("ewgw", "istio-system", {ip("172.16.0.1")});
    gw.network = "remote";
    gw.service_account = "eastwest";
    gw.services[{"ns", "eastwest.ns.svc"}] = {{15008, 15008}};
    store_.upsert_workload(gw);
    store_.upsert_service(make_service("ns", "eastwest.ns.svc", {{"remote", ip("172.16.0.100")}}, {{15008, 15008}}));
  }

  RoutePlan route(std::string_view dst) {
    snap_ = store_.publish();
    return route_outbound(*snap_, source_, ep(dst), rng_);
  }

  MeshStore store_;
  Workload source_;
  std::shared_ptr<const StateSnapshot> snap_;
  Rng rng_{11};
};

TEST_F(Routing, ServiceToHboneWorkload) {
  RoutePlan plan = route("10.96.0.1:80");
  ASSERT_EQ(plan.kind, RouteKind::hbone) << plan.reason;
  EXPECT_EQ(plan.next_hop.to_string(), "10.0.0.2:15008");
  EXPECT_EQ(plan.authority, "10.0.0.2:8080");  // service port -> target port
  EXPECT_EQ(plan.upstream_identities, (std::vector<std::string>{"spiffe://cluster.local/ns/ns/sa/svc-sa",
                                                                "spiffe://cluster.local/ns/ns/sa/default"}));
  EXPECT_EQ(plan.service, (NamespacedHostname{"ns", "svc.ns.svc"}));
  ASSERT_TRUE(plan.next_hop_workload);
  EXPECT_EQ(plan.next_hop_workload->uid, "dst-hbone");
}

TEST_F(Routing, AvoidSteersServiceTrafficToAnotherEndpoint) {
  backing("dst-hbone-2", ip("10.0.0.12"), InboundProtocol::hbone, "svc.ns.svc");
  snap_ = store_.publish();
  RouteOptions options;
  options.avoid = [](const Workload& w, uint16_t port) { return w.uid == "dst-hbone" && port == 8080; };
  for (int i = 0; i < 20; ++i) {
    RoutePlan plan = route_outbound(*snap_, source_, ep("10.96.0.1:80"), rng_, options);
    ASSERT_EQ(plan.kind, RouteKind::hbone) << plan.reason;
    EXPECT_EQ(plan.next_hop_workload->uid, "dst-hbone-2");
    EXPECT_EQ(plan.endpoint_port, 8080);
    EXPECT_EQ(plan.authority, "10.0.0.12:8080");
  }
  // Workload-addressed traffic has no choice to make: avoid does not apply.
  options.avoid = [](const Workload&, uint16_t) { return true; };
  RoutePlan direct = route_outbound(*snap_, source_, ep("10.0.0.2:9999"), rng_, options);
  ASSERT_EQ(direct.kind, RouteKind::hbone) << direct.reason;
  EXPECT_EQ(direct.next_hop_workload->uid, "dst-hbone");
  EXPECT_EQ(direct.endpoint_port, 9999);
}

TEST_F(Routing, AvoidAppliesToWaypointChoice) {
  Workload wp2 = make_workload("wp2", "ns", {ip("10.0.0.11")});
  wp2.service_account = "waypoint";
  wp2.services[{"ns", "waypoint.ns.svc"}] = {{15008, 15008}};
  store_.upsert_workload(wp2);
  snap_ = store_.publish();
  RouteOptions options;
  options.avoid = [](const Workload& w, uint16_t port) { return w.uid == "wp" && port == 15008; };
  for (int i = 0; i < 20; ++i) {
    RoutePlan plan = route_outbound(*snap_, source_, ep("10.96.0.2:80"), rng_, options);
    ASSERT_EQ(plan.kind, RouteKind::waypoint) << plan.reason;
    EXPECT_EQ(plan.next_hop_workload->uid, "wp2");
    EXPECT_EQ(plan.endpoint_port, 15008);
  }
}

TEST_F(Routing, WorkloadAddressedKeepsThePort) {
  RoutePlan plan = route("10.0.0.2:9999");
  ASSERT_EQ(plan.kind, RouteKind::hbone) << plan.reason;
  EXPECT_EQ(plan.authority, "10.0.0.2:9999");
  EXPECT_FALSE(plan.service.has_value());
}

TEST_F(Routing, TcpWorkloadGetsPlainTcpWithTranslatedPort) {
  RoutePlan plan = route("10.96.0.6:80");
  ASSERT_EQ(plan.kind, RouteKind::tcp) << plan.reason;
  EXPECT_EQ(plan.next_hop.to_string(), "10.0.0.3:8081");
  EXPECT_TRUE(plan.authority.empty());
}

TEST_F(Routing, ServiceWaypoint) {
  RoutePlan plan = route("10.96.0.2:80");
  ASSERT_EQ(plan.kind, RouteKind::waypoint) << plan.reason;
  EXPECT_EQ(plan.next_hop.to_string(), "10.0.0.10:15008");
  EXPECT_EQ(plan.authority, "10.96.0.2:80");  // the original VIP, untranslated
  EXPECT_EQ(plan.upstream_identities, std::vector<std::string>{"spiffe://cluster.local/ns/ns/sa/waypoint"});
  EXPECT_EQ(plan.service, (NamespacedHostname{"ns", "behind.ns.svc"}));
}

TEST_F(Routing, WorkloadWaypointByAddress) {
  RoutePlan plan = route("10.0.0.4:80");
  ASSERT_EQ(plan.kind, RouteKind::waypoint) << plan.reason;
  EXPECT_EQ(plan.next_hop.to_string(), "10.0.0.10:15008");
  EXPECT_EQ(plan.authority, "10.0.0.4:80");
}

TEST_F(Routing, OtherNetworkGoesThroughItsGatewayWithDoubleHbone) {
  RoutePlan plan = route("10.96.0.5:80");
  ASSERT_EQ(plan.kind, RouteKind::double_hbone) << plan.reason;
  EXPECT_EQ(plan.next_hop.to_string(), "172.16.0.1:15008");
  EXPECT_EQ(plan.authority, "remote.ns.svc:80");
  EXPECT_EQ(plan.upstream_identities, std::vector<std::string>{"spiffe://cluster.local/ns/istio-system/sa/eastwest"});
  EXPECT_EQ(plan.final_identities, std::vector<std::string>{"spiffe://cluster.local/ns/ns/sa/remote"});
}

TEST_F(Routing, UnknownAndPassthroughGoToTheOriginalDestination) {
  RoutePlan unknown = route("8.8.8.8:443");
  EXPECT_EQ(unknown.kind, RouteKind::passthrough);
  EXPECT_EQ(unknown.next_hop.to_string(), "8.8.8.8:443");
  RoutePlan pass = route("10.96.0.3:80");
  EXPECT_EQ(pass.kind, RouteKind::passthrough);
  EXPECT_EQ(pass.next_hop.to_string(), "10.96.0.3:80");
}

TEST_F(Routing, RefusedWithReasons) {
  RoutePlan empty = route("10.96.0.4:80");
  EXPECT_EQ(empty.kind, RouteKind::refused);
  EXPECT_NE(empty.reason.find("no usable endpoints"), std::string::npos) << empty.reason;
  RoutePlan port = route("10.96.0.1:443");
  EXPECT_EQ(port.kind, RouteKind::refused);
  EXPECT_NE(port.reason.find("no port 443"), std::string::npos) << port.reason;
}

TEST_F(Routing, MissingWaypointIsRefused) {
  Service lost = make_service("ns", "lost.ns.svc", {{"", ip("10.96.0.7")}}, {{80, 80}});
  lost.waypoint = GatewayAddress{NamespacedHostname{"ns", "gone.ns.svc"}, 15008};
  store_.upsert_service(lost);
  RoutePlan plan = route("10.96.0.7:80");
  EXPECT_EQ(plan.kind, RouteKind::refused);
  EXPECT_NE(plan.reason.find("waypoint"), std::string::npos) << plan.reason;
}

TEST_F(Routing, RemoteWorkloadWithoutGatewayIsRefused) {
  Workload far = *store_.publish()->workload_by_uid("far");
  far.network_gateway.reset();
  store_.upsert_workload(far);
  RoutePlan plan = route("10.96.0.5:80");
  EXPECT_EQ(plan.kind, RouteKind::refused);
}

TEST_F(Routing, DualStackPrefersTheCallersFamily) {
  Workload dual = make_workload("dual", "ns", {ip("10.0.0.20"), ip("fd00::20")});
  dual.services[{"ns", "dual.ns.svc"}] = {{80, 80}};
  store_.upsert_workload(dual);
  store_.upsert_service(make_service("ns", "dual.ns.svc", {{"", ip("fd00::96")}, {"", ip("10.96.0.20")}}, {{80, 80}}));
  EXPECT_EQ(route("[fd00::96]:80").next_hop.to_string(), "[fd00::20]:15008");
  EXPECT_EQ(route("10.96.0.20:80").next_hop.to_string(), "10.0.0.20:15008");
}

}  // namespace
}  // namespace zt::core::mesh
