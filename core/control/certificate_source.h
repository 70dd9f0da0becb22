// Where workload certificates come from: the fake CA in local mode
// (FakeCaSource below, FAKE_CA=true), istiod's CA next, a scripted CA in the
// simulator. The control plane (control_plane.h) asks a source for the
// identities of the node's workloads and hands the results to the data path.
//
//   FakeCaSource ca(env, std::move(tls_ca), std::chrono::hours(24));
//   Result<tls::Credentials> creds = co_await ca.fetch(identity);
//
// Runs on the control loop.
#pragma once

#include <memory>
#include <vector>

#include "io/env.h"
#include "io/task.h"
#include "tls/ca.h"
#include "tls/context.h"
#include "tls/identity.h"

namespace zt::core::control {

class CertificateSource {
 public:
  virtual ~CertificateSource() = default;
  // A certificate chain (leaf first) and its key for `identity`. An error
  // names why; the caller decides when to ask again.
  virtual Task<Result<tls::Credentials>> fetch(const tls::Identity& identity) = 0;
  // The roots peers' certificates must chain to.
  virtual std::vector<tls::Certificate> roots() const = 0;
};

// The built-in CA of local mode: issues at once, for `ttl`, on the Env's
// wall clock (so simulated clock jumps apply).
class FakeCaSource final : public CertificateSource {
 public:
  FakeCaSource(Env& env, tls::Ca ca, Duration ttl) : env_(env), ca_(std::move(ca)), ttl_(ttl) {}
  Task<Result<tls::Credentials>> fetch(const tls::Identity& identity) override;
  std::vector<tls::Certificate> roots() const override { return ca_.trust_bundle(); }
  tls::Ca& ca() { return ca_; }

 private:
  Env& env_;
  tls::Ca ca_;
  Duration ttl_;
};

}  // namespace zt::core::control
