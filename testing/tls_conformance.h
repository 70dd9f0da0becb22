// The TLS conformance suite: the handshake, data both ways, the negative
// matrix (each case asserting its classified failure) and root rotation, on
// io/sim (sim-tests/tls_conformance_sim_test.cc) and on real loopback
// (e2e/tls_conformance_real_test.cc), IPv4 and IPv6.
#pragma once

#include <gtest/gtest.h>

#include "testing/tls_test_util.h"

namespace zt::testing {

using tls::TlsFailure;

template <class H>
class TlsConformance : public ::testing::Test {
 protected:
  static constexpr Duration kLimit = std::chrono::seconds(30);

  TlsWorld& world() {
    if (!w_) w_.emplace(h.client().clock.wall_now());
    return *w_;
  }
  TlsPair connect(std::shared_ptr<const TlsContext> client, std::shared_ptr<const TlsContext> server) {
    TlsPair pair;
    EXPECT_TRUE(h.run(connect_pair(h, std::move(client), std::move(server), pair), kLimit));
    return pair;
  }
  // A CA of its own (not trusted by the default contexts).
  Ca other_ca(const char* trust_domain = "cluster.local") {
    CaOptions opts;
    opts.trust_domain = trust_domain;
    return *Ca::create(opts, Rng(99), h.client().clock.wall_now());
  }
  WallTime now() { return h.client().clock.wall_now(); }

