// Workload certificates for local mode (FAKE_CA=true): the built-in CA
// issues each workload identity its certificate on first use and keeps it.
// Every data-plane worker asks for certificates, so access is locked; a
// certificate is issued once per identity, not once per worker.
//
//   LocalCertificates certs(cfg.secret_ttl, std::move(ca));
//   auto creds = certs.for_identity("spiffe://cluster.local/ns/a/sa/b", now);
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tls/ca.h"
#include "tls/context.h"

namespace zt::app {

class LocalCertificates {
 public:
  LocalCertificates(Duration ttl, tls::Ca ca) : ttl_(ttl), ca_(std::move(ca)) {}

  // Null when `spiffe` is not an identity of this trust domain.
  std::shared_ptr<const tls::Credentials> for_identity(const std::string& spiffe, WallTime now) {
    std::lock_guard lock(mu_);
    auto it = creds_.find(spiffe);
    if (it != creds_.end()) return it->second;
    auto id = tls::Identity::parse(spiffe);
    if (!id) return nullptr;
    auto issued = ca_.issue(*id, ttl_, now);
    if (!issued) return nullptr;
    auto c = std::make_shared<tls::Credentials>(tls::Credentials{std::move(issued->chain), std::move(issued->key)});
    creds_.emplace(spiffe, c);
    return c;
  }

  std::vector<tls::Certificate> roots() const {
    std::lock_guard lock(mu_);
    return ca_.trust_bundle();
  }

  // Identity -> its chain (leaf first), for /config_dump.
  std::map<std::string, std::vector<tls::Certificate>> issued() const {
    std::lock_guard lock(mu_);
    std::map<std::string, std::vector<tls::Certificate>> out;
    for (const auto& [id, c] : creds_) out.emplace(id, c->chain);
    return out;
  }

 private:
  const Duration ttl_;
  mutable std::mutex mu_;
  tls::Ca ca_;
  std::map<std::string, std::shared_ptr<const tls::Credentials>> creds_;
};

// The fake CA: a new root, or with `dir` the root kept there (ca-cert.pem
// and ca-key.pem), written on first use. Two processes starting together
// agree on one root: files are written aside and linked into place, and
// whoever loses the race loads the winner's.
Result<tls::Ca> open_fake_ca(const std::optional<std::string>& dir, const std::string& trust_domain, Rng rng,
                             WallTime now);

}  // namespace zt::app
