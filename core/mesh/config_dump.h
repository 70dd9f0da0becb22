// The state part of the admin /config_dump: workloads, services (with their
// endpoints) and policies as JSON, in a shape close to upstream's (camelCase
// fields, "network/ip" addresses, serde-style enums). Sorted by key, so one
// state always dumps to the same bytes.
//
//   std::string body = config_dump_json(*store.publish());
//   // {"workloads":[{"uid":"...","workloadIps":["10.0.0.1"],...}],"services":[...],"policies":[...]}
#pragma once

#include <string>

#include "core/mesh/snapshot.h"

namespace zt::core::mesh {

std::string config_dump_json(const StateSnapshot& state, int indent = 2);

}  // namespace zt::core::mesh
