// The node's workload certificates, kept fresh: one for each identity the
// control plane wants (prefetch for the node's workloads) and each the data
// path asked for (traffic-driven), from a CertificateSource (the fake CA of
// local mode, istiod's CA), and renewed before they expire.
//
//   CertificateManager m(env, source, {}, {.on_certificate = put, .on_forget = drop});
//   m.want({"spiffe://cluster.local/ns/a/sa/b"});
//   m.request("spiffe://cluster.local/ns/c/sa/d");   // a connection needs it
//
// Rules (docs/PROTOCOL.md, CA):
// - Refresh at half the lifetime, plus up to a tenth of it at random, so a
//   node's certificates do not all renew at once.
// - A failed fetch is retried with per-identity backoff: 1 s, doubling, to
//   150 s, +-20%. A certificate still valid is never dropped while its
//   renewal is retried.
// - At most `fetches_max` (8) fetches at once: traffic-driven first, then
//   prefetch, then renewals.
// - Validity is judged on the wall clock (which may jump either way), the
//   waits run on the monotonic one: a tick at least every `tick_max`
//   re-reads the wall clock, so a jump past half-life renews within a tick
//   and a certificate outside its validity (expired, or not yet valid after
//   the clock went back) is withdrawn (on_forget) and fetched again first:
//   it is never presented. A certificate that arrives outside its validity
//   counts as a failure (backoff), so a wrong clock cannot start a storm.
// - An identity no longer wanted is forgotten (on_forget).
//
// Single-threaded: the control loop.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/control/certificate_source.h"
#include "io/env.h"
#include "io/task.h"

namespace zt::core::control {

// One identity's certificate, as /config_dump shows it.
struct CertificateStatus {
  // pending: no certificate yet (not tried, or being fetched); available:
  // held and valid; failed: the last attempt failed (a certificate from
  // before, if any, is still `credentials`, valid, and still served).
  enum class State : uint8_t { pending, available, failed };
  State state = State::pending;
  std::shared_ptr<const tls::Credentials> credentials;  // the one in use, if any
  std::string last_error;
  WallTime refresh_at{};     // when held: the renewal is due (wall clock)
  MonoTime next_attempt{};   // when failed: the retry
  uint64_t fetches = 0, failures = 0;
  bool requested = false;    // the data path asked for it
};
std::string_view to_string(CertificateStatus::State s);

struct CertificateManagerConfig {
  size_t fetches_max = 8;
  Duration retry_first = std::chrono::seconds(1);
  Duration retry_max = std::chrono::seconds(150);
  Duration tick_max = std::chrono::seconds(60);
};

struct CertificateOutputs {
  std::function<void(const std::string& identity, std::shared_ptr<const tls::Credentials>)> on_certificate;
  std::function<void(const std::string& identity)> on_forget;
  std::function<void()> on_progress;  // after each fetch ends
};

class CertificateManager {
 public:
  CertificateManager(Env& env, CertificateSource& source, CertificateManagerConfig config, CertificateOutputs out);
  ~CertificateManager();
  CertificateManager(const CertificateManager&) = delete;
  CertificateManager& operator=(const CertificateManager&) = delete;

  // The identities to keep, besides those requested and still wanted by
  // `keep_requested` (an identity some workload still has).
  void want(const std::set<std::string>& identities, const std::function<bool(const std::string&)>& keep_requested);
  void request(const std::string& identity);
  void stop();

  const std::map<std::string, CertificateStatus>& certificates() const { return certs_; }
  // Every identity wanted now was tried at least once.
  bool all_tried() const;
  size_t in_flight() const { return in_flight_.size(); }

 private:
  enum class Priority : uint8_t { requested, prefetch, renewal };
  void pump();
  bool is_due(const std::string& id, const CertificateStatus& st) const;
  void schedule();
  void withdraw_expired();
  Task<void> fetch(std::string identity);
  Duration backoff(const std::string& identity);

  Env& env_;
  CertificateSource& source_;
  CertificateManagerConfig cfg_;
  CertificateOutputs out_;
  Rng rng_;
  std::map<std::string, CertificateStatus> certs_;
  std::map<std::string, Duration> backoff_;
  std::set<std::string> in_flight_;
  TimerId timer_ = kNoTimer;
  bool stopped_ = false;
  bool pumping_ = false, pump_again_ = false;
  Scope scope_;  // last: fetches go first
};

}  // namespace zt::core::control
