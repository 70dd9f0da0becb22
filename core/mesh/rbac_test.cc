#include "core/mesh/rbac.h"

#include <gtest/gtest.h>

#include "testing/mesh_fixtures.h"

namespace zt::core::mesh {
namespace {

using namespace zt::testing;


Connection plaintext() { return {ep("127.0.0.1:1234"), ep("127.0.0.2:8080"), std::nullopt, ""}; }
Connection tls() {
  return {ep("127.0.0.1:1234"), ep("127.0.0.2:8080"), Identity{"td", "namespace", "account"}, ""};
}
Connection tls_alt() { return {ep("127.0.0.3:1234"), ep("127.0.0.4:9090"), Identity{"td-alt", "ns-alt", "sa=alt"}, ""}; }

Authorization allow(std::vector<RbacRule> rules) {
  Authorization a;
  a.name = "p";
  a.ns = "namespace";
  a.rules = std::move(rules);
  return a;
}

Authorization with_match(RbacMatch m) { return allow({{{m}}}); }

StringMatch exact(std::string s) { return {StringMatch::Kind::exact, std::move(s)}; }
Cidr cidr(std::string_view text) { return *Cidr::parse(text); }

// Expected results for plaintext, tls, tls_alt.
void expect_matches(const Authorization& a, bool plain, bool tls_result, bool alt) {
  EXPECT_EQ(a.matches(plaintext()), plain);
  EXPECT_EQ(a.matches(tls()), tls_result);
  EXPECT_EQ(a.matches(tls_alt()), alt);
}

TEST(Rbac, EmptyShapes) {
  EXPECT_FALSE(allow({}).matches(plaintext())) << "no rules never matches";
  EXPECT_TRUE(allow({{}}).matches(plaintext())) << "a rule without clauses matches";
  EXPECT_TRUE(allow({{{}}}).matches(plaintext())) << "an empty clause matches";
  EXPECT_FALSE(allow({{{RbacMatch{}}}}).matches(plaintext())) << "an empty match is skipped";
}

TEST(Rbac, FieldsPositiveAndNegative) {
  RbacMatch m;
  m.namespaces = {exact("namespace")};
  expect_matches(with_match(m), false, true, false);
  m = {};
  m.not_namespaces = {exact("namespace")};
  expect_matches(with_match(m), true, false, true);
  m = {};
  m.service_accounts = {{"namespace", "account"}};
  expect_matches(with_match(m), false, true, false);
  m = {};
  m.not_service_accounts = {{"namespace", "account"}};
  expect_matches(with_match(m), true, false, true);
  m = {};
  m.principals = {exact("td/ns/namespace/sa/account")};
  expect_matches(with_match(m), false, true, false);
  m = {};
  m.not_principals = {exact("td/ns/namespace/sa/account")};
  expect_matches(with_match(m), true, false, true);
  m = {};
  m.source_ips = {cidr("127.0.0.1/32")};
  expect_matches(with_match(m), true, true, false);
  m = {};
  m.not_source_ips = {cidr("127.0.0.1/32")};
  expect_matches(with_match(m), false, false, true);
  m = {};
  m.destination_ips = {cidr("127.0.0.2/32")};
  expect_matches(with_match(m), true, true, false);
  m = {};
  m.not_destination_ips = {cidr("127.0.0.2/32")};
  expect_matches(with_match(m), false, false, true);
  m = {};
  m.destination_ips = {cidr("127.0.0.1/24")};  // host bits ignored
  expect_matches(with_match(m), true, true, true);
  m = {};
  m.destination_ports = {8080};
  expect_matches(with_match(m), true, true, false);
  m = {};
  m.not_destination_ports = {8080};
  expect_matches(with_match(m), false, false, true);
}

TEST(Rbac, PrincipalsAreComparedWithoutScheme) {
  RbacMatch m;
  m.principals = {exact("spiffe://td/ns/namespace/sa/account")};
  EXPECT_FALSE(with_match(m).matches(tls()));
  m.principals = {{StringMatch::Kind::prefix, "td/"}};
  EXPECT_TRUE(with_match(m).matches(tls()));
  m.principals = {{StringMatch::Kind::presence, {}}};
  EXPECT_TRUE(with_match(m).matches(tls()));
  EXPECT_FALSE(with_match(m).matches(plaintext())) << "plaintext has no principal, not even for presence";
  m.principals = {{StringMatch::Kind::prefix, ""}};
  EXPECT_FALSE(with_match(m).matches(plaintext()));
}

TEST(Rbac, PlaintextHasTheEmptyNamespace) {
  // Upstream quirk kept on purpose: without identity the namespace is "".
  RbacMatch m;
  m.namespaces = {exact("")};
  EXPECT_TRUE(with_match(m).matches(plaintext()));
  m.namespaces = {{StringMatch::Kind::presence, {}}};
  EXPECT_FALSE(with_match(m).matches(plaintext()));
}

TEST(Rbac, StringMatchKinds) {
  struct Case { StringMatch m; std::string_view text; bool want; };
  for (const Case& c : {Case{exact("foo"), "foo", true}, {exact("foo"), "not", false}, {exact("foo"), "", false},
                        {{StringMatch::Kind::prefix, "foo"}, "foobar", true},
                        {{StringMatch::Kind::prefix, "foo"}, "notfoo", false},
                        {{StringMatch::Kind::prefix, "foo"}, "", false},
                        {{StringMatch::Kind::suffix, "foo"}, "barfoo", true},
                        {{StringMatch::Kind::suffix, "foo"}, "foonot", false},
                        {{StringMatch::Kind::suffix, "foo"}, "", false},
                        {{StringMatch::Kind::presence, {}}, "foo", true},
                        {{StringMatch::Kind::presence, {}}, "", false}})
    EXPECT_EQ(c.m.matches(c.text), c.want) << c.text;
}

TEST(Rbac, CidrsNeverCrossFamilies) {
  EXPECT_FALSE(cidr("0.0.0.0/0").contains(ip("::1")));
  EXPECT_FALSE(cidr("::/0").contains(ip("10.0.0.1")));
  EXPECT_TRUE(cidr("fd00::/8").contains(ip("fd12::1")));
  EXPECT_FALSE(cidr("fd00::/9").contains(ip("fd80::1")));
  EXPECT_TRUE(cidr("10.1.2.3/0").contains(ip("192.0.2.1")));
}

TEST(Rbac, FieldsAndValuesCombine) {
  RbacMatch m;
  m.destination_ports = {80, 8080};  // values OR
  m.namespaces = {exact("namespace")};  // fields AND
  expect_matches(with_match(m), false, true, false);
  m.not_destination_ports = {8080};  // positive and negative AND
  expect_matches(with_match(m), false, false, false);
}

TEST(Rbac, RulesOrClausesAndMatchesOr) {
  RbacMatch ns_a, ns_b, port_80;
  ns_a.namespaces = {exact("a")};
  ns_b.namespaces = {exact("b")};
  port_80.destination_ports = {80};
  Authorization nested = allow({{{ns_a, ns_b}, {port_80}}});
  auto conn = [](std::string ns, std::string dst) {
    return Connection{ep("127.0.0.1:1"), ep(dst), Identity{"td", ns, "sa"}, ""};
  };
  EXPECT_TRUE(nested.matches(conn("a", "127.0.0.2:80")));
  EXPECT_TRUE(nested.matches(conn("b", "127.0.0.2:80")));
  EXPECT_FALSE(nested.matches(conn("bad", "127.0.0.2:80")));
  EXPECT_FALSE(nested.matches(conn("b", "127.0.0.2:12345")));
  Authorization rules = allow({{{ns_a}}, {{ns_b}}});
  EXPECT_TRUE(rules.matches(conn("a", "127.0.0.2:1")));
  EXPECT_TRUE(rules.matches(conn("b", "127.0.0.2:1")));
  EXPECT_FALSE(rules.matches(conn("c", "127.0.0.2:1")));
  Authorization skip_empty = allow({{{RbacMatch{}, ns_a}}});
  EXPECT_TRUE(skip_empty.matches(conn("a", "127.0.0.2:1")));
  EXPECT_FALSE(skip_empty.matches(conn("c", "127.0.0.2:1")));
}

Authorization named(std::string name, RbacAction action, std::vector<RbacRule> rules, bool dry_run = false) {
  Authorization a = allow(std::move(rules));
  a.name = std::move(name);
  a.action = action;
  a.dry_run = dry_run;
  return a;
}

TEST(Authorize, UpstreamOrder) {
  RbacMatch port_8080;
  port_8080.destination_ports = {8080};
  Authorization deny_8080 = named("deny", RbacAction::deny, {{{port_8080}}});
  Authorization allow_all = named("allow", RbacAction::allow, {{}});
  Authorization allow_none = named("allow-none", RbacAction::allow, {});

  std::vector<const Authorization*> none;
  Decision d = authorize(none, tls());
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.reason, Decision::Reason::no_allow_policies);

