#include "core/control/control_plane.h"

#include <algorithm>

#include "io/assert.h"

namespace zt::core::control {

Task<Result<tls::Credentials>> FakeCaSource::fetch(const tls::Identity& identity) {
  auto issued = ca_.issue(identity, ttl_, env_.clock.wall_now());
  if (!issued) co_return issued.error();
  co_return tls::Credentials{std::move(issued->chain), std::move(issued->key)};
}

ControlPlane::ControlPlane(Env& env, MeshSource& mesh, CertificateSource& certs, Readiness& readiness,
                           ControlPlaneConfig cfg, ControlPlaneOutputs out, CertificateManagerConfig certificates)
    : env_(env),
      mesh_(mesh),
      source_certs_(certs),
      cfg_(std::move(cfg)),
      out_(std::move(out)),
      state_block_(readiness.block("mesh state")),
      certs_block_(readiness.block("workload certificates")),
      manager_(env, certs, certificates,
               {.on_certificate = out_.on_certificate, .on_forget = out_.on_forget, .on_progress = [this] { check_ready(); }}) {}

ControlPlane::~ControlPlane() = default;

void ControlPlane::start() {
  mesh_.start([this](std::shared_ptr<const mesh::StateSnapshot> s) { publish(std::move(s)); });
}

void ControlPlane::stop() { mesh_.stop(); }

void ControlPlane::publish(std::shared_ptr<const mesh::StateSnapshot> snapshot) {
  ZT_ASSERT(snapshot);
  state_ = std::move(snapshot);
  if (out_.on_state) out_.on_state(state_);
  state_block_.release();
  ZT_LOG(env_.log, debug, "control", "mesh state published", {"workloads", state_->workloads().by_uid.size()});
  identities_.clear();
  for (const auto& [uid, w] : state_->workloads().by_uid) identities_.insert(w->identity().to_string());
  // Identities the data path asked for stay while some workload has them.
  manager_.want(local_identities(*state_), [this](const std::string& id) { return identities_.contains(id); });
  check_ready();
}

std::set<std::string> ControlPlane::local_identities(const mesh::StateSnapshot& s) const {
  std::set<std::string> out;
  for (const auto& [uid, w] : s.workloads().by_uid) {
    if (cfg_.node_name && !cfg_.every_identity && w->node != *cfg_.node_name) continue;
    out.insert(w->identity().to_string());
  }
  return out;
}

void ControlPlane::request(const std::string& identity) {
  if (!state_) return;
  manager_.request(identity);
}

// Ready once each local identity was tried: a certificate that cannot be had
// is logged and retried, and must not keep the node out forever.
void ControlPlane::check_ready() {
  if (state_ && manager_.all_tried()) certs_block_.release();
}

}  // namespace zt::core::control
