// A small certificate authority for local mode (FAKE_CA=true), tests and the
// simulator: a self-signed ECDSA P-256 root that signs workload CSRs for an
// identity and a lifetime, and can rotate to a new root while the old one
// stays trusted until it is dropped.
//
//   auto ca = Ca::create(CaOptions{}, rng, clock.wall_now());
//   auto issued = ca->issue(id, std::chrono::hours(24), clock.wall_now());
//   issued->chain;         // leaf first, root last
//   ca->trust_bundle();    // every root currently trusted
#pragma once

#include <string>
#include <vector>

#include "io/rng.h"
#include "tls/cert.h"

namespace zt::tls {

struct CaOptions {
  std::string trust_domain = "cluster.local";
  Duration root_lifetime = std::chrono::hours(24 * 365 * 10);
  // Certificates issued before `now` by this much, so a peer whose clock is
  // a little behind still accepts them.
  Duration backdate = std::chrono::minutes(1);
  // Re-sign until each ECDSA signature has the same DER length, so the sizes
  // of certificates (and so of handshakes) do not vary from run to run. Only
  // the simulator wants this: its trace hashes I/O sizes.
  bool pin_signature_sizes = false;
};

struct Issued {
  KeyPair key;
  std::vector<Certificate> chain;  // leaf, then the root that signed it
};

class Ca {
 public:
  static Result<Ca> create(CaOptions options, Rng rng, WallTime now);
  // A CA around an existing root (several local-mode processes sharing one
  // root). The certificate must be a CA certificate for `key`.
  static Result<Ca> from_root(CaOptions options, Rng rng, KeyPair key, Certificate cert);

  // Signs a CSR for `id`. A URI SAN in the CSR must equal `id`.
  Result<std::vector<Certificate>> sign_csr(std::string_view csr_pem, const Identity& id, Duration lifetime,
                                            WallTime now);
  // Generates a key and issues a certificate for it (local mode, tests).
  Result<Issued> issue(const Identity& id, Duration lifetime, WallTime now);
  // A server certificate for DNS names (istiod's serving certificate, in
  // the simulated istiod and tests).
  Result<Issued> issue_for_dns(const std::vector<std::string>& names, Duration lifetime, WallTime now);
  // Issues with an explicit validity window (tests of expiry).
  Result<Issued> issue_between(const Identity& id, WallTime not_before, WallTime not_after);

  // Starts signing with a new root; the old ones stay in the trust bundle.
  Result<void> rotate(WallTime now);
  // Drops every root but the current one from the trust bundle.
  void drop_old_roots();
  std::vector<Certificate> trust_bundle() const;
  const Certificate& root() const { return roots_.back().cert; }
  const KeyPair& root_key() const { return roots_.back().key; }
  const CaOptions& options() const { return options_; }

 private:
  struct Root {
    KeyPair key;
    Certificate cert;
  };
  Ca(CaOptions options, Rng rng) : options_(std::move(options)), rng_(rng) {}
  Result<Root> make_root(WallTime now);
  Result<Certificate> sign_leaf(EVP_PKEY* subject_key, const Identity& id, WallTime not_before, WallTime not_after);
  Result<Certificate> sign_leaf_san(EVP_PKEY* subject_key, const std::string& san, WallTime not_before,
                                    WallTime not_after);

  CaOptions options_;
  Rng rng_;
  std::vector<Root> roots_;  // oldest first; the last one signs
};

// Signs x509 with key (ECDSA, SHA-256); with `pin`, re-signs until the
// signature has its most common full length (72 bytes of DER for P-256).
bool sign_certificate(X509* x509, EVP_PKEY* key, bool pin);

}  // namespace zt::tls
