// The inverse of validate.h: our mesh model back into the istio protos, as
// istiod would send them. A fake control plane serves a local config file as
// delta xDS with it, and tests build xDS resources from model values.
//
//   auto resources = encode_local_config(*parse_local_config(text, "mesh.yaml"));
//   if (!resources) return resources.error();        // a value with no xDS form
//   store.apply_address_delta(resources->addresses, {});
//   store.apply_authorization_delta(resources->authorizations, {});
//
// The promise: when encoding succeeds, validating the result gives back the
// very value encoded (validate_workload(encode_address(w)->workload()) == w).
// Values the wire cannot carry are refused rather than altered: a workload
// type istio has no enum for, an empty trust domain, service account or
// cluster id (an empty field reads back as the default), an application
// tunnel port of 0 (reads back as unset), a service key whose namespace holds
// '/' ("ns/host" would split elsewhere), and what validate.h itself rejects
// (no uid, no hostname, no policy name, an empty waypoint host name, a CIDR
// prefix too long for its family, a value on a presence match).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/mesh/local_config.h"
#include "core/mesh/model.h"
#include "core/mesh/rbac.h"
#include "core/mesh/store.h"
#include "io/result.h"
#include "xds/proto/authorization.pb.h"
#include "xds/proto/workload.pb.h"

namespace google::protobuf {
class MessageLite;
}

namespace zt::core::mesh {

// The delta xDS type URLs of the two resource kinds ztunnel subscribes to.
inline constexpr std::string_view address_type_url = "type.googleapis.com/istio.workload.Address";
inline constexpr std::string_view authorization_type_url = "type.googleapis.com/istio.security.Authorization";

Result<istio::workload::Address> encode_address(const Workload& workload);
Result<istio::workload::Address> encode_address(const Service& service);
Result<istio::security::Authorization> encode_authorization(const Authorization& policy);

// The xDS resource names istiod uses, the keys MeshStore removes by: a
// workload's uid, a service's "namespace/hostname", a policy's
// "namespace/name".
std::string resource_name(const Workload& workload);
std::string resource_name(const Service& service);
std::string resource_name(const Authorization& policy);

// Protobuf's wire form is not unique (map order); this one is, so equal
// messages give equal bytes and a hash of them can be a resource version.
std::string serialize_deterministic(const google::protobuf::MessageLite& message);

// A whole local config as named delta xDS resources (each the bytes an Any
// would carry, serialized deterministically), in the file's order: workloads then services in
// `addresses`, policies in `authorizations`. Applied in this order to an
// empty MeshStore they give the state load_local_config gives.
struct XdsResources {
  std::vector<NamedResource> addresses;
  std::vector<NamedResource> authorizations;
};
Result<XdsResources> encode_local_config(const LocalConfig& config);

}  // namespace zt::core::mesh
