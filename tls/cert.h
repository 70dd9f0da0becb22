// Keys, certificates, chains and CSRs for workload identities (ECDSA P-256,
// SHA-256, SPIFFE URI SANs), parsed and emitted as PEM.
//
//   auto key = KeyPair::generate();
//   auto csr = make_csr(*key, id);                 // PEM, URI SAN only, no CN
//   auto chain = parse_pem_chain(ca_response);     // leaf first, roots last
//   Result<Identity> who = (*chain)[0].identity(); // the first URI SAN
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/result.h"
#include "io/time.h"
#include "tls/boringssl.h"
#include "tls/identity.h"

namespace zt::tls {

// The largest PEM input we parse (a chain of a few certificates is ~5 KiB).
inline constexpr size_t pem_bytes_max = 1 << 20;

class KeyPair {
 public:
  static Result<KeyPair> generate();  // ECDSA P-256
  static Result<KeyPair> from_pem(std::string_view pem);
  std::string to_pem() const;  // PKCS#8
  EVP_PKEY* get() const { return key_.get(); }

 private:
  explicit KeyPair(bssl::UniquePtr<EVP_PKEY> key) : key_(std::move(key)) {}
  bssl::UniquePtr<EVP_PKEY> key_;
};

class Certificate {
 public:
  explicit Certificate(bssl::UniquePtr<X509> x509) : x509_(std::move(x509)) {}
  Certificate(const Certificate& other);
  Certificate& operator=(const Certificate& other);
  Certificate(Certificate&&) = default;
  Certificate& operator=(Certificate&&) = default;

  static Result<Certificate> from_pem(std::string_view pem);  // exactly one
  static Result<Certificate> from_der(std::span<const uint8_t> der);
  std::string to_pem() const;
  std::vector<uint8_t> to_der() const;

  std::vector<std::string> uri_sans() const;
  // The identity: the first URI SAN, which must be a SPIFFE ID.
  Result<Identity> identity() const;
  WallTime not_before() const;
  WallTime not_after() const;
  bool valid_at(WallTime t) const { return t >= not_before() && t <= not_after(); }
  bool is_ca() const;
  std::string subject() const;
  X509* get() const { return x509_.get(); }

 private:
  bssl::UniquePtr<X509> x509_;
};

// Every certificate in a PEM bundle, in order; an empty bundle or any bad
// block is an error naming the block.
Result<std::vector<Certificate>> parse_pem_chain(std::string_view pem);
std::string to_pem(const std::vector<Certificate>& chain);

// A certificate signing request for `id`: its URI SAN only (no CN), signed
// with SHA-256 by `key`.
Result<std::string> make_csr(const KeyPair& key, const Identity& id);

struct CsrInfo {
  std::vector<std::string> uri_sans;
  bssl::UniquePtr<EVP_PKEY> public_key;
};
// Parses a CSR and checks its self-signature.
Result<CsrInfo> parse_csr(std::string_view pem);

// Verifies `chain` (leaf first; intermediates may follow, roots too) up to
// one of `roots` at `now`, and returns the leaf's identity; an error says
// why (expired, not yet valid, untrusted, no SPIFFE identity). For chains
// a CA hands back, before they are used; handshakes verify in TlsStream.
Result<Identity> verify_chain(const std::vector<Certificate>& chain, const std::vector<Certificate>& roots,
                              WallTime now);

// Conversions between our wall time and the seconds certificates count in.
int64_t to_unix_seconds(WallTime t);
WallTime from_unix_seconds(int64_t s);

}  // namespace zt::tls
