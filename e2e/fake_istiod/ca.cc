#include "e2e/fake_istiod/ca.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/opensslv.h>
#include <openssl/x509v3.h>

#include <stdexcept>

// BoringSSL's headers (which zt_tls puts first on the include path) do not
// define this: a BoringSSL dependency creeping in fails here, not at run time.
static_assert(OPENSSL_VERSION_MAJOR >= 3, "fake-istiod is built on OpenSSL 3, never BoringSSL");

namespace zt::e2e::fake_istiod {

namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using CsrPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME, X509_NAME_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

// The OpenSSL error queue as text (and emptied, so it never leaks into the
// next failure's message).
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    out += out.empty() ? "" : "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error recorded" : out;
}

// Failures here are the tool's own (no memory, a broken OpenSSL): fatal.
void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string(what) + ": " + openssl_errors());
}

KeyPtr new_p256_key() {
  KeyPtr key(EVP_EC_gen("P-256"));
  check(key != nullptr, "generating a P-256 key");
  return key;
}

std::string to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_X509(bio.get(), cert) == 1, "writing a certificate as PEM");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size_t(len));
}

std::string key_to_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "writing a key as PEM");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size_t(len));
}

// 127 random bits: positive, non-zero, unique enough that no two
// certificates of one issuer share a serial.
void set_random_serial(X509* cert) {
  unsigned char bytes[16];
  check(RAND_bytes(bytes, sizeof(bytes)) == 1, "drawing a serial number");
  bytes[0] = static_cast<unsigned char>((bytes[0] & 0x7f) | 0x40);
  BnPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  check(bn && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) != nullptr, "setting a serial number");
}

// A certificate to be signed: key, names, validity from a minute ago (the
// clients' clocks may lag ours) for `lifetime`.
CertPtr new_cert(EVP_PKEY* subject_key, X509_NAME* subject, X509_NAME* issuer, std::chrono::seconds lifetime) {
  CertPtr cert(X509_new());
  check(cert != nullptr, "X509_new");
  check(X509_set_version(cert.get(), X509_VERSION_3) == 1, "X509_set_version");
  set_random_serial(cert.get());
  check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60) != nullptr, "not before");
  check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), long(lifetime.count())) != nullptr, "not after");
  check(X509_set_subject_name(cert.get(), subject) == 1, "subject");
  check(X509_set_issuer_name(cert.get(), issuer) == 1, "issuer");
  check(X509_set_pubkey(cert.get(), subject_key) == 1, "public key");
  return cert;
}

// Adds an extension written in OpenSSL's config syntax ("critical,CA:TRUE").
void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, value);
  int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  check(added == 1, "X509_add_ext");
}

// SANs built as values, not config text: an identity may hold characters
// the config syntax gives meaning to (',').
void add_san(X509* cert, GENERAL_NAMES* names, bool critical) {
  check(X509_add1_ext_i2d(cert, NID_subject_alt_name, names, critical ? 1 : 0, X509V3_ADD_REPLACE) == 1, "SAN");
}

void push_uri(GENERAL_NAMES* names, const std::string& uri) {
  GENERAL_NAME* name = GENERAL_NAME_new();
  ASN1_IA5STRING* text = ASN1_IA5STRING_new();
  check(name && text && ASN1_STRING_set(text, uri.data(), int(uri.size())) == 1, "URI SAN");
  GENERAL_NAME_set0_value(name, GEN_URI, text);
  sk_GENERAL_NAME_push(names, name);
}

void push_dns(GENERAL_NAMES* names, const std::string& dns) {
  GENERAL_NAME* name = GENERAL_NAME_new();
  ASN1_IA5STRING* text = ASN1_IA5STRING_new();
  check(name && text && ASN1_STRING_set(text, dns.data(), int(dns.size())) == 1, "DNS SAN");
  GENERAL_NAME_set0_value(name, GEN_DNS, text);
  sk_GENERAL_NAME_push(names, name);
}

void push_ip(GENERAL_NAMES* names, const std::string& ip) {
  ASN1_OCTET_STRING* raw = a2i_IPADDRESS(ip.c_str());
  check(raw != nullptr, "IP SAN (not an IP address)");
  GENERAL_NAME* name = GENERAL_NAME_new();
  check(name != nullptr, "GENERAL_NAME_new");
  GENERAL_NAME_set0_value(name, GEN_IPADD, raw);
  sk_GENERAL_NAME_push(names, name);
}

void sign(X509* cert, EVP_PKEY* issuer_key) {
  check(X509_sign(cert, issuer_key, EVP_sha256()) > 0, "signing a certificate");
}

// The CSR's URI SANs (a ztunnel CSR has exactly one, its SPIFFE identity).
std::vector<std::string> csr_uris(X509_REQ* csr) {
  std::vector<std::string> out;
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(csr);
  if (!exts) return out;
  NamesPtr names(static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr)));
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)), size_t(ASN1_STRING_length(uri)));
  }
  return out;
}

}  // namespace

