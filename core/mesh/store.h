// MeshStore: the one writer of mesh state. Applies delta xDS updates (upsert
// by name, remove by name), validates each resource into our types, rejects
// the invalid ones with a reason while keeping the rest, and publishes
// immutable snapshots for readers.
//
//   MeshStore store;
//   auto rejected = store.apply_address_delta(resources, removed_names);
//   std::shared_ptr<const StateSnapshot> snap = store.publish();  // hand to workers
//
// Single-threaded: the control thread owns the store. Swapping the published
// pointer across threads (std::atomic<std::shared_ptr>) is the app's job.
#pragma once

#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/mesh/snapshot.h"
#include "io/result.h"
#include "xds/proto/authorization.pb.h"
#include "xds/proto/workload.pb.h"

namespace zt::core::mesh {

// One resource of a delta response: its name and the Any's value bytes.
struct NamedResource {
  std::string name;
  std::string bytes;
};

// A resource we refused, for the NACK's error_detail.
struct Rejection {
  std::string name;
  std::string reason;
  bool operator==(const Rejection&) const = default;
};

class MeshStore {
 public:
  MeshStore();

  // Address resources: a workload (name = uid) or a service ("ns/hostname").
  Result<void> apply_address(const istio::workload::Address& resource);
  Result<void> apply_address_bytes(std::string_view bytes);
  // Removes the workload with this uid, else the service with this key.
  bool remove_address(std::string_view name);
  std::vector<Rejection> apply_address_delta(std::span<const NamedResource> resources,
                                             std::span<const std::string> removed);

  // Authorization resources, keyed by their xDS name ("ns/name").
  Result<void> apply_authorization(std::string_view name, const istio::security::Authorization& resource);
  Result<void> apply_authorization_bytes(std::string_view name, std::string_view bytes);
  bool remove_authorization(std::string_view name);
  std::vector<Rejection> apply_authorization_delta(std::span<const NamedResource> resources,
                                                   std::span<const std::string> removed);

  // Already validated values (local config, tests, benchmarks).
  void upsert_workload(Workload workload);
  void upsert_service(Service service);
  void upsert_policy(std::string key, Authorization policy);
  bool remove_workload(std::string_view uid);
  bool remove_service(const NamespacedHostname& key);
  void clear();

  // A snapshot of everything applied so far. Cheap when nothing changed.
  std::shared_ptr<const StateSnapshot> publish();

 private:
  // Copy-on-write holder: the first write after a publish copies the index.
  template <class T>
  struct Cow {
    std::shared_ptr<T> value = std::make_shared<T>();
    bool shared = false;
    const T& read() const { return *value; }
    T& write() {
      if (shared) {
        value = std::make_shared<T>(*value);
        shared = false;
      }
      return *value;
    }
    std::shared_ptr<const T> share() {
      shared = true;
      return value;
    }
  };

  void index_workload_addresses(WorkloadIndex& index, const std::shared_ptr<const Workload>& w);
  void unindex_workload_addresses(WorkloadIndex& index, const Workload& w);
  EndpointSet& endpoint_set(const NamespacedHostname& service);
  void drop_endpoint(const NamespacedHostname& service, const std::string& uid);

  Cow<WorkloadIndex> workloads_;
  Cow<ServiceIndex> services_;
  Cow<EndpointIndex> endpoints_;
  Cow<PolicyIndex> policies_;
  // Endpoint sets already copied since the last publish (safe to mutate).
  std::set<NamespacedHostname> endpoint_sets_owned_;
  uint64_t generation_ = 0;
  bool dirty_ = true;
  std::shared_ptr<const StateSnapshot> published_;
};

}  // namespace zt::core::mesh
