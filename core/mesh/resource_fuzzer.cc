// libFuzzer target: random bytes decoded as xDS resources and applied to a
// store, then everything that reads the state runs over the result. Invalid
// input must come back as a rejection, never a crash, assert or leak.
//
// Input layout: byte 0 picks the kind (even: Address, odd: Authorization),
// byte 1 a name suffix; the rest is the protobuf encoding. The store lives
// across inputs so updates and removals meet earlier state.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/mesh/config_dump.h"
#include "core/mesh/rbac.h"
#include "core/mesh/routing.h"
#include "core/mesh/store.h"

namespace {

zt::core::mesh::MeshStore& store() {
  static zt::core::mesh::MeshStore s;
  return s;
}

void exercise(const zt::core::mesh::StateSnapshot& snap, zt::Rng& rng) {
  (void)zt::core::mesh::config_dump_json(snap);
  size_t budget = 8;  // bound the work per input
  for (const auto& [uid, w] : snap.workloads().by_uid) {
    if (budget-- == 0) break;
    auto policies = snap.policies_for(*w);
    zt::core::mesh::Connection conn{{zt::IpAddr::v4(10, 0, 0, 1), 40000}, {}, w->identity(), w->network};
    if (!w->ips.empty()) conn.dst = {w->ips.front(), 80};
    (void)zt::core::mesh::authorize(policies, conn);
    size_t vips = 8;
    for (const auto& [vip, key] : snap.services().by_vip) {
      if (vips-- == 0) break;
      (void)zt::core::mesh::route_outbound(snap, *w, {vip.ip, 80}, rng);
    }
    if (!w->ips.empty()) (void)zt::core::mesh::route_outbound(snap, *w, {w->ips.front(), 8080}, rng);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string name = "ns/r" + std::to_string(data[1] % 8);
  std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);
  zt::core::mesh::MeshStore& s = store();
  if (data[0] % 4 == 3) {
    s.remove_address(name);  // occasionally remove something by name
  } else if (data[0] % 2 == 0) {
    (void)s.apply_address_bytes(bytes);
  } else {
    (void)s.apply_authorization_bytes(name, bytes);
  }
  auto snap = s.publish();
  if (snap->workloads().by_uid.size() + snap->services().by_host.size() + snap->policies().by_key.size() > 64)
    s.clear();  // keep each run small
  zt::Rng rng(size);
  exercise(*s.publish(), rng);
  return 0;
}
