#include "core/control/certificate_manager.h"

#include <algorithm>
#include <vector>

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

CertificateManager::CertificateManager(Env& env, CertificateSource& source, CertificateManagerConfig config,
                                       CertificateOutputs out)
    : env_(env), source_(source), cfg_(config), out_(std::move(out)), rng_(env.rng.stream("certificates")) {
  ZT_ASSERT(cfg_.fetches_max > 0 && cfg_.retry_first > Duration(0));
}

CertificateManager::~CertificateManager() {
  if (timer_ != kNoTimer) env_.loop.cancel(timer_);
}

void CertificateManager::stop() {
  stopped_ = true;
  if (timer_ != kNoTimer) env_.loop.cancel(timer_);
  timer_ = kNoTimer;
  scope_.clear();
  in_flight_.clear();
}

bool CertificateManager::all_tried() const {
  return std::all_of(certs_.begin(), certs_.end(), [](const auto& kv) {
    return kv.second.fetches > 0 && (kv.second.state != CertificateStatus::State::pending || kv.second.credentials);
  });
}

void CertificateManager::want(const std::set<std::string>& identities,
                              const std::function<bool(const std::string&)>& keep_requested) {
  for (auto it = certs_.begin(); it != certs_.end();) {
    const bool keep = identities.contains(it->first) || (it->second.requested && keep_requested(it->first));
    if (keep) {
      ++it;
      continue;
    }
    // Its last workload is gone: forget it (a fetch in flight is dropped
    // when it lands).
    ZT_LOG(env_.log, debug, "identity", "certificate forgotten", {"identity", it->first});
    if (out_.on_forget && it->second.credentials) out_.on_forget(it->first);
    backoff_.erase(it->first);
    it = certs_.erase(it);
  }
  for (const std::string& id : identities) certs_.try_emplace(id);
  pump();
}

void CertificateManager::request(const std::string& identity) {
  auto [it, added] = certs_.try_emplace(identity);
  it->second.requested = true;
  if (added) pump();
}

// A certificate outside its validity on the wall clock (expired, or not yet
// valid after the clock went back) is never presented: it is withdrawn and
// fetched again, first.
void CertificateManager::withdraw_expired() {
  const WallTime wall = env_.clock.wall_now();
  for (auto& [id, st] : certs_) {
    if (!st.credentials || st.credentials->chain.front().valid_at(wall)) continue;
    ZT_LOG(env_.log, warn, "identity", "certificate outside its validity; withdrawn", {"identity", id},
           {"expired", wall > st.credentials->chain.front().not_after()});
    st.credentials.reset();
    st.state = CertificateStatus::State::pending;
    st.requested = true;  // most urgent: connections need it now
    if (out_.on_forget) out_.on_forget(id);
  }
}

bool CertificateManager::is_due(const std::string& id, const CertificateStatus& st) const {
  if (in_flight_.contains(id)) return false;
  if (st.state == CertificateStatus::State::failed && st.next_attempt > env_.clock.now()) return false;
  if (st.state == CertificateStatus::State::available && env_.clock.wall_now() < st.refresh_at) return false;
  return true;
}

void CertificateManager::pump() {
  if (stopped_) return;
  // A source that answers at once (the fake CA) finishes a fetch inside
  // spawn(), and the fetch pumps again: that pump is folded into this one,
  // which looks again before each spawn.
  if (pumping_) {
    pump_again_ = true;
    return;
  }
  pumping_ = true;
  do {
    pump_again_ = false;
    withdraw_expired();
    std::vector<std::pair<Priority, std::string>> due;
    for (const auto& [id, st] : certs_) {
      if (!is_due(id, st)) continue;
      const Priority p = st.credentials ? Priority::renewal : st.requested ? Priority::requested : Priority::prefetch;
      due.emplace_back(p, id);
    }
    // Traffic-driven before prefetch before renewal; by name within a class
    // (ordered: the same schedule every run).
    std::stable_sort(due.begin(), due.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [priority, id] : due) {
      if (in_flight_.size() >= cfg_.fetches_max) break;
      auto it = certs_.find(id);
      if (it == certs_.end() || !is_due(id, it->second)) continue;  // fetched (or forgotten) meanwhile
      in_flight_.insert(id);
      scope_.spawn(fetch(id));
    }
  } while (pump_again_ && !stopped_);
  pumping_ = false;
  schedule();
}

