#include "tls/ca.h"

namespace zt::tls {
namespace {

// A positive 16-byte serial with a fixed first byte, so its DER size never varies.
bssl::UniquePtr<ASN1_INTEGER> serial_from(Rng& rng) {
  uint8_t bytes[16];
  for (int i = 0; i < 16; i += 8) {
    uint64_t v = rng.next();
    for (int j = 0; j < 8; ++j) bytes[i + j] = uint8_t(v >> (8 * j));
  }
  bytes[0] = uint8_t(0x40 | (bytes[0] & 0x3f));
  bssl::UniquePtr<BIGNUM> bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  return bssl::UniquePtr<ASN1_INTEGER>(BN_to_ASN1_INTEGER(bn.get(), nullptr));
}

// `issuer` is the signing certificate (authorityKeyIdentifier reads its
// subjectKeyIdentifier); null for a self-signed one.
bool add_ext(X509* x, int nid, const char* value, X509* issuer = nullptr) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : x, x, nullptr, nullptr, 0);
  bssl::UniquePtr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(x, ext.get(), -1);
}

bool set_validity(X509* x, WallTime not_before, WallTime not_after) {
  return ASN1_TIME_set(X509_getm_notBefore(x), time_t(to_unix_seconds(not_before))) &&
         ASN1_TIME_set(X509_getm_notAfter(x), time_t(to_unix_seconds(not_after)));
}

}  // namespace

bool sign_certificate(X509* x509, EVP_PKEY* key, bool pin) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    if (!X509_sign(x509, key, EVP_sha256())) return false;
    const ASN1_BIT_STRING* sig = nullptr;
    X509_get0_signature(&sig, nullptr, x509);
    if (!pin || ASN1_STRING_length(sig) == 72) return true;
  }
  return true;  // 64 misses in a row (p < 1e-8): keep the last one
}

Result<Ca> Ca::create(CaOptions options, Rng rng, WallTime now) {
  if (!valid_trust_domain(options.trust_domain))
    return Error(Errc::invalid_argument, "bad trust domain '" + options.trust_domain + "'");
  Ca ca(std::move(options), rng);
  auto root = ca.make_root(now);
  if (!root) return root.error();
  ca.roots_.push_back(std::move(*root));
  return ca;
}

Result<Ca> Ca::from_root(CaOptions options, Rng rng, KeyPair key, Certificate cert) {
  if (!valid_trust_domain(options.trust_domain))
    return Error(Errc::invalid_argument, "bad trust domain '" + options.trust_domain + "'");
  if (!cert.is_ca()) return Error(Errc::invalid_argument, "the root certificate is not a CA certificate");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Error(Errc::invalid_argument, "the root key does not match the root certificate");
  }
  Ca ca(std::move(options), rng);
  ca.roots_.push_back(Root{std::move(key), std::move(cert)});
  return ca;
}

Result<Ca::Root> Ca::make_root(WallTime now) {
  auto key = KeyPair::generate();
  if (!key) return key.error();
  bssl::UniquePtr<X509> x(X509_new());
  X509_NAME* name = X509_get_subject_name(x.get());
  const std::string org = options_.trust_domain;
  const std::string cn = "ztunnel-cpp fake CA " + std::to_string(roots_.size() + 1);
  auto serial = serial_from(rng_);
  const bool ok =
      X509_set_version(x.get(), X509_VERSION_3) && X509_set_serialNumber(x.get(), serial.get()) &&
      X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const uint8_t*>(org.data()),
                                 int(org.size()), -1, 0) &&
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const uint8_t*>(cn.data()),
                                 int(cn.size()), -1, 0) &&
      X509_set_issuer_name(x.get(), name) && set_validity(x.get(), now - options_.backdate, now + options_.root_lifetime) &&
      X509_set_pubkey(x.get(), key->get()) && add_ext(x.get(), NID_basic_constraints, "critical,CA:TRUE") &&
      add_ext(x.get(), NID_key_usage, "critical,keyCertSign,cRLSign") &&
      add_ext(x.get(), NID_subject_key_identifier, "hash") &&
      sign_certificate(x.get(), key->get(), options_.pin_signature_sizes);
  if (!ok) return Error(Errc::io_error, last_ssl_error("making a CA root"));
  return Root{std::move(*key), Certificate(std::move(x))};
}

