// The mesh source of local mode: the file at LOCAL_XDS_PATH (or the inline
// LOCAL_XDS), in upstream's local config format. The first load happens
// before anything starts, so a broken file stops the binary with a clear
// error; afterwards the file is checked each second and a changed, valid
// file replaces the state (a broken one is logged, counted in
// ztunnel_local_config_reloads_total{result="rejected"} and ignored).
//
//   LocalMeshSource source(env, cfg, metrics);
//   if (auto r = source.load(); !r) fail(r.error());   // exit 2
//   source.start(publish);                              // publishes the loaded state, then watches
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "app/config.h"
#include "core/control/mesh_source.h"
#include "core/mesh/store.h"
#include "core/metrics/registry.h"
#include "io/env.h"

namespace zt::app {

class LocalMeshSource final : public core::control::MeshSource {
 public:
  LocalMeshSource(Env& env, const Config& cfg, core::metrics::Registry& metrics);
  ~LocalMeshSource() override;

  // Reads and applies the file; the error names the file and line.
  Result<std::shared_ptr<const core::mesh::StateSnapshot>> load();
  void start(Publish publish) override;
  void stop() override;

 private:
  void check();

  Env& env_;
  const Config& cfg_;
  core::metrics::Registry& metrics_;
  core::mesh::MeshStore store_;
  std::shared_ptr<const core::mesh::StateSnapshot> loaded_;
  std::optional<std::pair<int64_t, int64_t>> version_;  // (mtime ns, size) of the file last read
  Publish publish_;
  TimerId timer_ = kNoTimer;
};

}  // namespace zt::app