// One timer for the earliest of: a retry, a renewal (converted from the
// wall clock), and a tick that re-reads the wall clock at least every
// tick_max.
void CertificateManager::schedule() {
  if (timer_ != kNoTimer) env_.loop.cancel(timer_);
  timer_ = kNoTimer;
  if (stopped_ || certs_.empty()) return;
  const MonoTime now = env_.clock.now();
  const WallTime wall = env_.clock.wall_now();
  Duration wait = cfg_.tick_max;
  for (const auto& [id, st] : certs_) {
    if (in_flight_.contains(id)) continue;
    if (st.state == CertificateStatus::State::failed) wait = std::min(wait, st.next_attempt - now);
    if (st.state == CertificateStatus::State::available) wait = std::min(wait, st.refresh_at - wall);
    // The moment a held certificate expires (its renewal may be failing,
    // with the next retry later): it is withdrawn then, never presented
    // after (found by the mesh swarm during CA outages).
    if (st.credentials) wait = std::min(wait, st.credentials->chain.front().not_after() - wall + std::chrono::milliseconds(1));
  }
  timer_ = env_.loop.run_after(std::max(wait, Duration(std::chrono::milliseconds(1))), [this] {
    timer_ = kNoTimer;
    pump();
  });
}

Duration CertificateManager::backoff(const std::string& identity) {
  Duration& b = backoff_[identity];
  b = b == Duration(0) ? cfg_.retry_first : std::min(cfg_.retry_max, b * 2);
  return std::chrono::duration_cast<Duration>(b * (0.8 + 0.4 * rng_.unit()));
}

Task<void> CertificateManager::fetch(std::string identity) {
  Result<tls::Credentials> got = Error(Errc::invalid_argument, "not a SPIFFE identity: " + identity);
  // (co_await inside ?: miscompiles with GCC 12: kept to a plain statement.)
  if (auto id = tls::Identity::parse(identity)) got = co_await source_.fetch(*id);
  in_flight_.erase(identity);
  auto it = certs_.find(identity);
  if (it == certs_.end()) co_return pump();  // forgotten meanwhile
  CertificateStatus& st = it->second;
  ++st.fetches;
  const WallTime wall = env_.clock.wall_now();
  if (got && (got->chain.empty() || !got->chain.front().valid_at(wall))) {
    got = Error(Errc::invalid_argument, "the certificate is not valid now (is a clock wrong?)");
  }
  if (!got) {
    ++st.failures;
    st.last_error = got.error().message();
    st.next_attempt = env_.clock.now() + backoff(identity);
    // A certificate still valid keeps serving while the next is retried.
    st.state = CertificateStatus::State::failed;
    ZT_LOG(env_.log, warn, "identity", "certificate fetch failed", {"identity", identity}, {"error", st.last_error},
           {"retry_in", st.next_attempt - env_.clock.now()}, {"still_serving", st.credentials != nullptr});
  } else {
    backoff_.erase(identity);
    st.credentials = std::make_shared<const tls::Credentials>(std::move(*got));
    st.state = CertificateStatus::State::available;
    st.last_error.clear();
    const tls::Certificate& leaf = st.credentials->chain.front();
    const Duration lifetime = leaf.not_after() - leaf.not_before();
    const auto jitter = std::chrono::duration_cast<Duration>(lifetime * (0.1 * rng_.unit()));
    st.refresh_at = leaf.not_before() + lifetime / 2 + jitter;
    ZT_LOG(env_.log, debug, "identity", "certificate available", {"identity", identity},
           {"expires_in", leaf.not_after() - wall}, {"renew_in", st.refresh_at - wall});
    if (out_.on_certificate) out_.on_certificate(identity, st.credentials);
  }
  if (out_.on_progress) out_.on_progress();
  pump();
}

}  // namespace zt::core::control
