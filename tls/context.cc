#include "tls/context.h"

#include <cstring>

namespace zt::tls {
namespace {

int select_h2(SSL*, const uint8_t** out, uint8_t* out_len, const uint8_t* in, unsigned in_len, void*) {
  // Walk the client's length-prefixed list for "h2".
  for (unsigned i = 0; i < in_len;) {
    const unsigned len = in[i];
    if (i + 1 + len > in_len) break;
    if (len == 2 && std::memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *out_len = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;  // HBONE is HTTP/2 only
}

}  // namespace

const char* tls_failure_name(TlsFailure f) {
  switch (f) {
    case TlsFailure::none: return "none";
    case TlsFailure::untrusted: return "untrusted";
    case TlsFailure::expired: return "expired";
    case TlsFailure::not_yet_valid: return "not_yet_valid";
    case TlsFailure::identity_mismatch: return "identity_mismatch";
    case TlsFailure::trust_domain_mismatch: return "trust_domain_mismatch";
    case TlsFailure::no_client_cert: return "no_client_cert";
    case TlsFailure::bad_certificate: return "bad_certificate";
    case TlsFailure::alpn: return "alpn";
    case TlsFailure::protocol_version: return "protocol_version";
    case TlsFailure::cipher: return "cipher";
    case TlsFailure::peer_rejected: return "peer_rejected";
    case TlsFailure::closed: return "closed";
    case TlsFailure::other: return "other";
  }
  return "unknown";
}

TlsContext::~TlsContext() = default;

Result<std::shared_ptr<const TlsContext>> TlsContext::create(const TlsConfig& config) {
  const bool has_cert = config.credentials && !config.credentials->chain.empty();
  if (!has_cert && !config.credentials_for && config.role == TlsRole::server)
    return Error(Errc::invalid_argument, "TLS server context without a certificate");
  if (config.roots.empty()) return Error(Errc::invalid_argument, "TLS context without trusted roots");
  std::shared_ptr<TlsContext> c(new TlsContext(config));
  auto ctx = make_ssl_ctx(config, has_cert ? config.credentials.get() : nullptr);
  if (!ctx) return ctx.error();
  c->ctx_ = std::move(*ctx);
  c->store_.reset(X509_STORE_new());
  bool ok = bool(c->store_);
  for (const auto& root : config.roots) ok = ok && X509_STORE_add_cert(c->store_.get(), root.get());
  if (!ok) return Error(Errc::invalid_argument, last_ssl_error("loading the trusted roots"));
  return std::shared_ptr<const TlsContext>(std::move(c));
}

// TLS_with_buffers_method: BoringSSL keeps certificates as DER buffers and
// never parses them into X509 objects itself. Peer chains are parsed only
// when verify_peer has to verify one it has not seen (TlsStream), and our
// own chain is encoded once here, not on every connection.
Result<bssl::UniquePtr<SSL_CTX>> TlsContext::make_ssl_ctx(const TlsConfig& config, const Credentials* creds) {
  bssl::UniquePtr<SSL_CTX> holder(SSL_CTX_new(TLS_with_buffers_method()));
  SSL_CTX* ctx = holder.get();
  if (!ctx) return Error(Errc::io_error, last_ssl_error("creating an SSL_CTX"));

  const uint16_t min_version = config.allow_tls12 || config.tls12_only ? TLS1_2_VERSION : TLS1_3_VERSION;
  const uint16_t max_version = config.tls12_only ? TLS1_2_VERSION : TLS1_3_VERSION;
  const int groups_fips[] = {NID_X9_62_prime256v1, NID_secp384r1};
  const int groups_default[] = {NID_X25519, NID_X9_62_prime256v1, NID_secp384r1};
  bool ok = SSL_CTX_set_min_proto_version(ctx, min_version) && SSL_CTX_set_max_proto_version(ctx, max_version) &&
            // TLS 1.2 (when allowed): ECDHE with AES-GCM only. TLS 1.3 suites are
            // fixed in BoringSSL; the handshake rejects anything but AES-GCM.
            SSL_CTX_set_strict_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384") &&
            (config.fips_groups_only || fips_build() ? SSL_CTX_set1_curves(ctx, groups_fips, 2)
                                     : SSL_CTX_set1_curves(ctx, groups_default, 3));
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

  if (creds && !creds->chain.empty()) {
    // Leaf first, then intermediates; a self-signed root is not sent.
    std::vector<bssl::UniquePtr<CRYPTO_BUFFER>> bufs;
    for (size_t i = 0; ok && i < creds->chain.size(); ++i) {
      const Certificate& cert = creds->chain[i];
      if (i > 0 && cert.is_ca() && X509_check_issued(cert.get(), cert.get()) == X509_V_OK) continue;  // a root
      const std::vector<uint8_t> der = cert.to_der();
      bufs.emplace_back(CRYPTO_BUFFER_new(der.data(), der.size(), nullptr));
      ok = !der.empty() && bufs.back();
    }
    std::vector<CRYPTO_BUFFER*> raw;
    for (auto& b : bufs) raw.push_back(b.get());
    // Fails when the key is not the leaf's.
    ok = ok && SSL_CTX_set_chain_and_key(ctx, raw.data(), raw.size(), creds->key.get(), nullptr);
  }
  if (!ok) return Error(Errc::invalid_argument, last_ssl_error("configuring TLS"));

  if (config.role == TlsRole::client) {
    std::string wire;  // length-prefixed protocol names
    for (const auto& p : config.alpn) wire += char(p.size()) + p;
    ok = SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const uint8_t*>(wire.data()), unsigned(wire.size())) == 0;
  } else {
    SSL_CTX_set_alpn_select_cb(ctx, select_h2, nullptr);
  }
  if (!ok) return Error(Errc::io_error, last_ssl_error("setting ALPN"));
  return holder;
}

Result<SSL_CTX*> TlsContext::ssl_ctx_for(const std::shared_ptr<const Credentials>& creds) const {
  if (!creds || creds == config_.credentials) return ctx_.get();
  auto it = by_credentials_.find(creds.get());
  if (it != by_credentials_.end() && it->second.creds == creds) return it->second.ctx.get();
  auto made = make_ssl_ctx(config_, creds.get());
  if (!made) return made.error();
  // Bounded: certificates rotate, and old ones are not asked for again.
  // Connections hold their own reference to their SSL_CTX.
  if (by_credentials_.size() >= kCredentialContextsMax) by_credentials_.clear();
  SSL_CTX* raw = made->get();
  by_credentials_.insert_or_assign(creds.get(), CredentialContext{creds, std::move(*made)});
  return raw;
}

const VerifiedChain* TlsContext::verified_chain(const std::string& chain_der, WallTime now) const {
  auto it = verified_.find(chain_der);
  if (it == verified_.end() || now < it->second.valid_from || now >= it->second.valid_until) return nullptr;
  ++verified_hits_;
  return &it->second;
}

void TlsContext::remember_verified_chain(std::string chain_der, VerifiedChain chain) const {
  // Bounded: peers rotate certificates, and old entries are never used again.
  if (verified_.size() >= kVerifiedChainsMax) verified_.clear();
  verified_.insert_or_assign(std::move(chain_der), std::move(chain));
}

bool fips_mode() { return FIPS_mode() == 1; }

bool fips_build() {
#ifdef ZTUNNEL_FIPS
  return true;
#else
  return false;
#endif
}

Result<void> check_fips_build() {
  if (fips_build() && !fips_mode())
    return Error(Errc::unsupported, "built with ZTUNNEL_FIPS but BoringSSL's FIPS mode is off (FIPS_mode() != 1)");
  return ok();
}

}  // namespace zt::tls
