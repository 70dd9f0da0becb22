// The local config file (LOCAL_XDS_PATH): upstream ztunnel's YAML schema
// (examples/localhost.yaml) with top-level `workloads`, `policies` and
// `services`. Core gets the file's text; reading the file is the app's job.
// Errors name the source and the line: "local.yaml:12:5: unknown field 'x'".
//
//   auto config = parse_local_config(text, "/etc/ztunnel/local.yaml");
//   if (!config) return config.error();
//   load_local_config(store, *config);   // replaces everything in the store
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/mesh/model.h"
#include "core/mesh/rbac.h"
#include "core/mesh/store.h"
#include "io/result.h"

namespace zt::core::mesh {

struct LocalConfig {
  std::vector<Workload> workloads;  // each with its `services` port maps
  std::vector<Service> services;
  std::vector<Authorization> policies;  // keyed by Authorization::key()
};

Result<LocalConfig> parse_local_config(std::string_view yaml_text, std::string_view source_name);

// Replaces the store's whole state with the file's, as upstream does.
void load_local_config(MeshStore& store, const LocalConfig& config);

}  // namespace zt::core::mesh
