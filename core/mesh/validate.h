// Turns xDS protobuf resources into our validated types. Anything we cannot
// represent faithfully is rejected with a reason (it becomes part of a NACK);
// nothing here asserts on input.
//
//   Result<Workload> w = validate_workload(address.workload());
//   if (!w) rejections.push_back({name, w.error().detail});
//   Result<Authorization> p = validate_authorization(proto);
#pragma once

#include "core/mesh/model.h"
#include "core/mesh/rbac.h"
#include "io/result.h"
#include "xds/proto/authorization.pb.h"
#include "xds/proto/workload.pb.h"

namespace zt::core::mesh {

Result<Workload> validate_workload(const istio::workload::Workload& proto);
Result<Service> validate_service(const istio::workload::Service& proto);
Result<Authorization> validate_authorization(const istio::security::Authorization& proto);

// Shared with the local config parser.
Result<uint16_t> validate_port(uint64_t value, std::string_view what);

}  // namespace zt::core::mesh
