// What the binary needs to talk to istiod (xDS and CA) that is not gRPC or
// xDS itself: the address, the trust roots for istiod's certificate, the
// token and cluster id every call carries, and the channel they make.
//
//   Result<IstiodAddress> a = parse_istiod_address("https://istiod.istio-system.svc:15012");
//   Result<std::vector<tls::Certificate>> roots = load_roots(cfg.xds_root_cert);
//   CallMetadata meta(cfg.auth_token_path, cfg.cluster_id);
//   Result<h2::Headers> headers = meta();      // reads the token file now
//   auto channel = make_istiod_channel(env, *a, roots, cfg.alt_xds_hostname);
//
// Each file is read when it is needed, not once: Kubernetes rotates the
// projected token, and a root bundle changes when the mesh root rotates.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/config.h"
#include "h2/connection.h"
#include "io/env.h"
#include "tls/cert.h"
#include "xds/grpc/channel.h"

namespace zt::app {

struct IstiodAddress {
  bool tls = true;   // https (the default); http is plaintext, as upstream allows
  std::string host;  // a DNS name or an IP literal (brackets removed)
  uint16_t port = 0;
  std::string authority() const;  // host:port, bracketed for IPv6
};
// "https://host:port" or "http://host:port"; without a port, 443 / 80.
Result<IstiodAddress> parse_istiod_address(const std::string& uri);

// The roots that istiod's certificate (or the CA's chains) must verify
// against: a PEM file, the PEM itself, or SYSTEM (the OS bundle).
Result<std::vector<tls::Certificate>> load_roots(const RootCert& root);
// The file a RootCert names, to watch (empty for inline PEM and SYSTEM).
std::string root_file(const RootCert& root);

// authorization (from the token file, read on each call) and clusterid.
class CallMetadata {
 public:
  CallMetadata(std::optional<std::string> token_path, std::string cluster_id)
      : token_path_(std::move(token_path)), cluster_id_(std::move(cluster_id)) {}
  Result<h2::Headers> operator()() const;

 private:
  std::optional<std::string> token_path_;
  std::string cluster_id_;
};

// Checks the token file at start: a token file that was named but cannot be
// read, or holds no token, is a configuration error (exit 2). The default
// path (when AUTH_TOKEN is unset) may be absent: calls then go without a
// token. Returns the path calls read, if any.
Result<std::optional<std::string>> check_token(const Config& cfg, Log& log);

// A channel to istiod; `alt_hostname` (ALT_XDS_HOSTNAME / ALT_CA_HOSTNAME)
// replaces the address's host as the name the certificate must carry.
Result<std::unique_ptr<xds::grpc::Channel>> make_istiod_channel(Env& env, const IstiodAddress& address,
                                                                const std::vector<tls::Certificate>& roots,
                                                                const std::optional<std::string>& alt_hostname);
// The TLS client context such a channel uses (rebuilt when the roots change).
Result<std::shared_ptr<const tls::TlsContext>> istiod_tls(const IstiodAddress& address,
                                                          const std::vector<tls::Certificate>& roots,
                                                          const std::optional<std::string>& alt_hostname);

}  // namespace zt::app
