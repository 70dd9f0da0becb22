// The mesh the fake istiod serves: a file in the local-config YAML format
// (core/mesh/local_config.h) turned into delta xDS resources by the encoder
// (core/mesh/proto_encode.h), each with a version that is a hash of its
// bytes, so an unchanged resource keeps its version across edits and
// restarts.
//
//   MeshFile mesh("/tmp/t/mesh.yaml");
//   auto changed = mesh.reload();           // Result<bool>: an error keeps the old state
//   auto state = mesh.current();            // shared, immutable
//   for (const auto& [name, r] : state->of(core::mesh::address_type_url)) ...
//
// Thread-safe: the watcher reloads while streams read current().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "io/result.h"

namespace zt::e2e::fake_istiod {

struct Resource {
  std::string version;
  std::string bytes;  // the Any's value
  // Other names a client may subscribe it by (on demand): "network/ip" of
  // a workload's addresses and a service's VIPs, as istiod indexes them.
  std::vector<std::string> aliases;
  bool operator==(const Resource&) const = default;
};

// Resources of one type by name.
using ResourceMap = std::map<std::string, Resource>;

struct MeshState {
  uint64_t revision = 0;  // 1 for the first good file, +1 per change
  std::map<std::string, ResourceMap, std::less<>> by_type;

  // Empty for a type with no resources (never absent).
  const ResourceMap& of(std::string_view type_url) const;
};

class MeshFile {
 public:
  explicit MeshFile(std::string path);

  // Reads the file. True when what is served changed; an error (unreadable,
  // not YAML, a value with no xDS form) leaves the served state as it was.
  // The same broken content is reported once, not on every poll.
  Result<bool> reload();
  std::shared_ptr<const MeshState> current() const;
  // Serves `bytes` as resource `name` of `type_url` besides the file's, from
  // now on and across reloads: how a test makes istiod send what the file
  // format cannot express (a resource the client must NACK).
  void add_raw(const std::string& type_url, const std::string& name, std::string bytes);
  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  // The content last looked at (good or not): polling compares content,
  // since an edit within the file system's mtime granularity keeps the mtime.
  std::string last_seen_;
  bool seen_any_ = false;
  mutable std::mutex mu_;
  std::shared_ptr<const MeshState> current_;
  std::map<std::string, ResourceMap, std::less<>> raw_;  // added by add_raw
};

}  // namespace zt::e2e::fake_istiod
