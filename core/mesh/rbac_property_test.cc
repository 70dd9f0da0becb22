// Property: the authorization evaluator agrees with a small reference model,
// written separately from rbac.cc (bitwise CIDRs, std::string matching, a
// counting formulation), on random policies and connections drawn from a
// small universe so that matches and misses are both common.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "core/mesh/rbac.h"

namespace zt::core::mesh {
namespace {

const std::vector<std::string> kWords = {"", "a", "ab", "b", "td", "td/ns/a/sa/x", "ns/a", "x"};
const std::vector<std::string> kIps = {"10.0.0.0", "10.0.0.1", "10.0.1.1", "192.168.0.1", "fd00::1", "fd00::ff"};

rc::Gen<std::string> word() { return rc::gen::elementOf(kWords); }

rc::Gen<StringMatch> string_match() {
  return rc::gen::exec([] {
    auto kind = *rc::gen::element(StringMatch::Kind::exact, StringMatch::Kind::prefix, StringMatch::Kind::suffix,
                                  StringMatch::Kind::presence);
    return StringMatch{kind, kind == StringMatch::Kind::presence ? "" : *word()};
  });
}

rc::Gen<Cidr> cidr() {
  return rc::gen::exec([] {
    IpAddr ip = *IpAddr::parse(*rc::gen::elementOf(kIps));
    int max_len = ip.is_v4() ? 32 : 128;
    return Cidr{ip, uint8_t(*rc::gen::inRange(0, max_len + 1))};
  });
}

template <class T>
std::vector<T> one_or_two(rc::Gen<T> g) {
  return *rc::gen::container<std::vector<T>>(size_t(*rc::gen::inRange(1, 3)), g);
}

// A match sets only one or two of its twelve fields, so that it matches a
// fair share of connections (every set field must hold).
rc::Gen<RbacMatch> rbac_match() {
  return rc::gen::exec([] {
    RbacMatch m;
    auto ports = rc::gen::element<uint16_t>(79, 80, 81);
    auto accounts = rc::gen::exec([] { return ServiceAccountMatch{*word(), *rc::gen::element<std::string>("x", "y")}; });
    int fields = *rc::gen::weightedElement<int>({{1, 0}, {6, 1}, {3, 2}});
    for (int i = 0; i < fields; ++i) {
      switch (*rc::gen::inRange(0, 12)) {
        case 0: m.namespaces = one_or_two(string_match()); break;
        case 1: m.not_namespaces = one_or_two(string_match()); break;
        case 2: m.principals = one_or_two(string_match()); break;
        case 3: m.not_principals = one_or_two(string_match()); break;
        case 4: m.source_ips = one_or_two(cidr()); break;
        case 5: m.not_source_ips = one_or_two(cidr()); break;
        case 6: m.destination_ips = one_or_two(cidr()); break;
        case 7: m.not_destination_ips = one_or_two(cidr()); break;
        case 8: m.destination_ports = one_or_two(ports); break;
        case 9: m.not_destination_ports = one_or_two(ports); break;
        case 10: m.service_accounts = one_or_two(accounts); break;
        default: m.not_service_accounts = one_or_two(accounts); break;
      }
    }
    return m;
  });
}

rc::Gen<Authorization> policy(int index) {
  return rc::gen::exec([index] {
    Authorization a;
    a.name = "p" + std::to_string(index);
    a.ns = "ns";
    a.action = *rc::gen::element(RbacAction::allow, RbacAction::deny);
    a.dry_run = *rc::gen::weightedElement<bool>({{4, false}, {1, true}});
    int rules = *rc::gen::inRange(0, 3);
    for (int r = 0; r < rules; ++r) {
      RbacRule rule;
      int clauses = *rc::gen::inRange(0, 3);
      for (int c = 0; c < clauses; ++c)
        rule.push_back(*rc::gen::container<RbacClause>(size_t(*rc::gen::inRange(0, 3)), rbac_match()));
      a.rules.push_back(rule);
    }
    return a;
  });
}

rc::Gen<Connection> connection() {
  return rc::gen::exec([] {
    Connection c;
    c.src = {*IpAddr::parse(*rc::gen::elementOf(kIps)), 40000};
    c.dst = {*IpAddr::parse(*rc::gen::elementOf(kIps)), *rc::gen::element<uint16_t>(79, 80, 81)};
    if (*rc::gen::arbitrary<bool>())
      c.src_identity = Identity{*rc::gen::element<std::string>("td", "cluster.local"), *word(),
                                *rc::gen::element<std::string>("x", "y")};
    return c;
  });
}

// ---- The reference model ----

bool ref_bit(const IpAddr& ip, int i) { return (ip.data()[i / 8] >> (7 - i % 8)) & 1; }

bool ref_in(const Cidr& c, const IpAddr& ip) {
  if (c.ip.is_v4() != ip.is_v4()) return false;
  for (int i = 0; i < c.prefix_len; ++i)
    if (ref_bit(c.ip, i) != ref_bit(ip, i)) return false;
  return true;
}

bool ref_str(const StringMatch& m, const std::string& s) {
  switch (m.kind) {
    case StringMatch::Kind::exact: return s == m.value;
    case StringMatch::Kind::prefix: return s.starts_with(m.value);
    case StringMatch::Kind::suffix: return s.ends_with(m.value);
    case StringMatch::Kind::presence: return s.size() > 0;
  }
  return false;
}

// A field passes when (no positives or one hits) and no negative hits.
template <class T, class F>
bool ref_field(const std::vector<T>& pos, const std::vector<T>& neg, F hit) {
  size_t pos_hits = 0, neg_hits = 0;
  for (const T& v : pos) pos_hits += hit(v) ? 1 : 0;
  for (const T& v : neg) neg_hits += hit(v) ? 1 : 0;
  return (pos.empty() || pos_hits > 0) && neg_hits == 0;
}

bool ref_match(const RbacMatch& m, const Connection& c) {
  std::string principal, ns;
  if (c.src_identity) {
    principal = c.src_identity->trust_domain + "/ns/" + c.src_identity->ns + "/sa/" + c.src_identity->service_account;
    ns = c.src_identity->ns;
  }
  bool has_id = c.src_identity.has_value();
  return ref_field(m.namespaces, m.not_namespaces, [&](const StringMatch& s) { return ref_str(s, ns); }) &&
         ref_field(m.principals, m.not_principals, [&](const StringMatch& s) { return has_id && ref_str(s, principal); }) &&
         ref_field(m.source_ips, m.not_source_ips, [&](const Cidr& n) { return ref_in(n, c.src.ip); }) &&
         ref_field(m.destination_ips, m.not_destination_ips, [&](const Cidr& n) { return ref_in(n, c.dst.ip); }) &&
         ref_field(m.destination_ports, m.not_destination_ports, [&](uint16_t p) { return p == c.dst.port; }) &&
         ref_field(m.service_accounts, m.not_service_accounts, [&](const ServiceAccountMatch& sa) {
           return has_id && sa.ns == c.src_identity->ns && sa.service_account == c.src_identity->service_account;
         });
}

bool ref_policy(const Authorization& a, const Connection& c) {
  for (const RbacRule& rule : a.rules) {
    size_t failing_clauses = 0;
    for (const RbacClause& clause : rule) {
      size_t hits = 0;
      for (const RbacMatch& m : clause) hits += (m != RbacMatch{} && ref_match(m, c)) ? 1 : 0;
      if (!clause.empty() && hits == 0) ++failing_clauses;
    }
    if (failing_clauses == 0) return true;
  }
  return false;
}

struct RefDecision {
  bool allowed;
  std::string policy;
};

RefDecision ref_authorize(const std::vector<Authorization>& policies, const Connection& c, bool with_dry_run) {
  std::vector<const Authorization*> live;
  for (const Authorization& a : policies)
    if (with_dry_run || !a.dry_run) live.push_back(&a);
  for (const Authorization* a : live)
    if (a->action == RbacAction::deny && ref_policy(*a, c)) return {false, a->key()};
  size_t allows = 0;
  for (const Authorization* a : live) {
    if (a->action != RbacAction::allow) continue;
    ++allows;
    if (ref_policy(*a, c)) return {true, a->key()};
  }
  return {allows == 0, ""};
}

RC_GTEST_PROP(RbacProperty, EvaluatorAgreesWithReferenceModel, ()) {
  int count = *rc::gen::inRange(1, 5);
  std::vector<Authorization> policies;
  for (int i = 0; i < count; ++i) policies.push_back(*policy(i));
  std::vector<const Authorization*> ptrs;
  for (const Authorization& a : policies) ptrs.push_back(&a);
  // Many connections per policy set: cheap, and most sets both allow and deny some.
  auto conns = *rc::gen::container<std::vector<Connection>>(20, connection());
  size_t allowed = 0;
  for (const Connection& conn : conns) {
    Decision got = authorize(ptrs, conn);
    RefDecision want = ref_authorize(policies, conn, false);
    RC_ASSERT(got.allowed == want.allowed);
    RC_ASSERT(got.policy == want.policy);
    RC_ASSERT(got.dry_run_allowed == ref_authorize(policies, conn, true).allowed);
    for (const Authorization& a : policies) RC_ASSERT(a.matches(conn) == ref_policy(a, conn));
    allowed += got.allowed ? 1 : 0;
  }
  RC_CLASSIFY(allowed == 0, "all denied");
  RC_CLASSIFY(allowed == conns.size(), "all allowed");
  RC_CLASSIFY(allowed > 0 && allowed < conns.size(), "mixed");
}

RC_GTEST_PROP(RbacProperty, CidrContainmentMatchesBitwiseModel, ()) {
  Cidr c = *cidr();
  IpAddr probe = *IpAddr::parse(*rc::gen::elementOf(kIps));
  RC_ASSERT(c.contains(probe) == ref_in(c, probe));
  RC_ASSERT(c.contains(c.ip));
}

}  // namespace
}  // namespace zt::core::mesh
