// The control loop's logic, runtime-free so the simulator drives it: it
// takes the mesh state from a MeshSource and publishes it, works out which
// workload identities this node serves, keeps a certificate for each from
// a CertificateSource, and tells readiness when the first state and those
// certificates are in.
//
//   ControlPlane cp(env, source, certs, readiness, {.node_name = "node-a"}, {
//       .on_state = [&](auto snapshot) { shared.set(snapshot); workers_recheck(); },
//       .on_certificate = [&](const std::string& id, auto creds) { store.put(id, creds); },
//       .on_forget = [&](const std::string& id) { store.erase(id); }});
//   cp.start();
//
// Which identities: those of the workloads on this node (node == node_name;
// every workload when no node name is set, local mode's single node, or
// with every_identity), plus any the data path asked for (request()) while
// a workload still has it.
// Fetches run at most kFetchesInFlightMax at a time; a failure is retried
// with backoff (1 s doubling to 150 s, +-20%) and a certificate already
// held is never dropped while retrying. Rotation before expiry is the
// certificate manager's next step (not here yet).
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
#include "core/control/mesh_source.h"
#include "core/control/readiness.h"
#include "io/env.h"
#include "io/task.h"

namespace zt::core::control {

struct ControlPlaneConfig {
  std::optional<std::string> node_name;  // unset: every workload is this node's
  // Keep a certificate for every workload identity in the state, not only
  // this node's: local mode with the built-in CA, where issuing costs
  // nothing and any workload of the file may send through this node.
  bool every_identity = false;
};

struct ControlPlaneOutputs {
  std::function<void(std::shared_ptr<const mesh::StateSnapshot>)> on_state;
  std::function<void(const std::string& identity, std::shared_ptr<const tls::Credentials>)> on_certificate;
  std::function<void(const std::string& identity)> on_forget;
};

// One identity's certificate, as /config_dump shows it.
struct CertificateStatus {
  // pending: not tried yet; failed: the last attempt failed (a certificate
  // from before, if any, is still `credentials` and still served).
  enum class State : uint8_t { pending, available, failed };
  State state = State::pending;
  std::shared_ptr<const tls::Credentials> credentials;  // the one in use, if any
  std::string last_error;
  MonoTime next_attempt{};  // when failed: the retry
};
std::string_view to_string(CertificateStatus::State s);

class ControlPlane {
 public:
  static constexpr size_t kFetchesInFlightMax = 8;
  static constexpr Duration kRetryFirst = std::chrono::seconds(1);
  static constexpr Duration kRetryMax = std::chrono::seconds(150);

  ControlPlane(Env& env, MeshSource& mesh, CertificateSource& certs, Readiness& readiness, ControlPlaneConfig cfg,
               ControlPlaneOutputs out);
  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  void start();
  void stop();  // drain: the mesh source stops; certificates held stay
  // The data path wants a certificate it did not find (traffic-driven).
  void request(const std::string& identity);

  std::shared_ptr<const mesh::StateSnapshot> state() const { return state_; }
  const std::map<std::string, CertificateStatus>& certificates() const { return certs_; }
  std::vector<tls::Certificate> roots() const { return source_certs_.roots(); }

 private:
  void publish(std::shared_ptr<const mesh::StateSnapshot> snapshot);
  std::set<std::string> local_identities(const mesh::StateSnapshot& s) const;
  void want(const std::set<std::string>& identities);
  void pump();
  Task<void> fetch(std::string identity);

  Env& env_;
  MeshSource& mesh_;
  CertificateSource& source_certs_;
  ControlPlaneConfig cfg_;
  ControlPlaneOutputs out_;
  Rng rng_;
  std::shared_ptr<const mesh::StateSnapshot> state_;
  std::map<std::string, CertificateStatus> certs_;  // wanted identities
  std::set<std::string> requested_;                 // asked for by the data path
  std::map<std::string, Duration> backoff_;         // per identity, after a failure
  std::set<std::string> in_flight_;
  TimerId retry_timer_ = kNoTimer;
  bool stopped_ = false;
  ReadyBlock state_block_, certs_block_;
  Scope scope_;  // last: fetches go before what they use
};

}  // namespace zt::core::control
