#include "core/mesh/store.h"

#include <algorithm>

#include "core/mesh/validate.h"

namespace zt::core::mesh {

MeshStore::MeshStore() = default;

namespace {

// Upstream's preference when several workloads claim one address: pods (not
// spoofable) before other kinds, in-mesh (HBONE) before plain TCP.
int address_rank(const Workload& w) {
  bool is_pod = w.uid.find("//Pod/") != std::string::npos;
  bool is_hbone = w.protocol == InboundProtocol::hbone;
  return (is_pod ? 2 : 0) + (is_hbone ? 1 : 0);
}

bool better_claim(const std::shared_ptr<const Workload>& a, const std::shared_ptr<const Workload>& b) {
  int ra = address_rank(*a), rb = address_rank(*b);
  return ra != rb ? ra > rb : a->uid < b->uid;
}

}  // namespace

void MeshStore::index_workload_addresses(WorkloadIndex& index, const std::shared_ptr<const Workload>& w) {
  // Host-network workloads share the node's IP: an address says nothing about them.
  if (w->network_mode == NetworkMode::host_network) return;
  for (const IpAddr& ip : w->ips) {
    auto& claims = index.by_address[NetworkAddress{w->network, ip}];
    claims.insert(std::upper_bound(claims.begin(), claims.end(), w, better_claim), w);
  }
}

void MeshStore::unindex_workload_addresses(WorkloadIndex& index, const Workload& w) {
  if (w.network_mode == NetworkMode::host_network) return;
  for (const IpAddr& ip : w.ips) {
    auto it = index.by_address.find(NetworkAddress{w.network, ip});
    if (it == index.by_address.end()) continue;
    std::erase_if(it->second, [&](const auto& claim) { return claim->uid == w.uid; });
    if (it->second.empty()) index.by_address.erase(it);
  }
}

EndpointSet& MeshStore::endpoint_set(const NamespacedHostname& service) {
  auto& slot = endpoints_.write().by_service[service];
  if (!slot || !endpoint_sets_owned_.contains(service)) {
    slot = slot ? std::make_shared<EndpointSet>(*slot) : std::make_shared<EndpointSet>();
    endpoint_sets_owned_.insert(service);
  }
  return *slot;
}

void MeshStore::drop_endpoint(const NamespacedHostname& service, const std::string& uid) {
  const auto& existing = endpoints_.read().by_service;
  auto it = existing.find(service);
  if (it == existing.end() || !it->second->contains(uid)) return;
  EndpointSet& set = endpoint_set(service);
  set.erase(uid);
  if (set.empty()) {
    endpoints_.write().by_service.erase(service);
    endpoint_sets_owned_.erase(service);
  }
}

void MeshStore::upsert_workload(Workload workload) {
  remove_workload(workload.uid);
  auto w = std::make_shared<const Workload>(std::move(workload));
  WorkloadIndex& index = workloads_.write();
  index.by_uid[w->uid] = w;
  index_workload_addresses(index, w);
  for (const auto& [service, ports] : w->services)
    endpoint_set(service)[w->uid] = ServiceEndpoint{w->uid, ports, w->status, w};
  dirty_ = true;
}

bool MeshStore::remove_workload(std::string_view uid) {
  auto it = workloads_.read().by_uid.find(uid);
  if (it == workloads_.read().by_uid.end()) return false;
  std::shared_ptr<const Workload> old = it->second;  // keep alive while unindexing
  WorkloadIndex& index = workloads_.write();
  index.by_uid.erase(old->uid);
  unindex_workload_addresses(index, *old);
  for (const auto& entry : old->services) drop_endpoint(entry.first, old->uid);
  dirty_ = true;
  return true;
}

void MeshStore::upsert_service(Service service) {
  NamespacedHostname key = service.key();
  remove_service(key);
  auto s = std::make_shared<const Service>(std::move(service));
  ServiceIndex& index = services_.write();
  index.by_host[key] = s;
  for (const NetworkAddress& vip : s->vips) index.by_vip[vip] = key;
  dirty_ = true;
}

bool MeshStore::remove_service(const NamespacedHostname& key) {
  auto it = services_.read().by_host.find(key);
  if (it == services_.read().by_host.end()) return false;
  std::shared_ptr<const Service> old = it->second;
  ServiceIndex& index = services_.write();
  index.by_host.erase(key);
  for (const NetworkAddress& vip : old->vips) {
    auto v = index.by_vip.find(vip);
    if (v != index.by_vip.end() && v->second == key) index.by_vip.erase(v);
  }
  dirty_ = true;
  return true;
}

void MeshStore::upsert_policy(std::string key, Authorization policy) {
  remove_authorization(key);
  PolicyIndex& index = policies_.write();
  auto shared = std::make_shared<const Authorization>(std::move(policy));
  if (shared->scope == RbacScope::global) index.by_namespace[""][key] = shared;
  else if (shared->scope == RbacScope::ns) index.by_namespace[shared->ns][key] = shared;
  index.by_key[key] = shared;
  dirty_ = true;
}

bool MeshStore::remove_authorization(std::string_view name) {
  auto it = policies_.read().by_key.find(name);
  if (it == policies_.read().by_key.end()) return false;
  std::string key(name);
  PolicyIndex& index = policies_.write();
  index.by_key.erase(key);
  // The scope may have changed between versions: look everywhere.
  for (auto ns = index.by_namespace.begin(); ns != index.by_namespace.end();) {
    ns->second.erase(key);
    ns = ns->second.empty() ? index.by_namespace.erase(ns) : std::next(ns);
  }
  dirty_ = true;
  return true;
}

void MeshStore::clear() {
  workloads_ = {};
  services_ = {};
  endpoints_ = {};
  policies_ = {};
  endpoint_sets_owned_.clear();
  dirty_ = true;
}

Result<void> MeshStore::apply_address(const istio::workload::Address& resource) {
  switch (resource.type_case()) {
    case istio::workload::Address::kWorkload: {
      auto w = validate_workload(resource.workload());
      if (!w) return w.error();
      upsert_workload(std::move(*w));
      return {};
    }
    case istio::workload::Address::kService: {
      auto s = validate_service(resource.service());
      if (!s) return s.error();
      upsert_service(std::move(*s));
      return {};
    }
    default:
      return Error(Errc::invalid_argument, "address is neither a workload nor a service");
  }
}

Result<void> MeshStore::apply_address_bytes(std::string_view bytes) {
  istio::workload::Address resource;
  if (!resource.ParseFromArray(bytes.data(), int(bytes.size())))
    return Error(Errc::invalid_argument, "cannot decode istio.workload.Address");
  return apply_address(resource);
}

bool MeshStore::remove_address(std::string_view name) {
  if (remove_workload(name)) return true;
  auto key = NamespacedHostname::parse(name);
  return key && remove_service(*key);
}

std::vector<Rejection> MeshStore::apply_address_delta(std::span<const NamedResource> resources,
                                                      std::span<const std::string> removed) {
  std::vector<Rejection> rejected;
  for (const NamedResource& r : resources)
    if (auto applied = apply_address_bytes(r.bytes); !applied) rejected.push_back({r.name, applied.error().detail});
  for (const std::string& name : removed) remove_address(name);
  return rejected;
}

Result<void> MeshStore::apply_authorization(std::string_view name, const istio::security::Authorization& resource) {
  auto policy = validate_authorization(resource);
  if (!policy) return policy.error();
  upsert_policy(std::string(name), std::move(*policy));
  return {};
}

Result<void> MeshStore::apply_authorization_bytes(std::string_view name, std::string_view bytes) {
  istio::security::Authorization resource;
  if (!resource.ParseFromArray(bytes.data(), int(bytes.size())))
    return Error(Errc::invalid_argument, "cannot decode istio.security.Authorization");
  return apply_authorization(name, resource);
}

std::vector<Rejection> MeshStore::apply_authorization_delta(std::span<const NamedResource> resources,
                                                            std::span<const std::string> removed) {
  std::vector<Rejection> rejected;
  for (const NamedResource& r : resources)
    if (auto applied = apply_authorization_bytes(r.name, r.bytes); !applied)
      rejected.push_back({r.name, applied.error().detail});
  for (const std::string& name : removed) remove_authorization(name);
  return rejected;
}

std::shared_ptr<const StateSnapshot> MeshStore::publish() {
  if (!dirty_ && published_) return published_;
  published_ = std::make_shared<const StateSnapshot>(++generation_, workloads_.share(), services_.share(),
                                                     endpoints_.share(), policies_.share());
  endpoint_sets_owned_.clear();
  dirty_ = false;
  return published_;
}

}  // namespace zt::core::mesh
