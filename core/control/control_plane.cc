#include "core/control/control_plane.h"

#include <algorithm>

#include "io/assert.h"

namespace zt::core::control {

std::string_view to_string(CertificateStatus::State s) {
  switch (s) {
    case CertificateStatus::State::pending: return "pending";
    case CertificateStatus::State::available: return "available";
    case CertificateStatus::State::failed: return "failed";
  }
  return "pending";
}

Task<Result<tls::Credentials>> FakeCaSource::fetch(const tls::Identity& identity) {
  auto issued = ca_.issue(identity, ttl_, env_.clock.wall_now());
  if (!issued) co_return issued.error();
  co_return tls::Credentials{std::move(issued->chain), std::move(issued->key)};
}

ControlPlane::ControlPlane(Env& env, MeshSource& mesh, CertificateSource& certs, Readiness& readiness,
                           ControlPlaneConfig cfg, ControlPlaneOutputs out)
    : env_(env),
      mesh_(mesh),
      source_certs_(certs),
      cfg_(std::move(cfg)),
      out_(std::move(out)),
      rng_(env.rng.stream("control-plane")),
      state_block_(readiness.block("mesh state")),
      certs_block_(readiness.block("workload certificates")) {}

ControlPlane::~ControlPlane() {
  if (retry_timer_ != kNoTimer) env_.loop.cancel(retry_timer_);
}

void ControlPlane::start() {
  mesh_.start([this](std::shared_ptr<const mesh::StateSnapshot> s) { publish(std::move(s)); });
}

void ControlPlane::stop() {
  stopped_ = true;
  mesh_.stop();
}

void ControlPlane::publish(std::shared_ptr<const mesh::StateSnapshot> snapshot) {
  ZT_ASSERT(snapshot);
  state_ = std::move(snapshot);
  if (out_.on_state) out_.on_state(state_);
  state_block_.release();
  ZT_LOG(env_.log, debug, "control", "mesh state published",
         {"workloads", state_->workloads().by_uid.size()});
  std::set<std::string> wanted = local_identities(*state_);
  // Identities the data path asked for stay while some workload has them.
  std::set<std::string> all_identities;
  for (const auto& [uid, w] : state_->workloads().by_uid) all_identities.insert(w->identity().to_string());
  std::erase_if(requested_, [&](const std::string& id) { return !all_identities.contains(id); });
  wanted.insert(requested_.begin(), requested_.end());
  want(wanted);
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
  if (certs_.contains(identity) || !state_) return;
  requested_.insert(identity);
  std::set<std::string> wanted;
  for (const auto& [id, st] : certs_) wanted.insert(id);
  wanted.insert(identity);
  want(wanted);
}

void ControlPlane::want(const std::set<std::string>& identities) {
  for (auto it = certs_.begin(); it != certs_.end();) {
    if (identities.contains(it->first)) {
      ++it;
      continue;
    }
    // Its last workload is gone: forget it (a fetch in flight is dropped
    // when it lands).
    ZT_LOG(env_.log, debug, "identity", "certificate forgotten", {"identity", it->first});
    if (out_.on_forget) out_.on_forget(it->first);
    backoff_.erase(it->first);
    it = certs_.erase(it);
  }
  for (const std::string& id : identities) certs_.try_emplace(id);
  pump();
}

void ControlPlane::pump() {
  const MonoTime now = env_.clock.now();
  std::optional<MonoTime> next_retry;
  bool all_tried = true;
  for (auto& [id, st] : certs_) {
    if (st.state == CertificateStatus::State::available || in_flight_.contains(id)) continue;
    if (st.state == CertificateStatus::State::pending) all_tried = false;
    if (st.state == CertificateStatus::State::failed && st.next_attempt > now) {
      next_retry = next_retry ? std::min(*next_retry, st.next_attempt) : st.next_attempt;
      continue;
    }
    if (in_flight_.size() >= kFetchesInFlightMax) continue;
    in_flight_.insert(id);
    scope_.spawn(fetch(id));
  }
  // Ready once each local identity was tried: a certificate that cannot be
  // had is logged and retried, and must not keep the node out forever.
  if (all_tried && state_ && in_flight_.empty()) certs_block_.release();
  if (next_retry && retry_timer_ == kNoTimer && !stopped_) {
    retry_timer_ = env_.loop.run_after(*next_retry - now, [this] {
      retry_timer_ = kNoTimer;
      pump();
    });
  }
}

Task<void> ControlPlane::fetch(std::string identity) {
  Result<tls::Credentials> got = Error(Errc::invalid_argument, "not a SPIFFE identity: " + identity);
  // (co_await inside ?: miscompiles with GCC 12: kept to a plain statement.)
  if (auto id = tls::Identity::parse(identity)) got = co_await source_certs_.fetch(*id);
  in_flight_.erase(identity);
  auto it = certs_.find(identity);
  if (it == certs_.end()) co_return pump();  // forgotten meanwhile
  CertificateStatus& st = it->second;
  if (!got) {
    Duration& b = backoff_[identity];
    b = b == Duration(0) ? kRetryFirst : std::min(kRetryMax, b * 2);
    const double jitter = 0.8 + 0.4 * rng_.unit();
    st.last_error = got.error().message();
    st.next_attempt = env_.clock.now() + std::chrono::duration_cast<Duration>(b * jitter);
    // A certificate still held keeps serving (st.credentials stays) while
    // the next one is retried.
    st.state = CertificateStatus::State::failed;
    ZT_LOG(env_.log, warn, "identity", "certificate fetch failed", {"identity", identity},
           {"error", st.last_error}, {"retry_in", st.next_attempt - env_.clock.now()});
    co_return pump();
  }
  backoff_.erase(identity);
  st.credentials = std::make_shared<const tls::Credentials>(std::move(*got));
  st.state = CertificateStatus::State::available;
  st.last_error.clear();
  ZT_LOG(env_.log, debug, "identity", "certificate available", {"identity", identity});
  if (out_.on_certificate) out_.on_certificate(identity, st.credentials);
  pump();
}

}  // namespace zt::core::control
