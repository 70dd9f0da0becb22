// An immutable view of the whole mesh state, shared by readers without locks.
//
// MeshStore (store.h) builds and publishes snapshots; a reader keeps the
// std::shared_ptr<const StateSnapshot> it was handed for as long as it needs
// a consistent view (raw pointers returned here live as long as the snapshot).
// The indexes are shared between consecutive snapshots copy-on-write, so a
// publish copies only what changed since the previous one.
//
//   auto snap = store.publish();
//   const Workload* w = snap->workload_by_address({"", ip});
//   for (const Authorization* p : snap->policies_for(*w)) ...
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/mesh/model.h"
#include "core/mesh/rbac.h"

namespace zt::core::mesh {

struct WorkloadIndex {
  std::map<std::string, std::shared_ptr<const Workload>, std::less<>> by_uid;
  // Several workloads may claim one address; the best is kept first (pods
  // before other kinds, HBONE before TCP, then by uid).
  std::unordered_map<NetworkAddress, std::vector<std::shared_ptr<const Workload>>, NetworkAddressHash>
      by_address;
};

struct ServiceIndex {
  std::map<NamespacedHostname, std::shared_ptr<const Service>> by_host;
  // Last writer wins when two services claim one VIP (as upstream).
  std::unordered_map<NetworkAddress, NamespacedHostname, NetworkAddressHash> by_vip;
};

// Endpoints per service key, kept even before the service itself arrives
// (workloads and services come in any order). Each set is copy-on-write on
// its own so one changed endpoint does not copy every service's endpoints.
struct EndpointIndex {
  std::map<NamespacedHostname, std::shared_ptr<EndpointSet>> by_service;
};

struct PolicyIndex {
  std::map<std::string, std::shared_ptr<const Authorization>, std::less<>> by_key;
  // Namespace -> NAMESPACE-scoped policies by key; "" holds GLOBAL ones.
  std::map<std::string, std::map<std::string, std::shared_ptr<const Authorization>>, std::less<>> by_namespace;
};

class StateSnapshot {
 public:
  StateSnapshot();  // empty
  StateSnapshot(uint64_t generation, std::shared_ptr<const WorkloadIndex> workloads,
                std::shared_ptr<const ServiceIndex> services, std::shared_ptr<const EndpointIndex> endpoints,
                std::shared_ptr<const PolicyIndex> policies);

  uint64_t generation() const { return generation_; }

  const Workload* workload_by_uid(std::string_view uid) const;
  std::shared_ptr<const Workload> workload_shared(std::string_view uid) const;
  const Workload* workload_by_address(const NetworkAddress& addr) const;
  const Service* service_by_vip(const NetworkAddress& vip) const;
  const Service* service_by_host(const NamespacedHostname& key) const;
  // Empty when the service has no endpoints.
  const EndpointSet& endpoints_of(const NamespacedHostname& key) const;
  const Authorization* policy(std::string_view key) const;

  // Policies applying to a destination, in evaluation order: its namespace's,
  // then global ones, then those the workload names (null when not known yet).
  std::vector<const Authorization*> policies_for(const Workload& dst) const;

  const WorkloadIndex& workloads() const { return *workloads_; }
  const ServiceIndex& services() const { return *services_; }
  const EndpointIndex& endpoints() const { return *endpoints_; }
  const PolicyIndex& policies() const { return *policies_; }

 private:
  uint64_t generation_ = 0;
  std::shared_ptr<const WorkloadIndex> workloads_;
  std::shared_ptr<const ServiceIndex> services_;
  std::shared_ptr<const EndpointIndex> endpoints_;
  std::shared_ptr<const PolicyIndex> policies_;
};

}  // namespace zt::core::mesh
