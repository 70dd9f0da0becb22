// The CA client: workload certificates from istiod's CA
// (istio.v1.auth.IstioCertificateService/CreateCertificate) over a
// grpc::Channel. For each identity: a fresh P-256 key, a CSR with the
// SPIFFE id as its only URI SAN, the lifetime asked (SECRET_TTL), and in
// shared mode ImpersonatedIdentity (ztunnel asks on behalf of its node's
// workloads). The chain that comes back is checked before it is used: the
// leaf must name the identity asked for and the chain must verify against
// the CA roots (CA_ROOT_CA) at the current wall time; anything else is an
// error (the certificate manager retries).
//
//   CaClient ca(env, channel, {.authority = "istiod.istio-system.svc:15012", .roots = roots, ...});
//   Result<tls::Credentials> creds = co_await ca.fetch(identity);
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/control/certificate_source.h"
#include "xds/grpc/call.h"
#include "xds/grpc/channel.h"

namespace zt::xds {

inline constexpr std::string_view kCreateCertificatePath = "/istio.v1.auth.IstioCertificateService/CreateCertificate";

struct CaClientConfig {
  std::string authority;
  // Per call (the token rotates): authorization, clusterid.
  std::function<Result<h2::Headers>()> metadata;
  Duration ttl = std::chrono::hours(24);  // SECRET_TTL
  Duration call_timeout = std::chrono::seconds(10);
  std::vector<tls::Certificate> roots;  // CA_ROOT_CA: a returned chain must verify against these
  bool impersonate = true;              // shared mode: ImpersonatedIdentity
};

class CaClient final : public core::control::CertificateSource {
 public:
  CaClient(Env& env, grpc::Channel& channel, CaClientConfig config);

  Task<Result<tls::Credentials>> fetch(const tls::Identity& identity) override;
  // The CA roots (CA_ROOT_CA); a new bundle (root rotation) comes with
  // set_roots(), when the file changes.
  std::vector<tls::Certificate> roots() const override { return roots_; }
  void set_roots(std::vector<tls::Certificate> roots) { roots_ = std::move(roots); }
  uint64_t fetches() const { return fetches_; }

 private:
  Env& env_;
  grpc::Channel& channel_;
  CaClientConfig cfg_;
  std::vector<tls::Certificate> roots_;
  uint64_t fetches_ = 0;
};

}  // namespace zt::xds
