// The mesh swarm's state over xDS: what the swarm hands its simulated
// istiod (swarm_xds_resources, core/mesh/proto_encode.h) decodes, with the
// project's own xDS decoder (MeshStore's delta application, as AdsClient
// uses it), back into the very state the swarm drew: whole, and as the
// deltas istiod pushes between one publish and the next.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "core/mesh/store.h"
#include "sim-tests/mesh_swarm_lib.h"

namespace zt::sim_tests::swarm {
namespace {

using core::mesh::NamedResource;
using core::mesh::StateSnapshot;

void expect_same_state(const StateSnapshot& want, const StateSnapshot& got, const std::string& where) {
  const auto& ww = want.workloads().by_uid;
  const auto& gw = got.workloads().by_uid;
  ASSERT_EQ(ww.size(), gw.size()) << where;
  for (const auto& [uid, w] : ww) {
    auto it = gw.find(uid);
    ASSERT_NE(it, gw.end()) << where << ": workload " << uid;
    EXPECT_TRUE(*w == *it->second) << where << ": workload " << uid;
  }
  const auto& ws = want.services().by_host;
  const auto& gs = got.services().by_host;
  ASSERT_EQ(ws.size(), gs.size()) << where;
  for (const auto& [key, s] : ws) {
    auto it = gs.find(key);
    ASSERT_NE(it, gs.end()) << where << ": service " << key.hostname;
    EXPECT_TRUE(*s == *it->second) << where << ": service " << key.hostname;
  }
  const auto& wp = want.policies().by_key;
  const auto& gp = got.policies().by_key;
  ASSERT_EQ(wp.size(), gp.size()) << where;
  for (const auto& [key, p] : wp) {
    auto it = gp.find(key);
    ASSERT_NE(it, gp.end()) << where << ": policy " << key;
    EXPECT_TRUE(*p == *it->second) << where << ": policy " << key;
    // And the policies that apply to each workload are the same ones.
  }
  for (const auto& [uid, w] : ww) {
    std::vector<const core::mesh::Authorization*> a = want.policies_for(*w), b = got.policies_for(*gw.at(uid));
    ASSERT_EQ(a.size(), b.size()) << where << ": policies for " << uid;
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i] == nullptr, b[i] == nullptr) << where << ": policies for " << uid;
      if (a[i]) {
        EXPECT_TRUE(*a[i] == *b[i]) << where << ": policies for " << uid;
      }
    }
  }
}

void expect_no_rejections(const std::vector<core::mesh::Rejection>& rejected, const std::string& where) {
  for (const auto& r : rejected) ADD_FAILURE() << where << ": the decoder rejected " << r.name << ": " << r.reason;
}

TEST(MeshSwarmXds, DrawnStatesRoundTripWhole) {
  size_t policies = 0, selector_policies = 0, services = 0;
  for (uint64_t seed = 1; seed <= 80; ++seed) {
    const auto states = draw_swarm_states(seed, 8);
    for (size_t i = 0; i < states.size(); ++i) {
      policies += states[i]->policies().by_key.size();
      services += states[i]->services().by_host.size();
      for (const auto& [uid, w] : states[i]->workloads().by_uid) selector_policies += w->authorization_policies.size();
      const std::string where = "seed " + std::to_string(seed) + " state " + std::to_string(i);
      const SwarmXdsResources r = swarm_xds_resources(*states[i]);
      core::mesh::MeshStore store;
      expect_no_rejections(store.apply_address_delta(r.addresses, {}), where);
      expect_no_rejections(store.apply_authorization_delta(r.authorizations, {}), where);
      expect_same_state(*states[i], *store.publish(), where);
    }
  }
  // Not vacuous: the draws carry policies of every scope and services.
  EXPECT_GT(policies, 100u);
  EXPECT_GT(selector_policies, 20u);
  EXPECT_GT(services, 100u);
}

// What changed between two publishes, as a delta response carries it.
struct Delta {
  std::vector<NamedResource> changed;
  std::vector<std::string> removed;
};
Delta delta(const std::vector<NamedResource>& before, const std::vector<NamedResource>& after) {
  std::map<std::string, std::string> was;
  for (const auto& r : before) was[r.name] = r.bytes;
  Delta d;
  std::set<std::string> now;
  for (const auto& r : after) {
    now.insert(r.name);
    auto it = was.find(r.name);
    if (it == was.end() || it->second != r.bytes) d.changed.push_back(r);
  }
  for (const auto& [name, bytes] : was)
    if (!now.contains(name)) d.removed.push_back(name);
  return d;
}

TEST(MeshSwarmXds, DrawnStatesRoundTripAsDeltas) {
  for (uint64_t seed = 1; seed <= 80; ++seed) {
    const auto states = draw_swarm_states(seed, 8);
    core::mesh::MeshStore store;
    SwarmXdsResources last;
    for (size_t i = 0; i < states.size(); ++i) {
      const std::string where = "seed " + std::to_string(seed) + " state " + std::to_string(i);
      const SwarmXdsResources r = swarm_xds_resources(*states[i]);
      const Delta authz = delta(last.authorizations, r.authorizations), addr = delta(last.addresses, r.addresses);
      // istiod's order does not matter for the end state.
      expect_no_rejections(store.apply_authorization_delta(authz.changed, authz.removed), where);
      expect_no_rejections(store.apply_address_delta(addr.changed, addr.removed), where);
      expect_same_state(*states[i], *store.publish(), where);
      last = r;
    }
  }
}

}  // namespace
}  // namespace zt::sim_tests::swarm
