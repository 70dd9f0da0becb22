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
// a workload still has it. The certificate manager (certificate_manager.h)
// fetches, renews and retries them.
//
// Single-threaded: the control loop.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "core/control/certificate_manager.h"
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

class ControlPlane {
 public:
  ControlPlane(Env& env, MeshSource& mesh, CertificateSource& certs, Readiness& readiness, ControlPlaneConfig cfg,
               ControlPlaneOutputs out, CertificateManagerConfig certificates = {});
  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  void start();
  void stop();  // drain: the mesh source stops; certificates held stay
  // The data path wants a certificate it did not find (traffic-driven).
  void request(const std::string& identity);

  std::shared_ptr<const mesh::StateSnapshot> state() const { return state_; }
  const std::map<std::string, CertificateStatus>& certificates() const { return manager_.certificates(); }
  std::vector<tls::Certificate> roots() const { return source_certs_.roots(); }

 private:
  void publish(std::shared_ptr<const mesh::StateSnapshot> snapshot);
  std::set<std::string> local_identities(const mesh::StateSnapshot& s) const;
  void check_ready();

  Env& env_;
  MeshSource& mesh_;
  CertificateSource& source_certs_;
  ControlPlaneConfig cfg_;
  ControlPlaneOutputs out_;
  std::shared_ptr<const mesh::StateSnapshot> state_;
  std::set<std::string> identities_;  // of every workload in the state
  ReadyBlock state_block_, certs_block_;
  CertificateManager manager_;  // last: its fetches go before what they use
};

}  // namespace zt::core::control