  std::vector<const Authorization*> both = {&allow_all, &deny_8080};
  d = authorize(both, tls());
  EXPECT_FALSE(d.allowed) << "deny wins whatever the order";
  EXPECT_EQ(d.policy, "namespace/deny");
  d = authorize(both, tls_alt());
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.reason, Decision::Reason::allow_matched);
  EXPECT_EQ(d.policy, "namespace/allow");

  std::vector<const Authorization*> unmatched_allow = {&allow_none, nullptr};
  d = authorize(unmatched_allow, tls());
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, Decision::Reason::no_allow_matched);

  std::vector<const Authorization*> only_deny = {&deny_8080};
  EXPECT_TRUE(authorize(only_deny, tls_alt()).allowed) << "a deny policy alone does not make allow-lists";
}

TEST(Authorize, DryRunIsReportedNotEnforced) {
  Authorization deny_all = named("deny-dry", RbacAction::deny, {{}}, true);
  Authorization allow_none = named("allow-dry", RbacAction::allow, {}, true);
  std::vector<const Authorization*> policies = {&deny_all};
  Decision d = authorize(policies, tls());
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(d.dry_run_allowed);
  EXPECT_EQ(d.dry_run_matched, std::vector<std::string>{"namespace/deny-dry"});
  // A dry-run ALLOW does not turn the enforced set into an allow-list.
  policies = {&allow_none};
  d = authorize(policies, tls());
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.reason, Decision::Reason::no_allow_policies);
  EXPECT_FALSE(d.dry_run_allowed);
}

}  // namespace
}  // namespace zt::core::mesh
