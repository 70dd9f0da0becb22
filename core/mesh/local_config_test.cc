#include "core/mesh/local_config.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "core/mesh/config_dump.h"
#include "testing/mesh_fixtures.h"

namespace zt::core::mesh {
namespace {

using namespace zt::testing;


std::string testdata(const std::string& name) {
  std::ifstream in(std::string(ZT_MESH_TESTDATA) + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_FALSE(text.str().empty()) << name;
  return text.str();
}

TEST(LocalConfig, UpstreamExampleLoads) {
  auto config = parse_local_config(testdata("localhost.yaml"), "localhost.yaml");
  ASSERT_TRUE(config.ok()) << config.error().message();
  MeshStore store;
  load_local_config(store, *config);
  auto snap = store.publish();
  const Workload* local = snap->workload_by_address({"", ip("127.0.0.1")});
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(local->protocol, InboundProtocol::hbone);
  EXPECT_EQ(snap->workload_by_address({"", ip("127.0.0.2")})->protocol, InboundProtocol::tcp);
  const Service* example = snap->service_by_vip({"", ip("127.10.0.1")});
  ASSERT_NE(example, nullptr);
  EXPECT_EQ(snap->endpoints_of(example->key()).size(), 2u);
  EXPECT_NE(snap->service_by_vip({"remote", ip("127.10.0.2")}), nullptr);
  const Authorization* policy = snap->policy("default/deny-9999");
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->rules.at(0).at(0).at(0).not_destination_ports, std::vector<uint16_t>{9999});
  EXPECT_EQ(snap->policies_for(*local).size(), 1u);
}

TEST(LocalConfig, EveryFieldIsRead) {
  auto config = parse_local_config(testdata("full.yaml"), "full.yaml");
  ASSERT_TRUE(config.ok()) << config.error().message();
  const Workload& w = config->workloads.at(0);
  EXPECT_EQ(w.identity().to_string(), "spiffe://example.org/ns/apps/sa/web");
  EXPECT_EQ(w.ips.size(), 2u);
  EXPECT_EQ(w.status, HealthStatus::unhealthy);
  EXPECT_EQ(w.capacity, 3u);
  EXPECT_EQ(w.locality.subzone, "rack-7");
  EXPECT_EQ(w.application_tunnel->port, 15088);
  EXPECT_EQ(to_string(*w.waypoint), "apps/waypoint.apps.svc.cluster.local:15008");
  EXPECT_EQ(to_string(*w.network_gateway), "net1/192.0.2.10:15009");
  const Service& s = config->services.at(0);
  EXPECT_EQ(s.vips.at(1).to_string(), "/fd00:96::1");
  EXPECT_EQ(s.load_balancer->mode, LbMode::failover);
  EXPECT_EQ(s.ip_families, IpFamilies::dual);
  const Authorization& p = config->policies.at(0);
  EXPECT_TRUE(p.dry_run);
  EXPECT_EQ(p.scope, RbacScope::workload_selector);
  const RbacMatch& m = p.rules.at(0).at(0).at(0);
  EXPECT_EQ(m.namespaces.at(0).kind, StringMatch::Kind::suffix);  // the !Suffix tag form
  EXPECT_EQ(m.namespaces.at(1).kind, StringMatch::Kind::presence);
  EXPECT_EQ(m.source_ips.at(1).to_string(), "fd00::/16");
  EXPECT_EQ(config->policies.at(1).action, RbacAction::deny);
}

TEST(LocalConfig, ErrorsNameTheLine) {
  struct Case { const char* file; const char* expect; };
  for (const Case& c : {Case{"broken_syntax.yaml", "broken_syntax.yaml:4:"},
                        Case{"broken_field.yaml", "broken_field.yaml:4:3: unknown field 'workloadIPs'"},
                        Case{"broken_ip.yaml", "broken_ip.yaml:6:7:"},
                        Case{"broken_enum.yaml", "broken_enum.yaml:5:11: action: 'Maybe' is not one of Allow, Deny"}}) {
    auto config = parse_local_config(testdata(c.file), c.file);
    ASSERT_FALSE(config.ok()) << c.file;
    EXPECT_NE(config.error().detail.find(c.expect), std::string::npos) << config.error().detail;
  }
}

TEST(LocalConfig, SmallMistakesAreClear) {
  auto missing = parse_local_config("policies:\n- name: p\n  action: Allow\n", "x.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().detail.find("x.yaml:2:3: missing field 'scope'"), std::string::npos)
      << missing.error().detail;
  auto old_format = parse_local_config("- name: local\n  workloadIp: 127.0.0.1\n", "old.yaml");
  ASSERT_FALSE(old_format.ok());
  EXPECT_NE(old_format.error().detail.find("expected a mapping"), std::string::npos);
  auto port = parse_local_config("services:\n- hostname: h\n  ports: {80: 70000}\n", "p.yaml");
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.error().detail.find("p.yaml:3:"), std::string::npos) << port.error().detail;
  auto no_uid = parse_local_config("workloads:\n- name: x\n", "u.yaml");
  EXPECT_NE(no_uid.error().detail.find("no uid"), std::string::npos);
  EXPECT_TRUE(parse_local_config("", "empty.yaml").ok());
}

// config_dump is JSON, JSON is YAML: dumping and reading back keeps the state.
TEST(LocalConfig, ConfigDumpReadsBackAsLocalConfig) {
  auto config = parse_local_config(testdata("full.yaml"), "full.yaml");
  ASSERT_TRUE(config.ok()) << config.error().message();
  MeshStore store;
  load_local_config(store, *config);
  std::string dumped = config_dump_json(*store.publish());
  auto json = nlohmann::json::parse(dumped);
  for (auto& s : json["services"]) s.erase("endpoints");  // derived from workloads
  json.erase("stagedServices");
  auto again = parse_local_config(json.dump(), "dump.json");
  ASSERT_TRUE(again.ok()) << again.error().message();
  MeshStore second;
  load_local_config(second, *again);
  EXPECT_EQ(config_dump_json(*second.publish()), dumped);
}

}  // namespace
}  // namespace zt::core::mesh
