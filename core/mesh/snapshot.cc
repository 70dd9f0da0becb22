#include "core/mesh/snapshot.h"

namespace zt::core::mesh {

StateSnapshot::StateSnapshot()
    : workloads_(std::make_shared<WorkloadIndex>()),
      services_(std::make_shared<ServiceIndex>()),
      endpoints_(std::make_shared<EndpointIndex>()),
      policies_(std::make_shared<PolicyIndex>()) {}

StateSnapshot::StateSnapshot(uint64_t generation, std::shared_ptr<const WorkloadIndex> workloads,
                             std::shared_ptr<const ServiceIndex> services,
                             std::shared_ptr<const EndpointIndex> endpoints,
                             std::shared_ptr<const PolicyIndex> policies)
    : generation_(generation),
      workloads_(std::move(workloads)),
      services_(std::move(services)),
      endpoints_(std::move(endpoints)),
      policies_(std::move(policies)) {
  ZT_ASSERT(workloads_ && services_ && endpoints_ && policies_);
}

const Workload* StateSnapshot::workload_by_uid(std::string_view uid) const {
  auto it = workloads_->by_uid.find(uid);
  return it == workloads_->by_uid.end() ? nullptr : it->second.get();
}

std::shared_ptr<const Workload> StateSnapshot::workload_shared(std::string_view uid) const {
  auto it = workloads_->by_uid.find(uid);
  return it == workloads_->by_uid.end() ? nullptr : it->second;
}

const Workload* StateSnapshot::workload_by_address(const NetworkAddress& addr) const {
  auto it = workloads_->by_address.find(addr);
  if (it == workloads_->by_address.end() || it->second.empty()) return nullptr;
  return it->second.front().get();
}

const Service* StateSnapshot::service_by_vip(const NetworkAddress& vip) const {
  auto it = services_->by_vip.find(vip);
  return it == services_->by_vip.end() ? nullptr : service_by_host(it->second);
}

const Service* StateSnapshot::service_by_host(const NamespacedHostname& key) const {
  auto it = services_->by_host.find(key);
  return it == services_->by_host.end() ? nullptr : it->second.get();
}

const EndpointSet& StateSnapshot::endpoints_of(const NamespacedHostname& key) const {
  static const EndpointSet empty;
  auto it = endpoints_->by_service.find(key);
  return it == endpoints_->by_service.end() ? empty : *it->second;
}

const Authorization* StateSnapshot::policy(std::string_view key) const {
  auto it = policies_->by_key.find(key);
  return it == policies_->by_key.end() ? nullptr : it->second.get();
}

std::vector<const Authorization*> StateSnapshot::policies_for(const Workload& dst) const {
  std::vector<const Authorization*> out;
  auto add_namespace = [&](std::string_view ns) {
    auto it = policies_->by_namespace.find(ns);
    if (it == policies_->by_namespace.end()) return;
    for (const auto& entry : it->second) out.push_back(entry.second.get());
  };
  add_namespace(dst.ns);
  if (!dst.ns.empty()) add_namespace("");
  for (const std::string& key : dst.authorization_policies) out.push_back(policy(key));
  return out;
}

}  // namespace zt::core::mesh
