// The mesh swarm (sim-tests/mesh_swarm.cc): per seed, a random mesh of 2 to
// 5 nodes running the real node proxy (sim-tests/mesh_fixture.h: Outbound,
// Inbound, the HBONE pool, mTLS, HTTP/2, policy, routing, outlier
// detection, connection tracking), random services, policies and traffic,
// a random fault schedule, then a heal phase; the invariants are checked
// against reference models written here, independently of core/.
//
//   SwarmSeedResult r = run_mesh_swarm_seed(7, nullptr);
//   if (!r.violations.empty()) ...   // each names what broke, and when
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/mesh/snapshot.h"
#include "core/mesh/store.h"
#include "io/address.h"
#include "testing/swarm_cli.h"

namespace zt::sim_tests::swarm {

// --- the reference RBAC model -------------------------------------------
// Written from the documented semantics (upstream ztunnel's L4 policy),
// not from core/mesh/rbac.cc: rules ORed, clauses ANDed, matches ORed,
// fields ANDed (positive lists must hit, negative lists must miss); DENY
// first, then ALLOW; dry-run policies never enforced.

struct RefString {
  enum Kind : uint8_t { exact, prefix, suffix, presence } kind = exact;
  std::string value;
  bool hits(const std::string& s) const;
};

struct RefCidr {
  IpAddr ip;
  uint8_t len = 32;
  bool hits(const IpAddr& a) const;
};

struct RefMatch {
  std::vector<RefString> principals, not_principals, namespaces, not_namespaces;
  std::vector<RefCidr> source_ips, not_source_ips, destination_ips, not_destination_ips;
  std::vector<uint16_t> ports, not_ports;
  std::vector<std::pair<std::string, std::string>> service_accounts, not_service_accounts;  // (ns, sa)
};

struct RefPolicy {
  std::string name, ns;  // ns "istio-system" with global scope: every workload
  enum Scope : uint8_t { global, ns_wide, selector } scope = ns_wide;
  bool deny = false, dry_run = false;
  std::vector<std::vector<std::vector<RefMatch>>> rules;  // rules -> clauses -> matches
  std::vector<size_t> selected;                            // selector scope: the node indexes it names
};

struct RefConn {
  std::string src_ns, src_sa, trust_domain = "cluster.local";
  IpAddr src_ip, dst_ip;
  uint16_t dst_port = 0;
  std::string dst_ns;
  size_t dst_node = 0;
};

bool ref_matches(const RefPolicy& p, const RefConn& c);
bool ref_allowed(const std::vector<RefPolicy>& policies, const RefConn& c);
// The policy as core::mesh holds it (what the swarm and the model publish).
core::mesh::Authorization to_core(const RefPolicy& p);

// --- the mesh state over xDS --------------------------------------------------

// A mesh state as the swarm's simulated istiod serves it (named delta xDS
// resources, each an Any's bytes): workloads and services as
// istio.workload.Address, policies as istio.security.Authorization, with
// core/mesh/proto_encode.h, in the snapshot's (ordered) index order.
struct SwarmXdsResources {
  std::vector<core::mesh::NamedResource> addresses, authorizations;
};
SwarmXdsResources swarm_xds_resources(const core::mesh::StateSnapshot& state);

// The mesh states seed `seed` draws (its first, then `changes` policy and
// endpoint changes), for the round-trip test (mesh_swarm_xds_test.cc).
std::vector<std::shared_ptr<const core::mesh::StateSnapshot>> draw_swarm_states(uint64_t seed, int changes);

// --- one seed ---------------------------------------------------------------
testing::SwarmSeedResult run_mesh_swarm_seed(uint64_t seed, std::FILE* trace);

}  // namespace zt::sim_tests::swarm
