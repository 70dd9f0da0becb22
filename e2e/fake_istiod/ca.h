// The fake istiod's certificate authority, on OpenSSL 3 (never BoringSSL:
// the two cannot share a process, and this binary links gRPC, which links
// OpenSSL). ECDSA P-256 roots, self-signed; leaves for SPIFFE identities
// from CSRs; istiod's own TLS server certificate; root rotation.
//
//   FakeCa ca(std::chrono::hours(24 * 365 * 10));
//   write_file(dir + "/root-cert.pem", ca.trust_bundle_pem());
//   FakeCa::KeyAndChain server = ca.issue_server("istiod.istio-system.svc", "127.0.0.1");
//   auto chain = ca.sign_csr(csr_pem, "spiffe://cluster.local/ns/a/sa/b", std::chrono::hours(24));
//   // chain->at(0): the leaf (PEM), chain->back(): the root that signed it
//
// Thread-safe: gRPC handlers sign while the admin endpoint rotates.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace zt::e2e::fake_istiod {

// A signing failure the caller reports to its client (a bad CSR, no
// identity), as text.
struct CaError {
  std::string detail;
};

class FakeCa {
 public:
  using Seconds = std::chrono::seconds;

  explicit FakeCa(Seconds root_lifetime);
  ~FakeCa();
  FakeCa(const FakeCa&) = delete;
  FakeCa& operator=(const FakeCa&) = delete;

  // Every root currently trusted, concatenated PEM, oldest first (the
  // newest root is the last certificate).
  std::string trust_bundle_pem() const;
  // How many roots the bundle holds; the number of the newest (1, 2, ...).
  size_t trusted_roots() const;
  int newest_root_number() const;

  struct KeyAndChain {
    std::string key_pem;
    std::string chain_pem;  // the server certificate only
  };
  // A TLS server certificate signed by the newest root: DNS SAN `dns_name`,
  // IP SAN `ip` (IPv4 or IPv6 text), valid as long as the root.
  KeyAndChain issue_server(const std::string& dns_name, const std::string& ip);

  // Signs a PEM CSR (its self-signature is checked) for `identity` (a URI
  // SAN, the only name the leaf carries) when given, else for the CSR's own
  // URI SAN. Valid from a minute ago (clock skew) for `lifetime`. Returns
  // [leaf PEM, root PEM].
  struct Signed {
    std::vector<std::string> chain;
    std::string identity;
  };
  std::variant<Signed, CaError> sign_csr(const std::string& csr_pem, const std::optional<std::string>& identity,
                                         Seconds lifetime);

  // A new root signs from now on; the old ones stay trusted.
  void rotate();
  // Only the newest root stays trusted.
  void drop_old_roots();

 private:
  struct Root;
  std::unique_ptr<Root> make_root(int number) const;

  const Seconds root_lifetime_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Root>> roots_;  // oldest first; back() signs
  int next_root_number_ = 1;
};

}  // namespace zt::e2e::fake_istiod