  H h;
  std::optional<TlsWorld> w_;
};

TYPED_TEST_SUITE_P(TlsConformance);

TYPED_TEST_P(TlsConformance, MutualHandshakeThenDataBothWaysAndCloseNotify) {
  auto& w = this->world();
  TlsPair p = this->connect(w.client(), w.server());
  ASSERT_TRUE(p.client_hs) << p.client_hs.error().message();
  ASSERT_TRUE(p.server_hs) << p.server_hs.error().message();
  EXPECT_EQ(p.client->peer_identity()->to_string(), "spiffe://cluster.local/ns/default/sa/server");
  EXPECT_EQ(p.server->peer_identity()->to_string(), "spiffe://cluster.local/ns/default/sa/client");
  EXPECT_EQ(p.client->version(), "TLSv1.3");
  EXPECT_NE(p.client->cipher().find("AES_128_GCM"), std::string::npos) << p.client->cipher();
  const auto up = testing::pattern(700000, 1), down = testing::pattern(300000, 2);
  testing::ReadAll at_server, at_client;
  ASSERT_TRUE(this->h.run(
      all([](Stream& s, const std::vector<uint8_t>& d) -> Task<void> {
            EXPECT_TRUE(co_await io::write_all(s, d));
            EXPECT_TRUE(s.shutdown_write());  // close_notify
          }(*p.client, up),
          [](Stream& s, const std::vector<uint8_t>& d) -> Task<void> {
            EXPECT_TRUE(co_await io::write_all(s, d));
            EXPECT_TRUE(s.shutdown_write());
          }(*p.server, down),
          [](Stream& s, testing::ReadAll& out) -> Task<void> { out = co_await testing::read_all(s); }(*p.server, at_server),
          [](Stream& s, testing::ReadAll& out) -> Task<void> { out = co_await testing::read_all(s); }(*p.client, at_client)),
      TestFixture::kLimit));
  EXPECT_TRUE(at_server.end.ok() && *at_server.end == 0) << "close_notify reads as a clean EOF";
  EXPECT_TRUE(at_server.bytes == up);
  EXPECT_TRUE(at_client.end.ok() && *at_client.end == 0);
  EXPECT_TRUE(at_client.bytes == down);
}

TYPED_TEST_P(TlsConformance, ClientFromAnotherTrustDomainIsRefused) {
  auto& w = this->world();
  Ca foreign = this->other_ca("other.domain");
  auto creds = credentials(*foreign.issue(test_identity("client", "other.domain"), std::chrono::hours(1), this->now()));
  TlsConfig server_cfg = w.config(TlsRole::server, w.server_creds);
  server_cfg.roots.push_back(foreign.root());  // trusted, but the wrong trust domain
  TlsConfig client_cfg = w.config(TlsRole::client, creds);
  TlsPair p = this->connect(w.context(client_cfg), w.context(server_cfg));
  ASSERT_FALSE(p.server_hs);
  EXPECT_EQ(p.server->failure(), TlsFailure::trust_domain_mismatch) << p.server_hs.error().message();
}

TYPED_TEST_P(TlsConformance, ServerIdentityOutsideTheExpectedSetIsRefused) {
  auto& w = this->world();
  TlsConfig client_cfg = w.config(TlsRole::client, w.client_creds);
  client_cfg.expected_identities = {test_identity("somebody-else")};
  TlsPair p = this->connect(w.context(client_cfg), w.server());
  ASSERT_FALSE(p.client_hs);
  EXPECT_EQ(p.client->failure(), TlsFailure::identity_mismatch) << p.client_hs.error().message();
  EXPECT_FALSE(p.server_hs);  // it got the alert
  EXPECT_EQ(p.server->failure(), TlsFailure::peer_rejected);
}

TYPED_TEST_P(TlsConformance, ExpiredServerCertificateIsRefused) {
  auto& w = this->world();
  auto expired = credentials(*w.ca->issue_between(test_identity("server"), this->now() - std::chrono::hours(48),
                                                  this->now() - std::chrono::hours(24)));
  TlsPair p = this->connect(w.client(), w.context(w.config(TlsRole::server, expired)));
  ASSERT_FALSE(p.client_hs);
  EXPECT_EQ(p.client->failure(), TlsFailure::expired) << p.client_hs.error().message();
}

TYPED_TEST_P(TlsConformance, NotYetValidServerCertificateIsRefused) {
  auto& w = this->world();
  auto future = credentials(*w.ca->issue_between(test_identity("server"), this->now() + std::chrono::hours(1),
                                                 this->now() + std::chrono::hours(24)));
  TlsPair p = this->connect(w.client(), w.context(w.config(TlsRole::server, future)));
  ASSERT_FALSE(p.client_hs);
  EXPECT_EQ(p.client->failure(), TlsFailure::not_yet_valid) << p.client_hs.error().message();
}

TYPED_TEST_P(TlsConformance, ServerFromAnUntrustedRootIsRefused) {
  auto& w = this->world();
  Ca stranger = this->other_ca();
  auto creds = credentials(*stranger.issue(test_identity("server"), std::chrono::hours(1), this->now()));
  TlsConfig server_cfg = w.config(TlsRole::server, creds);
  server_cfg.roots = w.ca->trust_bundle();
  TlsPair p = this->connect(w.client(), w.context(server_cfg));
  ASSERT_FALSE(p.client_hs);
  EXPECT_EQ(p.client->failure(), TlsFailure::untrusted) << p.client_hs.error().message();
}

TYPED_TEST_P(TlsConformance, ClientWithoutCertificateIsRefused) {
  auto& w = this->world();
  TlsPair p = this->connect(w.context(w.config(TlsRole::client, nullptr)), w.server());
  ASSERT_FALSE(p.server_hs);
  EXPECT_EQ(p.server->failure(), TlsFailure::no_client_cert) << p.server_hs.error().message();
}

TYPED_TEST_P(TlsConformance, ClientWithoutH2IsRefused) {
  auto& w = this->world();
  TlsConfig client_cfg = w.config(TlsRole::client, w.client_creds);
  client_cfg.alpn = {"http/1.1"};
  TlsPair p = this->connect(w.context(client_cfg), w.server());
  ASSERT_FALSE(p.server_hs);
  EXPECT_EQ(p.server->failure(), TlsFailure::alpn) << p.server_hs.error().message();
  ASSERT_FALSE(p.client_hs);
  EXPECT_EQ(p.client->failure(), TlsFailure::alpn) << p.client_hs.error().message();
}

TYPED_TEST_P(TlsConformance, Tls12OnlyPeerIsRefusedByDefaultAndAcceptedWhenEnabled) {
  auto& w = this->world();
  TlsConfig client_cfg = w.config(TlsRole::client, w.client_creds);
  client_cfg.tls12_only = true;
  TlsPair refused = this->connect(w.context(client_cfg), w.server());
  ASSERT_FALSE(refused.server_hs);
  EXPECT_EQ(refused.server->failure(), TlsFailure::protocol_version) << refused.server_hs.error().message();
  TlsConfig lenient = w.config(TlsRole::server, w.server_creds);
  lenient.allow_tls12 = true;  // TLS12_ENABLED
  TlsPair accepted = this->connect(w.context(client_cfg), w.context(lenient));
  ASSERT_TRUE(accepted.client_hs) << accepted.client_hs.error().message();
  ASSERT_TRUE(accepted.server_hs) << accepted.server_hs.error().message();
  EXPECT_EQ(accepted.client->version(), "TLSv1.2");
  EXPECT_NE(accepted.client->cipher().find("AES_128_GCM"), std::string::npos) << accepted.client->cipher();
}

TYPED_TEST_P(TlsConformance, RootRotationAcceptsBothUntilTheOldRootIsDropped) {
  auto& w = this->world();
  auto old_leaf = credentials(*w.ca->issue(test_identity("server"), std::chrono::hours(1), this->now()));
  ASSERT_TRUE(w.ca->rotate(this->now()));
  auto new_leaf = credentials(*w.ca->issue(test_identity("server"), std::chrono::hours(1), this->now()));
  // Trust bundle with both roots: both leaves pass.
  for (auto* leaf : {&old_leaf, &new_leaf}) {
    TlsPair p = this->connect(w.client(), w.context(w.config(TlsRole::server, *leaf)));
    EXPECT_TRUE(p.client_hs) << p.client_hs.error().message();
  }
  w.ca->drop_old_roots();
  TlsConfig client_cfg = w.config(TlsRole::client, w.client_creds);  // bundle now holds the new root only
  TlsPair fresh = this->connect(w.context(client_cfg), w.context(w.config(TlsRole::server, new_leaf)));
  EXPECT_FALSE(fresh.server_hs);  // the client's own leaf came from the dropped root
  TlsPair stale = this->connect(w.context(client_cfg), w.context(w.config(TlsRole::server, old_leaf)));
  ASSERT_FALSE(stale.client_hs);
  EXPECT_EQ(stale.client->failure(), TlsFailure::untrusted);
}

TYPED_TEST_P(TlsConformance, AServerPicksItsCertificateByTheAddressCalled) {
  auto& w = this->world();
  auto other = credentials(*w.ca->issue(test_identity("other-pod"), std::chrono::hours(1), this->now()));
  TlsConfig server_cfg = w.config(TlsRole::server, nullptr);
  Endpoint asked;
  server_cfg.credentials_for = [&](const Endpoint& local) {
    asked = local;
    return other;
  };
  TlsConfig client_cfg = w.config(TlsRole::client, w.client_creds);
  client_cfg.expected_identities = {test_identity("other-pod")};
  TlsPair p = this->connect(w.context(client_cfg), w.context(server_cfg));
  ASSERT_TRUE(p.client_hs) << p.client_hs.error().message();
  EXPECT_EQ(p.client->peer_identity()->to_string(), "spiffe://cluster.local/ns/default/sa/other-pod");
  EXPECT_EQ(asked.ip, this->h.server_ip());
}

REGISTER_TYPED_TEST_SUITE_P(TlsConformance, MutualHandshakeThenDataBothWaysAndCloseNotify,
                            ClientFromAnotherTrustDomainIsRefused, ServerIdentityOutsideTheExpectedSetIsRefused,
                            ExpiredServerCertificateIsRefused, NotYetValidServerCertificateIsRefused,
                            ServerFromAnUntrustedRootIsRefused, ClientWithoutCertificateIsRefused,
                            ClientWithoutH2IsRefused, Tls12OnlyPeerIsRefusedByDefaultAndAcceptedWhenEnabled,
                            RootRotationAcceptsBothUntilTheOldRootIsDropped,
                            AServerPicksItsCertificateByTheAddressCalled);

}  // namespace zt::testing
