// ConnectionTracker on its own: which connections a re-check closes, that
// abort runs once, and that handles unregister.
#include "core/proxy/connection_tracker.h"

#include <gtest/gtest.h>

#include "core/mesh/local_config.h"
#include "core/mesh/store.h"

namespace zt::core::proxy {
namespace {

std::shared_ptr<const mesh::StateSnapshot> snapshot(mesh::MeshStore& store, const std::string& policies) {
  auto cfg = mesh::parse_local_config(R"(workloads:
- uid: cluster1//v1/Pod/default/server
  name: server
  namespace: default
  workloadIps: ["10.0.2.1"]
  protocol: HBONE
)" + policies,
                                      "test");
  EXPECT_TRUE(cfg) << cfg.error().message();
  mesh::load_local_config(store, *cfg);
  return store.publish();
}

mesh::Connection conn(const char* sa, uint16_t port = 8080) {
  mesh::Connection c;
  c.src = Endpoint{IpAddr::v4(10, 0, 1, 1), 40000};
  c.dst = Endpoint{IpAddr::v4(10, 0, 2, 1), port};
  if (sa) c.src_identity = mesh::Identity{"cluster.local", "default", sa};
  return c;
}

TEST(ConnectionTracker, ARecheckClosesOnlyWhatThePolicyNowDeniesAndOnlyOnce) {
  mesh::MeshStore store;
  auto open_policy = snapshot(store, "");
  ConnectionTracker tracker;
  int alice_aborts = 0, bob_aborts = 0, plain_aborts = 0;
  auto alice = tracker.track(conn("alice"), [&] { ++alice_aborts; });
  auto bob = tracker.track(conn("bob"), [&] { ++bob_aborts; });
  auto plain = tracker.track(conn(nullptr), [&] { ++plain_aborts; });
  EXPECT_EQ(tracker.open(), 3u);
  EXPECT_EQ(tracker.recheck(*open_policy), 0u);
  auto deny_bob = snapshot(store, R"(policies:
- action: Deny
  name: no-bob
  namespace: default
  scope: Namespace
  rules:
  - - - principals: [{Exact: cluster.local/ns/default/sa/bob}]
)");
  EXPECT_EQ(tracker.recheck(*deny_bob), 1u);
  EXPECT_EQ(tracker.recheck(*deny_bob), 0u);  // already closed: not again
  EXPECT_EQ(bob_aborts, 1);
  EXPECT_EQ(alice_aborts + plain_aborts, 0);
  EXPECT_TRUE(bob.revoked());
  EXPECT_FALSE(alice.revoked());
  EXPECT_EQ(tracker.revoked_total(), 1u);
  // An ALLOW policy for alice alone now denies the plaintext connection too.
  auto only_alice = snapshot(store, R"(policies:
- action: Allow
  name: only-alice
  namespace: default
  scope: Namespace
  rules:
  - - - principals: [{Exact: cluster.local/ns/default/sa/alice}]
)");
  EXPECT_EQ(tracker.recheck(*only_alice), 1u);
  EXPECT_EQ(plain_aborts, 1);
  EXPECT_EQ(alice_aborts, 0);
}

// A server cutting everything (a pod's proxies at their drain deadline):
// each connection is aborted once, none counts as revoked by policy, and a
// later re-check does not abort them again.
TEST(ConnectionTracker, AbortAllAbortsEachOnceWithoutRevoking) {
  mesh::MeshStore store;
  ConnectionTracker tracker;
  int alice_aborts = 0, bob_aborts = 0;
  auto alice = tracker.track(conn("alice"), [&] { ++alice_aborts; });
  auto bob = tracker.track(conn("bob"), [&] { ++bob_aborts; });
  tracker.abort_all();
  tracker.abort_all();
  EXPECT_EQ(alice_aborts, 1);
  EXPECT_EQ(bob_aborts, 1);
  EXPECT_FALSE(alice.revoked());
  EXPECT_EQ(tracker.revoked_total(), 0u);
  auto deny_bob = snapshot(store, R"(policies:
- action: Deny
  name: no-bob
  namespace: default
  scope: Namespace
  rules:
  - - - principals: [{Exact: cluster.local/ns/default/sa/bob}]
)");
  EXPECT_EQ(tracker.recheck(*deny_bob), 0u);
  EXPECT_EQ(bob_aborts, 1);
}

TEST(ConnectionTracker, AGoneDestinationClosesAndHandlesUnregister) {
  mesh::MeshStore store;
  ConnectionTracker tracker;
  int aborts = 0;
  {
    auto h = tracker.track(conn("alice"), [&] { ++aborts; });
    ConnectionTracker::Handle moved = std::move(h);
    EXPECT_EQ(tracker.open(), 1u);
  }
  EXPECT_EQ(tracker.open(), 0u);
  auto h = tracker.track(conn("alice"), [&] { ++aborts; });
  store.clear();
  EXPECT_EQ(tracker.recheck(*store.publish()), 1u);  // upstream: no destination workload, not allowed
  EXPECT_EQ(aborts, 1);
}

}  // namespace
}  // namespace zt::core::proxy