struct FakeCa::Root {
  KeyPtr key;
  CertPtr cert;
  std::string pem;
};

FakeCa::FakeCa(Seconds root_lifetime) : root_lifetime_(root_lifetime) {
  roots_.push_back(make_root(next_root_number_++));
}

FakeCa::~FakeCa() = default;

std::unique_ptr<FakeCa::Root> FakeCa::make_root(int number) const {
  auto root = std::make_unique<Root>();
  root->key = new_p256_key();
  // Each root its own name: a verifier looking an issuer up by name never
  // has to choose between two roots.
  std::string cn = number == 1 ? "fake-istiod root" : "fake-istiod root " + std::to_string(number);
  NamePtr name(X509_NAME_new());
  check(name && X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_ASC,
                                           reinterpret_cast<const unsigned char*>("fake-istiod"), -1, -1, 0) == 1 &&
            X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_ASC,
                                       reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) == 1,
        "root name");
  root->cert = new_cert(root->key.get(), name.get(), name.get(), root_lifetime_);
  X509* cert = root->cert.get();
  add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
  add_ext(cert, cert, NID_subject_key_identifier, "hash");
  sign(cert, root->key.get());
  root->pem = to_pem(cert);
  return root;
}

std::string FakeCa::trust_bundle_pem() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& root : roots_) out += root->pem;
  return out;
}

size_t FakeCa::trusted_roots() const {
  std::lock_guard lock(mu_);
  return roots_.size();
}

int FakeCa::newest_root_number() const {
  std::lock_guard lock(mu_);
  return next_root_number_ - 1;
}

FakeCa::KeyAndChain FakeCa::issue_server(const std::string& dns_name, const std::string& ip) {
  std::lock_guard lock(mu_);
  const Root& root = *roots_.back();
  KeyPtr key = new_p256_key();
  NamePtr subject(X509_NAME_new());
  check(subject && X509_NAME_add_entry_by_txt(subject.get(), "CN", MBSTRING_ASC,
                                              reinterpret_cast<const unsigned char*>(dns_name.c_str()), -1, -1,
                                              0) == 1,
        "server name");
  CertPtr cert = new_cert(key.get(), subject.get(), X509_get_subject_name(root.cert.get()), root_lifetime_);
  add_ext(cert.get(), root.cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), root.cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  add_ext(cert.get(), root.cert.get(), NID_ext_key_usage, "serverAuth");
  add_ext(cert.get(), root.cert.get(), NID_authority_key_identifier, "keyid:always");
  NamesPtr names(sk_GENERAL_NAME_new_null());
  push_dns(names.get(), dns_name);
  push_ip(names.get(), ip);
  add_san(cert.get(), names.get(), false);
  sign(cert.get(), root.key.get());
  return {key_to_pem(key.get()), to_pem(cert.get())};
}

std::variant<FakeCa::Signed, CaError> FakeCa::sign_csr(const std::string& csr_pem,
                                                       const std::optional<std::string>& identity,
                                                       Seconds lifetime) {
  BioPtr bio(BIO_new_mem_buf(csr_pem.data(), int(csr_pem.size())));
  CsrPtr csr(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!csr) return CaError{"the CSR is not PEM: " + openssl_errors()};
  EVP_PKEY* csr_key = X509_REQ_get0_pubkey(csr.get());
  if (!csr_key || X509_REQ_verify(csr.get(), csr_key) != 1)
    return CaError{"the CSR's signature does not verify: " + openssl_errors()};
  std::string uri;
  if (identity && !identity->empty()) {
    uri = *identity;
  } else {
    std::vector<std::string> uris = csr_uris(csr.get());
    if (uris.size() != 1) return CaError{"the CSR has " + std::to_string(uris.size()) + " URI SANs, not one"};
    uri = uris.front();
  }

  std::lock_guard lock(mu_);
  const Root& root = *roots_.back();
  // Istio's leaves: no subject, so the SAN is critical (RFC 5280 4.2.1.6).
  NamePtr empty(X509_NAME_new());
  CertPtr cert = new_cert(csr_key, empty.get(), X509_get_subject_name(root.cert.get()), lifetime);
  add_ext(cert.get(), root.cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), root.cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  add_ext(cert.get(), root.cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  add_ext(cert.get(), root.cert.get(), NID_authority_key_identifier, "keyid:always");
  NamesPtr names(sk_GENERAL_NAME_new_null());
  push_uri(names.get(), uri);
  add_san(cert.get(), names.get(), true);
  sign(cert.get(), root.key.get());
  return Signed{{to_pem(cert.get()), root.pem}, uri};
}

void FakeCa::rotate() {
  std::lock_guard lock(mu_);
  roots_.push_back(make_root(next_root_number_++));
}

void FakeCa::drop_old_roots() {
  std::lock_guard lock(mu_);
  roots_.erase(roots_.begin(), roots_.end() - 1);
}

}  // namespace zt::e2e::fake_istiod
