// The certificates the data path presents, shared by every worker: the
// control plane (core/control/control_plane.h) puts and forgets them on the
// control thread; workers read them on theirs. A miss (an identity the
// control plane does not hold yet) is reported so the control plane can
// fetch it for the next connection.
//
//   CertificateStore certs;
//   certs.on_miss([&](const std::string& id) { control.post([=] { cp.request(id); }); });
//   certs.put("spiffe://cluster.local/ns/a/sa/b", creds);      // control thread
//   auto c = certs.get("spiffe://cluster.local/ns/a/sa/b");    // any thread; null if absent
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tls/ca.h"
#include "tls/cert.h"
#include "tls/context.h"

namespace zt::app {

class CertificateStore {
 public:
  // Set before workers start; called on the asking worker's thread.
  void on_miss(std::function<void(const std::string& identity)> fn) { on_miss_ = std::move(fn); }

  void put(const std::string& identity, std::shared_ptr<const tls::Credentials> creds);
  void forget(const std::string& identity);
  void set_roots(std::vector<tls::Certificate> roots);

  std::shared_ptr<const tls::Credentials> get(const std::string& identity) const;
  std::vector<tls::Certificate> roots() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const tls::Credentials>> creds_;
  std::vector<tls::Certificate> roots_;
  std::function<void(const std::string&)> on_miss_;
};

// The fake CA (FAKE_CA=true): a new root, or with `dir` the root kept there
// (ca-cert.pem, and ca-key.pem readable by its owner only), written on first
// use into a directory created if missing. Several processes starting
// together agree on one root: files are written aside and linked into
// place, and whoever loses the race loads the winner's.
Result<tls::Ca> open_fake_ca(const std::optional<std::string>& dir, const std::string& trust_domain, Rng rng,
                             WallTime now);

}  // namespace zt::app
