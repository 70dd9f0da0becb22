// TLS settings for HBONE and the context built from them once (an SSL_CTX
// with our certificate, key, trust bundle and rules), shared by every
// connection that uses the same certificate.
//
//   TlsConfig cfg;
//   cfg.role = TlsRole::client;
//   cfg.credentials = creds;                 // our chain and key
//   cfg.roots = ca.trust_bundle();
//   auto ctx = TlsContext::create(cfg);      // Result<std::shared_ptr<const TlsContext>>
//
// The rules (docs/PROTOCOL.md): TLS 1.3 only unless allow_tls12; AES-GCM suites;
// ALPN "h2" on both sides; mutual authentication; the client requires the
// server's identity (first URI SAN) to be one it expects; the server
// requires the client's trust domain to be its own; no session resumption,
// no meaningful SNI.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/address.h"
#include "io/result.h"
#include "tls/boringssl.h"
#include "tls/cert.h"
#include "tls/identity.h"

namespace zt::tls {

enum class TlsRole : uint8_t { client, server };

// Why a handshake failed, for logs and metrics.
enum class TlsFailure : uint8_t {
  none,
  untrusted,              // the chain does not lead to a trusted root
  expired,                // a certificate's notAfter has passed
  not_yet_valid,          // a certificate's notBefore is in the future
  identity_mismatch,      // the server is not one of the identities we expected
  trust_domain_mismatch,  // the client is from another trust domain
  no_client_cert,         // the client sent no certificate
  bad_certificate,        // no or malformed SPIFFE URI SAN
  alpn,                   // no "h2" agreed
  protocol_version,       // no common TLS version (e.g. a TLS 1.2-only peer)
  cipher,                 // a suite other than AES-GCM was negotiated
  peer_rejected,          // the peer sent a fatal alert (it rejected us)
  closed,                 // the transport ended mid-handshake
  other,
};
const char* tls_failure_name(TlsFailure f);

struct Credentials {
  std::vector<Certificate> chain;  // leaf first; may include the root
  KeyPair key;
};

struct HandshakeRecord;  // below

struct TlsConfig {
  TlsRole role = TlsRole::client;
  // Required for servers; a client without one can only be refused (tests).
  std::shared_ptr<const Credentials> credentials;
  // Server: picks the certificate by the address a connection arrived at (a
  // node proxy answers for every pod it serves, and HBONE clients send no
  // SNI). Null answer: `credentials`, if any.
  std::function<std::shared_ptr<const Credentials>(const Endpoint& local)> credentials_for;
  std::vector<Certificate> roots;
  // Client: the server must present one of these (overridable per connection).
  std::vector<Identity> expected_identities;
  // Client, instead of SPIFFE identities: the server is known by this DNS
  // name (istiod: its address's host, or ALT_XDS_HOSTNAME): the chain must
  // verify against `roots` and a DNS SAN must match the name. It is sent as
  // SNI too. No client certificate is needed (the token authenticates).
  std::string expected_server_name;
  // Server: a client certificate must be in this trust domain.
  std::string trust_domain = "cluster.local";
  // Server: a client must present a certificate (HBONE: mutual TLS). Off
  // for a server clients authenticate to otherwise (istiod: a token).
  bool require_client_certificate = true;
  bool allow_tls12 = false;  // TLS12_ENABLED
  // What a client offers in ALPN; HBONE needs exactly "h2" (tests vary it).
  std::vector<std::string> alpn = {"h2"};
  // A TLS 1.2-only endpoint, for testing that such peers are refused.
  bool tls12_only = false;
  // FIPS-approved groups only (P-256, P-384); always on in FIPS builds.
  bool fips_groups_only = false;
  // Pin ECDSA signature sizes so handshake sizes never vary (simulation).
  bool pin_signature_sizes = false;
  // Called once per handshake that completes, and for one the peer rejected
  // (with accepted false: it saw our certificate) (tests; unset in the proxy).
  std::function<void(const HandshakeRecord&)> on_handshake;
};

// A peer chain this context verified: its identity, and when every
// certificate on the verified path (the root included) is valid.
struct VerifiedChain {
  Identity identity;
  WallTime valid_from, valid_until;  // the latest notBefore, the earliest notAfter
};

// A handshake that completed (or that the peer rejected), as
// TlsConfig::on_handshake reports it: what
// this side presented and what it accepted, each with the wall time (this
// side's clock) it happened at. Tests check certificate validity with it at
// the TLS layer (the mesh swarm); nothing in the proxy needs it.
struct HandshakeRecord {
  TlsRole role = TlsRole::client;
  bool presented = false;                 // a certificate was sent
  WallTime presented_at{};                // server: when the handshake began; client: when it completed
  WallTime presented_from{}, presented_until{};  // its leaf's notBefore and notAfter
  bool accepted = false;                  // a peer chain was verified (always, for HBONE)
  WallTime accepted_at{};                 // when it was verified (or found verified before)
  WallTime accepted_from{}, accepted_until{};    // the verified path's validity (VerifiedChain)
  std::optional<Identity> peer;
};

// One context per thread: it remembers the peer chains it verified (below),
// without a lock.
class TlsContext {
 public:
  static Result<std::shared_ptr<const TlsContext>> create(const TlsConfig& config);
  ~TlsContext();

  const TlsConfig& config() const { return config_; }
  SSL_CTX* ssl_ctx() const { return ctx_.get(); }
  // Server with credentials_for: the SSL_CTX that presents `creds`, built on
  // first use and kept (bounded), so a connection starts from a context that
  // already holds its certificate chain and key instead of installing them
  // (re-encoding and re-checking them) on every handshake.
  Result<SSL_CTX*> ssl_ctx_for(const std::shared_ptr<const Credentials>& creds) const;
  static constexpr size_t kCredentialContextsMax = 256;
  X509_STORE* roots() const { return store_.get(); }

  // Peer chains already verified against this context's roots, by their
  // certificates' DER: a node proxy sees the same few peer certificates on
  // every connection, and checking a chain's signatures is an ECDSA verify
  // per certificate, a large part of a handshake. A hit is used only while
  // `now` is inside every certificate's validity; otherwise the chain is
  // verified afresh (and fails with the precise reason). New roots mean a
  // new context, so a rotated trust bundle starts with an empty cache.
  const VerifiedChain* verified_chain(const std::string& chain_der, WallTime now) const;
  void remember_verified_chain(std::string chain_der, VerifiedChain chain) const;
  uint64_t verified_chain_hits() const { return verified_hits_; }
  static constexpr size_t kVerifiedChainsMax = 256;

 private:
  explicit TlsContext(TlsConfig config) : config_(std::move(config)) {}
  static Result<bssl::UniquePtr<SSL_CTX>> make_ssl_ctx(const TlsConfig& config, const Credentials* creds);
  TlsConfig config_;
  bssl::UniquePtr<SSL_CTX> ctx_;
  struct CredentialContext {
    std::shared_ptr<const Credentials> creds;  // keeps the key of the map alive
    bssl::UniquePtr<SSL_CTX> ctx;
  };
  mutable std::map<const Credentials*, CredentialContext> by_credentials_;
  bssl::UniquePtr<X509_STORE> store_;
  mutable std::map<std::string, VerifiedChain> verified_;
  mutable uint64_t verified_hits_ = 0;
};

// Whether this process runs BoringSSL's FIPS module in FIPS mode.
bool fips_mode();
// In a FIPS build (-DZTUNNEL_FIPS=ON), fails unless FIPS mode is on; in the
// default build, always succeeds (and fips_mode() is false).
Result<void> check_fips_build();
bool fips_build();

}  // namespace zt::tls
