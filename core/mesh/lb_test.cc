#include "core/mesh/lb.h"

#include <gtest/gtest.h>

#include "core/mesh/store.h"
#include "testing/mesh_fixtures.h"

namespace zt::core::mesh {
namespace {

using namespace zt::testing;


Workload located(std::string uid, std::string region, std::string zone, std::string network = "") {
  Workload w = make_workload(std::move(uid), "ns", {ip("10.0.0.1")});
  w.locality = {std::move(region), std::move(zone), ""};
  w.network = std::move(network);
  return w;
}

struct LbFixture : ::testing::Test {
  MeshStore store;
  NamespacedHostname key{"ns", "svc.ns.svc"};

  void add_endpoint(Workload w, PortMap ports = {{80, 0}}) {
    w.services[key] = std::move(ports);
    store.upsert_workload(std::move(w));
  }
  Service service(std::optional<LoadBalancer> lb = std::nullopt, PortMap ports = {{80, 8080}}) {
    Service s = make_service("ns", "svc.ns.svc", {{"", ip("10.96.0.1")}}, std::move(ports));
    s.load_balancer = std::move(lb);
    return s;
  }
  std::set<std::string> picks(const Workload& src, const Service& svc, int draws = 200) {
    auto snap = store.publish();
    Rng rng(7);
    std::set<std::string> seen;
    for (int i = 0; i < draws; ++i) {
      auto choice = choose_endpoint(*snap, src, svc, 80, ResolutionMode::standard, rng);
      if (choice) seen.insert(choice->workload->uid);
    }
    return seen;
  }
};

TEST_F(LbFixture, CapacityWeightsTheChoice) {
  // Capacities 1, 2, 7: expect 10%, 20%, 70% (seeded, so the result is fixed).
  for (auto [uid, capacity] : {std::pair{"a", 1u}, {"b", 2u}, {"c", 7u}}) {
    Workload w = make_workload(uid, "ns", {ip("10.0.0.1")});
    w.capacity = capacity;
    add_endpoint(w);
  }
  auto snap = store.publish();
  Service svc = service();
  Workload src = make_workload("src", "ns", {ip("10.0.9.9")});
  Rng rng = Rng(42).stream("lb");
  std::map<std::string, int> counts;
  const int draws = 100000;
  for (int i = 0; i < draws; ++i) ++counts[choose_endpoint(*snap, src, svc, 80, ResolutionMode::standard, rng)->workload->uid];
  EXPECT_NEAR(counts["a"] / double(draws), 0.1, 0.01);
  EXPECT_NEAR(counts["b"] / double(draws), 0.2, 0.01);
  EXPECT_NEAR(counts["c"] / double(draws), 0.7, 0.01);
}

TEST_F(LbFixture, UnhealthyOnlyUnderAllowAll) {
  Workload sick = make_workload("sick", "ns", {ip("10.0.0.1")});
  sick.status = HealthStatus::unhealthy;
  add_endpoint(sick);
  Workload src = make_workload("src", "ns", {ip("10.0.9.9")});
  EXPECT_TRUE(picks(src, service()).empty());
  EXPECT_EQ(picks(src, service(LoadBalancer{{}, LbMode::standard, HealthPolicy::allow_all})),
            std::set<std::string>{"sick"});
}

TEST_F(LbFixture, StrictAndFailoverAsUpstream) {
  // Upstream's case: preferences [Network, Region, Zone].
  add_endpoint(located("match", "r1", "z1"));
  add_endpoint(located("almost", "r1", "z2"));
  add_endpoint(located("none", "r2", "z9"));
  std::vector<LbScope> prefs = {LbScope::network, LbScope::region, LbScope::zone};
  Service strict = service(LoadBalancer{prefs, LbMode::strict, HealthPolicy::only_healthy});
  Service failover = service(LoadBalancer{prefs, LbMode::failover, HealthPolicy::only_healthy});
  EXPECT_EQ(picks(located("src", "r1", "z1"), strict), std::set<std::string>{"match"});
  EXPECT_EQ(picks(located("src", "r1", "z1"), failover), std::set<std::string>{"match"});
  EXPECT_TRUE(picks(located("src", "r1", "z3"), strict).empty());
  EXPECT_EQ(picks(located("src", "r1", "z3"), failover), (std::set<std::string>{"match", "almost"}));
  EXPECT_EQ(picks(located("src", "r3", "z1"), failover), (std::set<std::string>{"match", "almost", "none"}));
  EXPECT_EQ(picks(located("src", "r3", "z1"), service()), (std::set<std::string>{"match", "almost", "none"}));
}

TEST_F(LbFixture, PortsDecideWhoQualifies) {
  Workload mapped = make_workload("mapped", "ns", {ip("10.0.0.1")});
  add_endpoint(mapped, {{80, 9090}});
  Workload unmapped = make_workload("unmapped", "ns", {ip("10.0.0.2")});
  add_endpoint(unmapped, {{81, 9091}});
  Workload src = make_workload("src", "ns", {ip("10.0.9.9")});
  // The service gives no target for 80: only the endpoint that maps 80 qualifies.
  Service svc = service(std::nullopt, {{80, 0}});
  EXPECT_EQ(picks(src, svc), std::set<std::string>{"mapped"});
  auto snap = store.publish();
  Rng rng(1);
  auto choice = choose_endpoint(*snap, src, svc, 80, ResolutionMode::standard, rng);
  ASSERT_TRUE(choice.ok());
  EXPECT_EQ(target_port(svc, *choice, 80), 9090);
  EXPECT_FALSE(choose_endpoint(*snap, src, svc, 443, ResolutionMode::standard, rng).ok());
}

TEST_F(LbFixture, AddresslessEndpointsNeedAGatewayFromAnotherNetwork) {
  Workload far = make_workload("far", "ns", {});
  far.network = "remote";
  add_endpoint(far);
  Workload src = make_workload("src", "ns", {ip("10.0.9.9")});
  EXPECT_TRUE(picks(src, service()).empty());
  far.network_gateway = GatewayAddress{NetworkAddress{"remote", ip("192.0.2.1")}, 15008};
  add_endpoint(far);
  EXPECT_EQ(picks(src, service()), std::set<std::string>{"far"});
  Workload local_src = src;
  local_src.network = "remote";  // same network: the gateway must not be used
  EXPECT_TRUE(picks(local_src, service()).empty());
}

TEST_F(LbFixture, WaypointModeAcceptsApplicationTunnels) {
  Workload wp = make_workload("wp", "ns", {ip("10.0.0.5")});
  wp.application_tunnel = ApplicationTunnel{ApplicationTunnel::Protocol::proxy, std::nullopt};
  add_endpoint(wp, {});
  auto snap = store.publish();
  Service svc = service(std::nullopt, {});
  Workload src = make_workload("src", "ns", {ip("10.0.9.9")});
  Rng rng(3);
  EXPECT_FALSE(choose_endpoint(*snap, src, svc, 15008, ResolutionMode::standard, rng).ok());
  EXPECT_TRUE(choose_endpoint(*snap, src, svc, 15008, ResolutionMode::waypoint, rng).ok());
}

TEST_F(LbFixture, AvoidedEndpointsAreSkippedWhileOthersQualify) {
  for (const char* uid : {"a", "b", "c"}) add_endpoint(make_workload(uid, "ns", {ip("10.0.0.1")}));
  auto snap = store.publish();
  Service svc = service();
  Workload src = make_workload("src", "ns", {ip("10.0.9.9")});
  Rng rng(5);
  std::vector<std::pair<std::string, uint16_t>> asked;
  AvoidEndpoint avoid_a = [&](const Workload& w, uint16_t port) {
    asked.emplace_back(w.uid, port);
    return w.uid == "a";
  };
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i)
    seen.insert(choose_endpoint(*snap, src, svc, 80, ResolutionMode::standard, rng, avoid_a)->workload->uid);
  EXPECT_EQ(seen, (std::set<std::string>{"b", "c"}));
  ASSERT_FALSE(asked.empty());
  EXPECT_EQ(asked.front().second, 8080);  // the predicate sees the target port, not the service port
  // Everything avoided: the choice is made among all of them anyway.
  seen.clear();
  AvoidEndpoint avoid_all = [](const Workload&, uint16_t) { return true; };
  for (int i = 0; i < 200; ++i)
    seen.insert(choose_endpoint(*snap, src, svc, 80, ResolutionMode::standard, rng, avoid_all)->workload->uid);
  EXPECT_EQ(seen, (std::set<std::string>{"a", "b", "c"}));
}

TEST_F(LbFixture, AvoidingTheLocalEndpointsFailsOverUnlessStrict) {
  add_endpoint(located("local", "r1", "z1"));
  add_endpoint(located("remote", "r1", "z2"));
  std::vector<LbScope> prefs = {LbScope::region, LbScope::zone};
  Service failover = service(LoadBalancer{prefs, LbMode::failover, HealthPolicy::only_healthy});
  Service strict = service(LoadBalancer{prefs, LbMode::strict, HealthPolicy::only_healthy});
  auto snap = store.publish();
  Workload src = located("src", "r1", "z1");
  Rng rng(8);
  AvoidEndpoint avoid_local = [](const Workload& w, uint16_t) { return w.uid == "local"; };
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(choose_endpoint(*snap, src, failover, 80, ResolutionMode::standard, rng, avoid_local)->workload->uid,
              "remote");
    // STRICT never leaves the zone: the avoided local endpoint is still the only choice.
    EXPECT_EQ(choose_endpoint(*snap, src, strict, 80, ResolutionMode::standard, rng, avoid_local)->workload->uid,
              "local");
  }
}

TEST_F(LbFixture, SameSeedSameChoices) {
  for (int i = 0; i < 20; ++i) add_endpoint(make_workload("w" + std::to_string(i), "ns", {ip("10.0.0.1")}));
  auto snap = store.publish();
  Service svc = service();
  Workload src = make_workload("src", "ns", {ip("10.0.9.9")});
  Rng a(99), b(99);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(choose_endpoint(*snap, src, svc, 80, ResolutionMode::standard, a)->workload->uid,
              choose_endpoint(*snap, src, svc, 80, ResolutionMode::standard, b)->workload->uid);
}

}  // namespace
}  // namespace zt::core::mesh
