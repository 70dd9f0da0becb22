#include "tls/cert.h"

#include <memory>

namespace zt::tls {
namespace {

Error bad(std::string_view what) { return Error(Errc::invalid_argument, last_ssl_error(std::string(what).c_str())); }

bssl::UniquePtr<BIO> read_bio(std::string_view text) {
  return bssl::UniquePtr<BIO>(BIO_new_mem_buf(text.data(), ptrdiff_t(text.size())));
}

std::string bio_string(BIO* bio) {
  const uint8_t* data = nullptr;
  size_t len = 0;
  BIO_mem_contents(bio, &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::vector<std::string> uri_names(const GENERAL_NAMES* names) {
  std::vector<std::string> out;
  for (size_t i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = n->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), size_t(ASN1_STRING_length(s)));
  }
  return out;
}

WallTime asn1_to_wall(const ASN1_TIME* t) {
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  int days = 0, secs = 0;
  if (!t || !ASN1_TIME_diff(&days, &secs, epoch.get(), t)) return WallTime{};
  return from_unix_seconds(int64_t(days) * 86400 + secs);
}

}  // namespace

int64_t to_unix_seconds(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
WallTime from_unix_seconds(int64_t s) { return WallTime(std::chrono::seconds(s)); }

// --- keys ---------------------------------------------------------------------

Result<KeyPair> KeyPair::generate() {
  bssl::UniquePtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || !EVP_PKEY_keygen_init(ctx.get()) ||
      !EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), NID_X9_62_prime256v1) ||
      !EVP_PKEY_keygen(ctx.get(), &raw)) {
    return Error(Errc::io_error, last_ssl_error("generating a P-256 key"));
  }
  return KeyPair(bssl::UniquePtr<EVP_PKEY>(raw));
}

Result<KeyPair> KeyPair::from_pem(std::string_view pem) {
  if (pem.size() > pem_bytes_max) return Error(Errc::invalid_argument, "private key PEM too large");
  auto bio = read_bio(pem);
  bssl::UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return bad("reading a private key PEM");
  if (EVP_PKEY_id(key.get()) != EVP_PKEY_EC) return Error(Errc::invalid_argument, "private key is not ECDSA");
  return KeyPair(std::move(key));
}

std::string KeyPair::to_pem() const {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PKCS8PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return bio_string(bio.get());
}

// --- certificates -----------------------------------------------------------

Certificate::Certificate(const Certificate& other) : x509_(bssl::UpRef(other.x509_)) {}
Certificate& Certificate::operator=(const Certificate& other) {
  if (this != &other) x509_ = bssl::UpRef(other.x509_);
  return *this;
}

Result<Certificate> Certificate::from_pem(std::string_view pem) {
  auto chain = parse_pem_chain(pem);
  if (!chain) return chain.error();
  if (chain->size() != 1)
    return Error(Errc::invalid_argument, "expected one certificate, found " + std::to_string(chain->size()));
  return std::move((*chain)[0]);
}

Result<Certificate> Certificate::from_der(std::span<const uint8_t> der) {
  const uint8_t* p = der.data();
  bssl::UniquePtr<X509> x(d2i_X509(nullptr, &p, long(der.size())));
  if (!x || p != der.data() + der.size()) return bad("parsing a DER certificate");
  return Certificate(std::move(x));
}

std::string Certificate::to_pem() const {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), x509_.get());
  return bio_string(bio.get());
}

std::vector<uint8_t> Certificate::to_der() const {
  uint8_t* out = nullptr;
  int len = i2d_X509(x509_.get(), &out);
  if (len <= 0) return {};
  std::vector<uint8_t> der(out, out + len);
  OPENSSL_free(out);
  return der;
}

std::vector<std::string> Certificate::uri_sans() const {
  bssl::UniquePtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x509_.get(), NID_subject_alt_name, nullptr, nullptr)));
  return uri_names(names.get());
}

Result<Identity> Certificate::identity() const {
  auto uris = uri_sans();
  if (uris.empty()) return Error(Errc::invalid_argument, "certificate has no URI SAN");
  return Identity::parse(uris[0]);
}

WallTime Certificate::not_before() const { return asn1_to_wall(X509_get0_notBefore(x509_.get())); }
WallTime Certificate::not_after() const { return asn1_to_wall(X509_get0_notAfter(x509_.get())); }

bool Certificate::is_ca() const { return X509_check_ca(x509_.get()) > 0; }

std::string Certificate::subject() const {
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(x509_.get()), buf, sizeof(buf));
  return buf;
}

