#include "core/mesh/store.h"

#include <gtest/gtest.h>

#include "testing/mesh_fixtures.h"

namespace zt::core::mesh {
namespace {

using namespace zt::testing;


TEST(MeshStore, IndexesWorkloadsByUidAndAddress) {
  MeshStore store;
  ASSERT_TRUE(store.apply_address(address_of(workload_proto("uid-a", "10.0.0.1"))).ok());
  auto snap = store.publish();
  ASSERT_NE(snap->workload_by_uid("uid-a"), nullptr);
  EXPECT_EQ(snap->workload_by_address({"", ip("10.0.0.1")})->uid, "uid-a");
  EXPECT_EQ(snap->workload_by_address({"other", ip("10.0.0.1")}), nullptr);
}

TEST(MeshStore, EndpointsDoNotDependOnArrivalOrder) {
  auto backed = workload_proto("uid-a", "10.0.0.1");
  (*backed.mutable_services())["ns/svc.ns.svc"].add_ports()->set_service_port(80);
  auto service = service_proto("ns", "svc.ns.svc", "10.96.0.1", 80, 8080);

  MeshStore first, second;
  ASSERT_TRUE(first.apply_address(address_of(backed)).ok());
  ASSERT_TRUE(first.apply_address(address_of(service)).ok());
  ASSERT_TRUE(second.apply_address(address_of(service)).ok());
  ASSERT_TRUE(second.apply_address(address_of(backed)).ok());
  for (MeshStore* store : {&first, &second}) {
    auto snap = store->publish();
    const Service* s = snap->service_by_vip({"", ip("10.96.0.1")});
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->hostname, "svc.ns.svc");
    const EndpointSet& eps = snap->endpoints_of(s->key());
    ASSERT_EQ(eps.size(), 1u);
    EXPECT_EQ(eps.at("uid-a").workload->uid, "uid-a");
  }
}

TEST(MeshStore, RemoveByNameDropsWorkloadEndpointsAndServices) {
  MeshStore store;
  auto backed = workload_proto("uid-a", "10.0.0.1");
  (*backed.mutable_services())["ns/svc.ns.svc"].add_ports()->set_service_port(80);
  ASSERT_TRUE(store.apply_address(address_of(backed)).ok());
  ASSERT_TRUE(store.apply_address(address_of(service_proto("ns", "svc.ns.svc", "10.96.0.1", 80, 80))).ok());
  EXPECT_TRUE(store.remove_address("uid-a"));
  auto snap = store.publish();
  EXPECT_EQ(snap->workload_by_address({"", ip("10.0.0.1")}), nullptr);
  EXPECT_TRUE(snap->endpoints_of({"ns", "svc.ns.svc"}).empty());
  EXPECT_TRUE(store.remove_address("ns/svc.ns.svc"));
  EXPECT_EQ(store.publish()->service_by_vip({"", ip("10.96.0.1")}), nullptr);
  EXPECT_FALSE(store.remove_address("nothing"));
}

TEST(MeshStore, InvalidResourceIsRejectedAndTheRestApplied) {
  MeshStore store;
  ASSERT_TRUE(store.apply_address(address_of(workload_proto("uid-a", "10.0.0.1"))).ok());
  auto bad = workload_proto("uid-a", "10.0.0.2");
  bad.add_addresses("zz");  // the new version is invalid: the old one stays
  auto good = workload_proto("uid-b", "10.0.0.3");
  std::vector<NamedResource> batch = {{"uid-a", address_of(bad).SerializeAsString()},
                                      {"uid-b", address_of(good).SerializeAsString()},
                                      {"junk", "\xff\xff\xff"}};
  auto rejected = store.apply_address_delta(batch, {});
  ASSERT_EQ(rejected.size(), 2u);
  EXPECT_EQ(rejected[0].name, "uid-a");
  EXPECT_NE(rejected[0].reason.find("4 or 16 bytes"), std::string::npos);
  EXPECT_EQ(rejected[1].name, "junk");
  auto snap = store.publish();
  EXPECT_EQ(snap->workload_by_uid("uid-a")->ips.at(0), ip("10.0.0.1"));
  EXPECT_NE(snap->workload_by_uid("uid-b"), nullptr);
}

TEST(MeshStore, SnapshotsAreImmutableAndShareUnchangedIndexes) {
  MeshStore store;
  ASSERT_TRUE(store.apply_address(address_of(workload_proto("uid-a", "10.0.0.1"))).ok());
  auto before = store.publish();
  EXPECT_EQ(store.publish(), before);  // nothing changed: same snapshot

  istio::security::Authorization policy;
  policy.set_name("deny-all");
  policy.set_namespace_("default");
  ASSERT_TRUE(store.apply_authorization("default/deny-all", policy).ok());
  ASSERT_TRUE(store.apply_address(address_of(workload_proto("uid-b", "10.0.0.2"))).ok());
  auto after = store.publish();
  EXPECT_GT(after->generation(), before->generation());
  EXPECT_EQ(before->workload_by_uid("uid-b"), nullptr);
  EXPECT_EQ(before->policy("default/deny-all"), nullptr);
  EXPECT_NE(after->workload_by_uid("uid-b"), nullptr);
  EXPECT_EQ(&before->services(), &after->services());  // untouched: shared, not copied
  EXPECT_NE(&before->workloads(), &after->workloads());
}

TEST(MeshStore, EndpointSetsAreCopiedOnWrite) {
  MeshStore store;
  auto w = make_workload("uid-a", "ns", {ip("10.0.0.1")});
  w.services[{"ns", "svc"}] = {{80, 8080}};
  store.upsert_workload(w);
  auto before = store.publish();
  w.uid = "uid-b";
  w.ips = {ip("10.0.0.2")};
  store.upsert_workload(w);
  auto after = store.publish();
  EXPECT_EQ(before->endpoints_of({"ns", "svc"}).size(), 1u);
  EXPECT_EQ(after->endpoints_of({"ns", "svc"}).size(), 2u);
}

TEST(MeshStore, AddressClaimsPreferPodsThenHbone) {
  MeshStore store;
  store.upsert_workload(make_workload("c1//networking.istio.io/WorkloadEntry/ns/we", "ns", {ip("10.0.0.9")}));
  store.upsert_workload(make_workload("c1//Pod/ns/pod", "ns", {ip("10.0.0.9")}, InboundProtocol::tcp));
  auto snap = store.publish();
  EXPECT_EQ(snap->workload_by_address({"", ip("10.0.0.9")})->uid, "c1//Pod/ns/pod");
  store.remove_workload("c1//Pod/ns/pod");
  EXPECT_EQ(store.publish()->workload_by_address({"", ip("10.0.0.9")})->uid,
            "c1//networking.istio.io/WorkloadEntry/ns/we");
}

TEST(MeshStore, HostNetworkWorkloadsAreNotFoundByAddress) {
  MeshStore store;
  auto w = make_workload("uid-h", "ns", {ip("192.168.1.5")});
  w.network_mode = NetworkMode::host_network;
  store.upsert_workload(w);
  auto snap = store.publish();
  EXPECT_NE(snap->workload_by_uid("uid-h"), nullptr);
  EXPECT_EQ(snap->workload_by_address({"", ip("192.168.1.5")}), nullptr);
}

TEST(MeshStore, PoliciesForFollowsUpstreamOrder) {
  MeshStore store;
  auto add = [&](std::string key, std::string ns, RbacScope scope) {
    Authorization a;
    a.name = key.substr(key.find('/') + 1);
    a.ns = std::move(ns);
    a.scope = scope;
    store.upsert_policy(key, a);
  };
  add("ns1/b", "ns1", RbacScope::ns);
  add("ns1/a", "ns1", RbacScope::ns);
  add("istio-system/g", "istio-system", RbacScope::global);
  add("ns1/selected", "ns1", RbacScope::workload_selector);
  add("ns2/other", "ns2", RbacScope::ns);
  auto w = make_workload("uid", "ns1", {ip("10.0.0.1")});
  w.authorization_policies = {"ns1/selected", "ns1/not-yet-sent"};
  auto snap = store.publish();
  auto policies = snap->policies_for(w);
  ASSERT_EQ(policies.size(), 5u);
  EXPECT_EQ(policies[0]->key(), "ns1/a");
  EXPECT_EQ(policies[1]->key(), "ns1/b");
  EXPECT_EQ(policies[2]->key(), "istio-system/g");
  EXPECT_EQ(policies[3]->key(), "ns1/selected");
  EXPECT_EQ(policies[4], nullptr);

  EXPECT_TRUE(store.remove_authorization("istio-system/g"));
  EXPECT_EQ(store.publish()->policies_for(w).size(), 4u);
}

TEST(MeshStore, AuthorizationDeltaReportsRejections) {
  MeshStore store;
  istio::security::Authorization good;
  good.set_name("ok");
  istio::security::Authorization bad;
  bad.set_name("bad");
  bad.add_rules()->add_clauses()->add_matches()->add_source_ips()->set_address("1");
  std::vector<NamedResource> batch = {{"ns/ok", good.SerializeAsString()}, {"ns/bad", bad.SerializeAsString()}};
  std::vector<std::string> removed = {"ns/gone"};
  auto rejected = store.apply_authorization_delta(batch, removed);
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].name, "ns/bad");
  auto snap = store.publish();
  EXPECT_NE(snap->policy("ns/ok"), nullptr);
  EXPECT_EQ(snap->policy("ns/bad"), nullptr);
}

}  // namespace
}  // namespace zt::core::mesh
