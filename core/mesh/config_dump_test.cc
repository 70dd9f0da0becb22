#include "core/mesh/config_dump.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/mesh/store.h"
#include "testing/mesh_fixtures.h"

namespace zt::core::mesh {
namespace {

using namespace zt::testing;


TEST(ConfigDump, ShapeIsCloseToUpstream) {
  MeshStore store;
  Workload w = make_workload("uid-b", "ns", {ip("10.0.0.2")});
  w.services[{"ns", "svc.ns.svc"}] = {{80, 8080}};
  store.upsert_workload(w);
  store.upsert_workload(make_workload("uid-a", "ns", {ip("fd00::1")}));
  Workload staged = make_workload("uid-c", "ns", {ip("10.0.0.3")});
  staged.services[{"ns", "later.ns.svc"}] = {{80, 80}};
  store.upsert_workload(staged);
  store.upsert_service(make_service("ns", "svc.ns.svc", {{"", ip("10.96.0.1")}}, {{80, 8080}}));
  Authorization a;
  a.name = "p";
  a.ns = "ns";
  a.action = RbacAction::deny;
  RbacMatch m;
  m.principals = {{StringMatch::Kind::presence, {}}};
  m.destination_ports = {80};
  a.rules = {{{m}}};
  store.upsert_policy(a.key(), a);

  auto json = nlohmann::json::parse(config_dump_json(*store.publish()));
  ASSERT_EQ(json["workloads"].size(), 3u);
  EXPECT_EQ(json["workloads"][0]["uid"], "uid-a");  // sorted by uid
  EXPECT_EQ(json["workloads"][0]["workloadIps"][0], "fd00::1");
  EXPECT_EQ(json["workloads"][1]["protocol"], "HBONE");
  EXPECT_EQ(json["workloads"][1]["services"]["ns/svc.ns.svc"]["80"], 8080);
  EXPECT_EQ(json["services"][0]["vips"][0], "/10.96.0.1");
  EXPECT_EQ(json["services"][0]["endpoints"]["uid-b"]["status"], "Healthy");
  EXPECT_EQ(json["policies"][0]["action"], "Deny");
  EXPECT_EQ(json["policies"][0]["rules"][0][0][0]["destinationPorts"][0], 80);
  EXPECT_TRUE(json["policies"][0]["rules"][0][0][0]["principals"][0].contains("Presence"));
  EXPECT_EQ(json["stagedServices"]["ns/later.ns.svc"], 1);
}

TEST(ConfigDump, InvalidUtf8DoesNotThrow) {
  MeshStore store;
  store.upsert_workload(make_workload("bad\xff", "ns", {}));
  EXPECT_NE(config_dump_json(*store.publish()).find("workloads"), std::string::npos);
}

}  // namespace
}  // namespace zt::core::mesh
