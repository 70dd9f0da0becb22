#include "core/mesh/rbac.h"

#include <algorithm>
#include <charconv>

namespace zt::core::mesh {

bool Cidr::contains(const IpAddr& addr) const {
  if (addr.family() != ip.family()) return false;
  const uint8_t* a = addr.data();
  const uint8_t* n = ip.data();
  unsigned full_bytes = prefix_len / 8;
  for (unsigned i = 0; i < full_bytes; ++i)
    if (a[i] != n[i]) return false;
  unsigned rest_bits = prefix_len % 8;
  if (rest_bits == 0) return true;
  uint8_t mask = uint8_t(0xff << (8 - rest_bits));
  return (a[full_bytes] & mask) == (n[full_bytes] & mask);
}

std::string Cidr::to_string() const { return ip.to_string() + "/" + std::to_string(prefix_len); }

Result<Cidr> Cidr::parse(std::string_view text) {
  size_t slash = text.find('/');
  auto ip = IpAddr::parse(text.substr(0, slash));
  if (!ip) return Error(Errc::invalid_argument, "bad CIDR '" + std::string(text) + "'");
  unsigned max_len = ip->is_v4() ? 32 : 128;
  unsigned len = max_len;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || len > max_len)
      return Error(Errc::invalid_argument, "bad CIDR prefix length in '" + std::string(text) + "'");
  }
  return Cidr{*ip, uint8_t(len)};
}

bool StringMatch::matches(std::string_view text) const {
  switch (kind) {
    case Kind::exact: return text == value;
    case Kind::prefix: return text.substr(0, value.size()) == value;
    case Kind::suffix:
      return text.size() >= value.size() && text.substr(text.size() - value.size()) == value;
    case Kind::presence: return !text.empty();
  }
  return false;
}

bool RbacMatch::empty() const {
  return namespaces.empty() && not_namespaces.empty() && principals.empty() &&
         not_principals.empty() && source_ips.empty() && not_source_ips.empty() &&
         destination_ips.empty() && not_destination_ips.empty() && destination_ports.empty() &&
         not_destination_ports.empty() && service_accounts.empty() && not_service_accounts.empty();
}

namespace {

// One field: an empty positive list passes, else some value must hit; an
// empty negative list passes, else no value may hit.
template <class T, class Pred>
bool field_matches(const std::vector<T>& positive, const std::vector<T>& negative, Pred&& hit) {
  if (!positive.empty() && std::none_of(positive.begin(), positive.end(), hit)) return false;
  if (!negative.empty() && std::any_of(negative.begin(), negative.end(), hit)) return false;
  return true;
}

// What a connection offers to the matchers.
struct Subject {
  const Connection& conn;
  std::string_view principal;  // identity without "spiffe://"; empty without identity
  std::string_view ns;         // source namespace; empty without identity
};

std::string principal_of(const Connection& conn) {
  if (!conn.src_identity) return {};
  const Identity& id = *conn.src_identity;
  return id.trust_domain + "/ns/" + id.ns + "/sa/" + id.service_account;
}

bool match_holds(const RbacMatch& m, const Subject& s) {
  const Connection& c = s.conn;
  return field_matches(m.destination_ips, m.not_destination_ips,
                       [&](const Cidr& n) { return n.contains(c.dst.ip); }) &&
         field_matches(m.source_ips, m.not_source_ips,
                       [&](const Cidr& n) { return n.contains(c.src.ip); }) &&
         field_matches(m.destination_ports, m.not_destination_ports,
                       [&](uint16_t p) { return p == c.dst.port; }) &&
         field_matches(m.service_accounts, m.not_service_accounts,
                       [&](const ServiceAccountMatch& sa) {
                         return c.src_identity && c.src_identity->ns == sa.ns &&
                                c.src_identity->service_account == sa.service_account;
                       }) &&
         // Principals are written without the scheme; a connection without an
         // identity has no principal at all, so no principal matcher hits.
         field_matches(m.principals, m.not_principals,
                       [&](const StringMatch& p) { return c.src_identity && p.matches(s.principal); }) &&
         field_matches(m.namespaces, m.not_namespaces,
                       [&](const StringMatch& n) { return n.matches(s.ns); });
}

bool clause_holds(const RbacClause& clause, const Subject& s) {
  if (clause.empty()) return true;
  return std::any_of(clause.begin(), clause.end(),
                     [&](const RbacMatch& m) { return !m.empty() && match_holds(m, s); });
}

}  // namespace

bool Authorization::matches(const Connection& conn) const { return matches(conn, principal_of(conn)); }

bool Authorization::matches(const Connection& conn, std::string_view principal) const {
  Subject s{conn, principal, conn.src_identity ? std::string_view(conn.src_identity->ns) : std::string_view()};
  return std::any_of(rules.begin(), rules.end(), [&](const RbacRule& rule) {
    return std::all_of(rule.begin(), rule.end(), [&](const RbacClause& c) { return clause_holds(c, s); });
  });
}

namespace {

// The upstream order over one set of policies (all enforced, or all).
Decision decide(std::span<const Authorization* const> policies, const Connection& conn, std::string_view principal,
               bool with_dry_run) {
  auto counts = [&](const Authorization* p) { return p && (with_dry_run || !p->dry_run); };
  Decision d;
  for (const Authorization* p : policies)
    if (counts(p) && p->action == RbacAction::deny && p->matches(conn, principal))
      return {false, Decision::Reason::deny_matched, p->key(), {}, true};
  bool any_allow = false;
  for (const Authorization* p : policies) {
    if (!counts(p) || p->action != RbacAction::allow) continue;
    any_allow = true;
    if (p->matches(conn, principal)) return {true, Decision::Reason::allow_matched, p->key(), {}, true};
  }
  if (any_allow) return {false, Decision::Reason::no_allow_matched, {}, {}, true};
  return d;
}

}  // namespace

Decision authorize(std::span<const Authorization* const> policies, const Connection& conn) {
  std::string principal = principal_of(conn);
  Decision d = decide(policies, conn, principal, false);
  bool any_dry_run = false;
  for (const Authorization* p : policies) {
    if (!p || !p->dry_run) continue;
    any_dry_run = true;
    if (p->matches(conn, principal)) d.dry_run_matched.push_back(p->key());
  }
  d.dry_run_allowed = any_dry_run ? decide(policies, conn, principal, true).allowed : d.allowed;
  return d;
}

std::string_view to_string(Decision::Reason r) {
  switch (r) {
    case Decision::Reason::no_allow_policies: return "no allow policies";
    case Decision::Reason::allow_matched: return "allow policy matched";
    case Decision::Reason::deny_matched: return "deny policy matched";
    case Decision::Reason::no_allow_matched: return "no allow policy matched";
  }
  return "?";
}

std::string_view to_string(RbacScope s) {
  switch (s) {
    case RbacScope::global: return "Global";
    case RbacScope::ns: return "Namespace";
    case RbacScope::workload_selector: return "WorkloadSelector";
  }
  return "?";
}

std::string_view to_string(RbacAction a) { return a == RbacAction::allow ? "Allow" : "Deny"; }

}  // namespace zt::core::mesh
