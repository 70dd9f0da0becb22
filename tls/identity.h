// SPIFFE workload identities as Istio uses them:
// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
//
//   auto id = Identity::parse("spiffe://cluster.local/ns/default/sa/bookinfo");
//   id->trust_domain();          // "cluster.local"
//   id->to_string();             // the URI again
//   id->without_scheme();        // "cluster.local/ns/default/sa/bookinfo" (RBAC principals)
#pragma once

#include <compare>
#include <string>
#include <string_view>

#include "io/result.h"

namespace zt::tls {

class Identity {
 public:
  // The longest identity we accept; a URI SAN longer than this is malformed.
  static constexpr size_t uri_bytes_max = 2048;

  Identity(std::string trust_domain, std::string ns, std::string service_account);
  static Result<Identity> parse(std::string_view uri);

  const std::string& trust_domain() const { return trust_domain_; }
  const std::string& ns() const { return ns_; }
  const std::string& service_account() const { return service_account_; }
  std::string to_string() const;
  std::string without_scheme() const;

  auto operator<=>(const Identity&) const = default;
  bool operator==(const Identity&) const = default;

 private:
  std::string trust_domain_, ns_, service_account_;
};

// True for a DNS-style trust domain (lowercase letters, digits, '.', '-', '_').
bool valid_trust_domain(std::string_view td);

}  // namespace zt::tls
