// L4 authorization with upstream ztunnel's exact semantics: which policies
// apply to a destination, and whether one connection is allowed.
//
// Rules are ORed, clauses in a rule ANDed, matches in a clause ORed, fields
// in a match ANDed (positives must hit, negatives must miss). No rules never
// matches; an empty match is skipped; an empty clause matches. Order: any
// DENY match denies; else no ALLOW policy allows; else any ALLOW match allows;
// else deny. Dry-run policies are evaluated and reported, never enforced.
//
//   Connection c{src, dst, identity, "net"};
//   Decision d = authorize(snapshot.policies_for(dst_workload), c);
//   if (!d.allowed) log("denied", d.policy);   // d.policy: deciding policy key
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/mesh/model.h"
#include "io/address.h"

namespace zt::core::mesh {

struct Cidr {
  IpAddr ip;
  uint8_t prefix_len = 0;  // <= 32 (v4) or 128 (v6), checked at validation

  // False across families, as upstream (an IPv4 CIDR never holds an IPv6 address).
  bool contains(const IpAddr& addr) const;
  std::string to_string() const;  // "10.0.0.0/8"
  static Result<Cidr> parse(std::string_view text);  // "ip/len" or "ip" (host route)
  bool operator==(const Cidr&) const = default;
};

struct StringMatch {
  enum class Kind : uint8_t { exact, prefix, suffix, presence };
  Kind kind = Kind::exact;
  std::string value;  // unused for presence

  bool matches(std::string_view text) const;
  bool operator==(const StringMatch&) const = default;
};

struct ServiceAccountMatch {
  std::string ns;
  std::string service_account;
  bool operator==(const ServiceAccountMatch&) const = default;
};

struct RbacMatch {
  std::vector<StringMatch> namespaces, not_namespaces;
  std::vector<StringMatch> principals, not_principals;
  std::vector<Cidr> source_ips, not_source_ips;
  std::vector<Cidr> destination_ips, not_destination_ips;
  std::vector<uint16_t> destination_ports, not_destination_ports;
  std::vector<ServiceAccountMatch> service_accounts, not_service_accounts;

  bool empty() const;
  bool operator==(const RbacMatch&) const = default;
};

using RbacClause = std::vector<RbacMatch>;  // ORed
using RbacRule = std::vector<RbacClause>;   // ANDed

enum class RbacScope : uint8_t { global, ns, workload_selector };
enum class RbacAction : uint8_t { allow, deny };

// The connection as authorization sees it.
struct Connection {
  Endpoint src;
  Endpoint dst;
  std::optional<Identity> src_identity;  // none for plaintext
  std::string dst_network;
};

struct Authorization {
  std::string name;
  std::string ns;
  RbacScope scope = RbacScope::global;
  RbacAction action = RbacAction::allow;
  std::vector<RbacRule> rules;  // ORed
  bool dry_run = false;

  std::string key() const { return ns + "/" + name; }
  bool matches(const Connection& conn) const;
  // Same, with the source principal ("td/ns/x/sa/y", no scheme) computed
  // once by the caller: authorize() checks many policies per connection.
  bool matches(const Connection& conn, std::string_view principal) const;
  bool operator==(const Authorization&) const = default;
};

struct Decision {
  enum class Reason : uint8_t {
    no_allow_policies,  // allowed: nothing denied and no ALLOW policy applies
    allow_matched,      // allowed by `policy`
    deny_matched,       // denied by `policy`
    no_allow_matched,   // denied: ALLOW policies apply but none matched
  };
  bool allowed = true;
  Reason reason = Reason::no_allow_policies;
  std::string policy;  // key of the deciding policy, empty when none decided
  // Dry-run: the dry-run policies that matched, and the verdict had they been
  // enforced alongside the others.
  std::vector<std::string> dry_run_matched;
  bool dry_run_allowed = true;
};

std::string_view to_string(Decision::Reason r);
std::string_view to_string(RbacScope s);
std::string_view to_string(RbacAction a);

// Evaluates the given applicable policies (see StateSnapshot::policies_for)
// in upstream order. Null entries are skipped (a workload may name a policy
// the control plane has not sent yet).
Decision authorize(std::span<const Authorization* const> policies, const Connection& conn);

}  // namespace zt::core::mesh