Result<std::vector<Certificate>> parse_pem_chain(std::string_view pem) {
  if (pem.size() > pem_bytes_max) return Error(Errc::invalid_argument, "certificate PEM too large");
  auto bio = read_bio(pem);
  std::vector<Certificate> out;
  for (;;) {
    bssl::UniquePtr<X509> x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!x) {
      uint32_t err = ERR_peek_last_error();
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
        ERR_clear_error();  // the end of the bundle
        break;
      }
      return bad("parsing certificate " + std::to_string(out.size() + 1) + " of a PEM bundle");
    }
    out.emplace_back(std::move(x));
  }
  if (out.empty()) return Error(Errc::invalid_argument, "no certificate in PEM input");
  return out;
}

std::string to_pem(const std::vector<Certificate>& chain) {
  std::string out;
  for (const auto& c : chain) out += c.to_pem();
  return out;
}

// --- CSRs ---------------------------------------------------------------------

Result<std::string> make_csr(const KeyPair& key, const Identity& id) {
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  bssl::UniquePtr<GENERAL_NAMES> names(GENERAL_NAMES_new());
  GENERAL_NAME* uri = GENERAL_NAME_new();
  ASN1_IA5STRING* text = ASN1_IA5STRING_new();
  const std::string s = id.to_string();
  if (!req || !names || !uri || !text || !ASN1_STRING_set(text, s.data(), int(s.size()))) {
    GENERAL_NAME_free(uri);
    ASN1_IA5STRING_free(text);
    return Error(Errc::io_error, last_ssl_error("building a CSR"));
  }
  GENERAL_NAME_set0_value(uri, GEN_URI, text);
  sk_GENERAL_NAME_push(names.get(), uri);
  STACK_OF(X509_EXTENSION)* exts = nullptr;
  const bool ok = X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) &&
                  X509_REQ_set_pubkey(req.get(), key.get()) &&
                  X509V3_add1_i2d(&exts, NID_subject_alt_name, names.get(), /*crit=*/1, X509V3_ADD_DEFAULT) > 0 &&
                  X509_REQ_add_extensions(req.get(), exts) && X509_REQ_sign(req.get(), key.get(), EVP_sha256());
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (!ok) return Error(Errc::io_error, last_ssl_error("signing a CSR"));
  // Re-signed until the ECDSA signature has its longest DER form (72 bytes),
  // so a CSR's size never varies: the simulator hashes I/O sizes, and a CA
  // client on it must replay. A CSR is made once per renewal; the few extra
  // signatures cost nothing that matters.
  for (int attempt = 0; attempt < 64; ++attempt) {
    const ASN1_BIT_STRING* sig = nullptr;
    X509_REQ_get0_signature(req.get(), &sig, nullptr);
    if (sig && ASN1_STRING_length(sig) == 72) break;
    if (!X509_REQ_sign(req.get(), key.get(), EVP_sha256())) return Error(Errc::io_error, last_ssl_error("signing a CSR"));
  }
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  return bio_string(bio.get());
}

Result<CsrInfo> parse_csr(std::string_view pem) {
  if (pem.size() > pem_bytes_max) return Error(Errc::invalid_argument, "CSR PEM too large");
  auto bio = read_bio(pem);
  bssl::UniquePtr<X509_REQ> req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) return bad("parsing a CSR");
  CsrInfo info;
  info.public_key.reset(X509_REQ_get_pubkey(req.get()));
  if (!info.public_key || X509_REQ_verify(req.get(), info.public_key.get()) != 1)
    return bad("CSR signature does not verify");
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req.get());
  for (size_t i = 0; exts && i < sk_X509_EXTENSION_num(exts); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) continue;
    bssl::UniquePtr<GENERAL_NAMES> names(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext)));
    info.uri_sans = uri_names(names.get());
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  return info;
}

Result<Identity> verify_chain(const std::vector<Certificate>& chain, const std::vector<Certificate>& roots,
                              WallTime now) {
  if (chain.empty()) return Error(Errc::invalid_argument, "an empty certificate chain");
  if (roots.empty()) return Error(Errc::invalid_argument, "no trust roots to verify against");
  bssl::UniquePtr<X509_STORE> store(X509_STORE_new());
  bssl::UniquePtr<STACK_OF(X509)> rest(sk_X509_new_null());
  if (!store || !rest) return Error(Errc::io_error, "out of memory");
  for (const Certificate& r : roots) {
    if (!X509_STORE_add_cert(store.get(), r.get())) return Error(Errc::invalid_argument, "a trust root cannot be used");
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    if (!bssl::PushToStack(rest.get(), bssl::UpRef(chain[i].get()))) return Error(Errc::io_error, "out of memory");
  }
  bssl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!ctx || !X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), rest.get())) {
    return Error(Errc::io_error, "cannot set up chain verification");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, time_t(to_unix_seconds(now)));
  if (X509_verify_cert(ctx.get()) != 1) {
    return Error(Errc::invalid_argument,
                 std::string("the chain does not verify: ") + X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  }
  return chain[0].identity();
}

}  // namespace zt::tls