Result<Certificate> Ca::sign_leaf(EVP_PKEY* subject_key, const Identity& id, WallTime not_before,
                                  WallTime not_after) {
  return sign_leaf_san(subject_key, "critical,URI:" + id.to_string(), not_before, not_after);
}

Result<Certificate> Ca::sign_leaf_san(EVP_PKEY* subject_key, const std::string& san, WallTime not_before,
                                      WallTime not_after) {
  const Root& root = roots_.back();
  bssl::UniquePtr<X509> x(X509_new());
  auto serial = serial_from(rng_);
  const bool ok = X509_set_version(x.get(), X509_VERSION_3) && X509_set_serialNumber(x.get(), serial.get()) &&
                  X509_set_issuer_name(x.get(), X509_get_subject_name(root.cert.get())) &&
                  set_validity(x.get(), not_before, not_after) && X509_set_pubkey(x.get(), subject_key) &&
                  add_ext(x.get(), NID_basic_constraints, "critical,CA:FALSE") &&
                  add_ext(x.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
                  add_ext(x.get(), NID_ext_key_usage, "serverAuth,clientAuth") &&
                  add_ext(x.get(), NID_subject_alt_name, san.c_str()) &&
                  // Names the signing root by its key: two roots of one
                  // trust domain share a subject during a rotation, and
                  // chain building must pick the one that signed.
                  add_ext(x.get(), NID_authority_key_identifier, "keyid:always", root.cert.get()) &&
                  sign_certificate(x.get(), root.key.get(), options_.pin_signature_sizes);
  if (!ok) return Error(Errc::io_error, last_ssl_error("signing a workload certificate"));
  return Certificate(std::move(x));
}

Result<std::vector<Certificate>> Ca::sign_csr(std::string_view csr_pem, const Identity& id, Duration lifetime,
                                              WallTime now) {
  if (id.trust_domain() != options_.trust_domain)
    return Error(Errc::invalid_argument, "identity " + id.to_string() + " is outside trust domain " +
                                             options_.trust_domain);
  auto csr = parse_csr(csr_pem);
  if (!csr) return csr.error();
  for (const auto& uri : csr->uri_sans) {
    if (uri != id.to_string())
      return Error(Errc::invalid_argument, "CSR asks for " + uri + " but the caller is " + id.to_string());
  }
  auto leaf = sign_leaf(csr->public_key.get(), id, now - options_.backdate, now + lifetime);
  if (!leaf) return leaf.error();
  return std::vector<Certificate>{std::move(*leaf), roots_.back().cert};
}

Result<Issued> Ca::issue(const Identity& id, Duration lifetime, WallTime now) {
  return issue_between(id, now - options_.backdate, now + lifetime);
}

Result<Issued> Ca::issue_for_dns(const std::vector<std::string>& names, Duration lifetime, WallTime now) {
  if (names.empty()) return Error(Errc::invalid_argument, "no DNS name to issue for");
  std::string san = "critical";
  for (const std::string& n : names) san += ",DNS:" + n;
  auto key = KeyPair::generate();
  if (!key) return key.error();
  auto leaf = sign_leaf_san(key->get(), san, now - options_.backdate, now + lifetime);
  if (!leaf) return leaf.error();
  return Issued{std::move(*key), {std::move(*leaf), roots_.back().cert}};
}

Result<Issued> Ca::issue_between(const Identity& id, WallTime not_before, WallTime not_after) {
  auto key = KeyPair::generate();
  if (!key) return key.error();
  auto leaf = sign_leaf(key->get(), id, not_before, not_after);
  if (!leaf) return leaf.error();
  return Issued{std::move(*key), {std::move(*leaf), roots_.back().cert}};
}

Result<void> Ca::rotate(WallTime now) {
  auto root = make_root(now);
  if (!root) return root.error();
  roots_.push_back(std::move(*root));
  return ok();
}

void Ca::drop_old_roots() { roots_.erase(roots_.begin(), roots_.end() - 1); }

std::vector<Certificate> Ca::trust_bundle() const {
  std::vector<Certificate> out;
  for (const auto& r : roots_) out.push_back(r.cert);
  return out;
}

}  // namespace zt::tls
