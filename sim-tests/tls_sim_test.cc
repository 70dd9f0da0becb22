// TLS under simulated faults: byte-at-a-time transport, a reset in the
// middle of the handshake, a peer that stops reading, a wall clock that jumps
// past a certificate's expiry, and determinism of whole handshakes.
#include <gtest/gtest.h>

#include "testing/sim_harness.h"
#include "testing/sim_writes.h"
#include "testing/tls_test_util.h"

namespace zt::sim_tests {
namespace {

using namespace zt::tls;

using namespace zt::testing;

using Harness = testing::SimHarness<IpAddr::Family::v4>;

TEST(TlsSim, OneByteReadsAndWritesCarryHandshakeAndData) {
  Harness h;
  h.world().options().faults.short_io = 1.0;
  h.world().options().window_bytes = 1;  // the transport moves one byte at a time
  TlsWorld w(h.client().clock.wall_now());
  TlsPair p;
  ASSERT_TRUE(h.run(connect_pair(h, w.client(), w.server(), p), std::chrono::minutes(10)));
  ASSERT_TRUE(p.client_hs) << p.client_hs.error().message();
  ASSERT_TRUE(p.server_hs) << p.server_hs.error().message();
  const auto up = testing::pattern(20000, 1), down = testing::pattern(9000, 2);
  testing::ReadAll at_server, at_client;
  ASSERT_TRUE(h.run(all([](Stream& s, const std::vector<uint8_t>& d) -> Task<void> {
                          EXPECT_TRUE(co_await io::write_all(s, d));
                          EXPECT_TRUE(s.shutdown_write());
                        }(*p.client, up),
                        [](Stream& s, const std::vector<uint8_t>& d) -> Task<void> {
                          EXPECT_TRUE(co_await io::write_all(s, d));
                          EXPECT_TRUE(s.shutdown_write());
                        }(*p.server, down),
                        [](Stream& s, testing::ReadAll& o) -> Task<void> { o = co_await testing::read_all(s, 1); }(
                            *p.server, at_server),
                        [](Stream& s, testing::ReadAll& o) -> Task<void> { o = co_await testing::read_all(s, 1); }(
                            *p.client, at_client)),
                    std::chrono::hours(2)));
  EXPECT_TRUE(at_server.bytes == up);
  EXPECT_TRUE(at_client.bytes == down);
  // With a one-byte window every transport write and read moved one byte:
  // the handshake and ~29 KB of records took tens of thousands of I/Os.
  EXPECT_GT(h.world().trace().records(), 100000u);
}

TEST(TlsSim, ResetInTheMiddleOfTheHandshakeFailsBothSidesAsClosed) {
  for (int side = 0; side < 2; ++side) {
    Harness h;
    h.world().reset_next_connection_at(h.client_host().id(), side, 150);  // inside ClientHello / ServerHello
    TlsWorld w(h.client().clock.wall_now());
    TlsPair p;
    ASSERT_TRUE(h.run(connect_pair(h, w.client(), w.server(), p), std::chrono::minutes(1)));
    ASSERT_FALSE(p.client_hs);
    ASSERT_FALSE(p.server_hs);
    EXPECT_EQ(p.client->failure(), TlsFailure::closed) << p.client_hs.error().message();
    EXPECT_EQ(p.server->failure(), TlsFailure::closed) << p.server_hs.error().message();
    EXPECT_EQ(p.client_hs.code(), Errc::connection_reset);
  }
}

TEST(TlsSim, AReaderThatStopsStallsTheWriterWithBoundedBuffers) {
  Harness h;
  TlsWorld w(h.client().clock.wall_now());
  TlsPair p;
  ASSERT_TRUE(h.run(connect_pair(h, w.client(), w.server(), p), std::chrono::minutes(1)));
  ASSERT_TRUE(p.client_hs && p.server_hs);
  const auto data = testing::pattern(8 << 20, 3);
  size_t written = 0;
  Scope writer;
  writer.spawn([](Stream& s, const std::vector<uint8_t>& d, size_t& written) -> Task<void> {
    while (written < d.size()) {
      auto n = co_await io::write_some(s, ConstBytes(d).subspan(written));
      if (!n) co_return;
      written += *n;
    }
  }(*p.client, data, written));
  h.idle(std::chrono::seconds(30));
  // The transport window (64 KiB) plus one user write's records (up to
  // 64 KiB) in flight, and nothing more: the writer is stalled.
  EXPECT_LE(written, h.world().options().window_bytes + 4 * 16384);
  EXPECT_LT(written, data.size());
  testing::ReadAll got;
  Scope reader;
  size_t read = 0;
  reader.spawn([](Stream& s, size_t total, size_t& read) -> Task<void> {
    std::vector<uint8_t> buf(65536);
    while (read < total) {
      auto n = co_await io::read(s, buf);
      if (!n || *n == 0) co_return;
      read += *n;
    }
  }(*p.server, data.size(), read));
  h.idle(std::chrono::minutes(5));
  EXPECT_EQ(written, data.size());
  EXPECT_EQ(read, data.size());
}

TEST(TlsSim, AWallClockJumpExpiresTheServerCertificate) {
  Harness h;
  TlsWorld w(h.client().clock.wall_now());  // certificates valid for 24 h
  h.world().jump_wall(h.client_host().id(), std::chrono::hours(25));
  TlsPair p;
  ASSERT_TRUE(h.run(connect_pair(h, w.client(), w.server(), p), std::chrono::minutes(1)));
  ASSERT_FALSE(p.client_hs);
  EXPECT_EQ(p.client->failure(), TlsFailure::expired);
  // And backwards, to before the certificates were issued.
  Harness h2;
  TlsWorld w2(h2.client().clock.wall_now());
  h2.world().jump_wall(h2.client_host().id(), -std::chrono::hours(2));
  TlsPair p2;
  ASSERT_TRUE(h2.run(connect_pair(h2, w2.client(), w2.server(), p2), std::chrono::minutes(1)));
  ASSERT_FALSE(p2.client_hs);
  EXPECT_EQ(p2.client->failure(), TlsFailure::not_yet_valid);
}

TEST(TlsSim, AVerifiedPeerChainIsRememberedUntilItExpires) {
  Harness h;
  TlsWorld w(h.client().clock.wall_now());  // certificates valid for 24 h
  auto client_ctx = w.client(), server_ctx = w.server();
  TlsPair first, second;
  ASSERT_TRUE(h.run(connect_pair(h, client_ctx, server_ctx, first), std::chrono::minutes(1)));
  ASSERT_TRUE(first.client_hs && first.server_hs);
  EXPECT_EQ(client_ctx->verified_chain_hits(), 0u);
  ASSERT_TRUE(h.run(connect_pair(h, client_ctx, server_ctx, second), std::chrono::minutes(1)));
  ASSERT_TRUE(second.client_hs && second.server_hs);
  EXPECT_EQ(client_ctx->verified_chain_hits(), 1u);  // each side verified the other's chain once
  EXPECT_EQ(server_ctx->verified_chain_hits(), 1u);
  EXPECT_EQ(*second.server->peer_identity(), test_identity("client"));
  EXPECT_EQ(*second.client->peer_identity(), test_identity("server"));

  // The remembered chain expires with its certificates: the clock moves past
  // them and the client sees `expired`, as without the cache.
  h.world().jump_wall(h.client_host().id(), std::chrono::hours(25));
  TlsPair late;
  ASSERT_TRUE(h.run(connect_pair(h, client_ctx, server_ctx, late), std::chrono::minutes(1)));
  ASSERT_FALSE(late.client_hs);
  EXPECT_EQ(late.client->failure(), TlsFailure::expired);
  EXPECT_EQ(client_ctx->verified_chain_hits(), 1u);
}

TEST(TlsSim, ARememberedChainVouchesForNoOtherCertificate) {
  Harness h;
  const WallTime now = h.client().clock.wall_now();
  TlsWorld w(now);
  auto client_ctx = w.client();
  TlsPair first;
  ASSERT_TRUE(h.run(connect_pair(h, client_ctx, w.server(), first), std::chrono::minutes(1)));
  ASSERT_TRUE(first.client_hs);
  // The same identity from another CA: not trusted, remembered chain or not.
  TlsWorld other(now, /*seed=*/2);
  TlsPair impostor;
  ASSERT_TRUE(h.run(connect_pair(h, client_ctx, other.server(), impostor), std::chrono::minutes(1)));
  ASSERT_FALSE(impostor.client_hs);
  EXPECT_EQ(impostor.client->failure(), TlsFailure::untrusted);
  // A rotated certificate of the trusted CA is verified afresh, and works.
  auto rotated = credentials(*w.ca->issue(test_identity("server"), std::chrono::hours(24), now));
  TlsPair renewed;
  ASSERT_TRUE(h.run(connect_pair(h, client_ctx, w.context(w.config(TlsRole::server, rotated)), renewed),
                    std::chrono::minutes(1)));
  ASSERT_TRUE(renewed.client_hs);
  EXPECT_EQ(client_ctx->verified_chain_hits(), 0u);
}

TEST(TlsSim, ATransportEndWithoutCloseNotifyIsNotACleanEof) {
  for (bool abortive : {false, true}) {
    Harness h;
    TlsWorld w(h.client().clock.wall_now());
    TlsPair p;
    ASSERT_TRUE(h.run(connect_pair(h, w.client(), w.server(), p), std::chrono::minutes(1)));
    ASSERT_TRUE(p.client_hs && p.server_hs);
    abortive ? p.server->abort() : p.server->close();  // no shutdown_write(): no close_notify
    testing::ReadAll got;
    ASSERT_TRUE(h.run([](Stream& s, testing::ReadAll& o) -> Task<void> { o = co_await testing::read_all(s); }(
                          *p.client, got),
                      std::chrono::minutes(1)));
    ASSERT_FALSE(got.end.ok()) << (abortive ? "abort" : "close");
    EXPECT_EQ(got.end.code(), Errc::connection_reset);
  }
}

// Certificate and signature sizes are pinned, so the same seed gives the same
// I/O sizes (and so the same trace) even though TLS randomness comes from
// BoringSSL's own generator.
uint64_t trace_of_handshakes(uint64_t seed) {
  Harness h(seed);
  h.world().options().faults.short_io = 0.3;
  TlsWorld w(h.client().clock.wall_now(), seed);
  for (int i = 0; i < 3; ++i) {
    TlsPair p;
    EXPECT_TRUE(h.run(connect_pair(h, w.client(), w.server(), p), std::chrono::minutes(1)));
    EXPECT_TRUE(p.client_hs && p.server_hs);
  }
  return h.world().trace().hash();
}

// The client's last flight (Certificate, CertificateVerify, Finished) goes
// in one send with what its handshake callback writes at once (HBONE: the
// HTTP/2 preface and first CONNECT); with nothing written it goes alone.
TEST(TlsSim, TheClientsLastFlightGoesWithItsFirstWrite) {
  for (const bool write_at_once : {true, false}) {
    SCOPED_TRACE(write_at_once ? "written at once" : "nothing written");
    Harness h;
    TlsWorld w(h.client().clock.wall_now());
    testing::SimWrites writes(h.world());
    const std::vector<uint8_t> hello = testing::pattern(100, 3);
    std::unique_ptr<TlsStream> client, server;
    bool client_done = false, server_done = false, written = false;
    ASSERT_TRUE(h.run([](Harness& h, TlsWorld& w, std::unique_ptr<TlsStream>& client,
                         std::unique_ptr<TlsStream>& server) -> Task<void> {
      auto listener = h.server().net.listen(Endpoint{h.server_ip(), 0}, {});
      ZT_ASSERT(listener.ok());
      auto tcp = co_await io::connect(h.client(), (*listener)->local(), {}, std::chrono::seconds(5));
      auto accepted = co_await io::accept(**listener);
      ZT_ASSERT(tcp && accepted);
      client = std::make_unique<TlsStream>(h.client(), w.client(), std::move(*tcp));
      server = std::make_unique<TlsStream>(h.server(), w.server(), std::move(*accepted));
    }(h, w, client, server), std::chrono::minutes(1)));
    server->handshake([&](Result<void> r) {
      EXPECT_TRUE(r);
      server_done = true;
    });
    client->handshake([&](Result<void> r) {
      EXPECT_TRUE(r);
      client_done = true;
      if (write_at_once) client->write(hello, [&](Result<size_t> n) { written = n && *n == hello.size(); });
    });
    ASSERT_TRUE(h.run_until([&] { return client_done && server_done && (written || !write_at_once); },
                            std::chrono::minutes(1)));
    const std::vector<size_t> sent = writes.by_side(testing::SimWrites::kClient);
    ASSERT_EQ(sent.size(), 2u);  // ClientHello; the last flight (with the data)
    if (write_at_once) {
      std::vector<uint8_t> got(hello.size());
      Result<void> r = ok();
      ASSERT_TRUE(h.run([](Stream& s, std::vector<uint8_t>& got, Result<void>& r) -> Task<void> {
        for (size_t at = 0; at < got.size();) {
          Result<size_t> n = co_await io::read(s, MutableBytes(got).subspan(at));
          if (!n || *n == 0) {
            r = n ? Error(Errc::connection_reset, "early EOF") : n.error();
            co_return;
          }
          at += *n;
        }
      }(*server, got, r), std::chrono::minutes(1)));
      ASSERT_TRUE(r) << r.error().message();
      EXPECT_TRUE(got == hello);
      EXPECT_EQ(writes.by_side(testing::SimWrites::kClient).size(), 2u);  // nothing sent since
    }
  }
}

// A server that picks its certificate per connection starts each one from
// an SSL_CTX already holding that certificate (made once per credentials),
// instead of installing the chain and key on every handshake.
TEST(TlsSim, AServerMakesOneContextPerCertificateItPresents) {
  Harness h;
  TlsWorld w(h.client().clock.wall_now());
  auto other = credentials(*w.ca->issue(test_identity("other"), std::chrono::hours(1), w.now));
  std::shared_ptr<const Credentials> presenting = w.server_creds;
  TlsConfig server_cfg = w.config(TlsRole::server, nullptr);
  server_cfg.credentials_for = [&](const Endpoint&) { return presenting; };
  auto server_ctx = w.context(server_cfg);
  TlsConfig client_cfg = w.config(TlsRole::client, w.client_creds);
  client_cfg.expected_identities = {test_identity("server"), test_identity("other")};
  auto client_ctx = w.context(client_cfg);
  std::vector<std::string> seen;
  for (int i = 0; i < 3; ++i) {
    if (i == 2) presenting = other;
    TlsPair p;
    ASSERT_TRUE(h.run(connect_pair(h, client_ctx, server_ctx, p), std::chrono::minutes(1)));
    ASSERT_TRUE(p.client_hs && p.server_hs) << (p.client_hs ? p.server_hs : p.client_hs).error().message();
    seen.push_back(p.client->peer_identity()->to_string());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"spiffe://cluster.local/ns/default/sa/server",
                                            "spiffe://cluster.local/ns/default/sa/server",
                                            "spiffe://cluster.local/ns/default/sa/other"}));
  auto a = server_ctx->ssl_ctx_for(w.server_creds), a2 = server_ctx->ssl_ctx_for(w.server_creds);
  auto b = server_ctx->ssl_ctx_for(other);
  ASSERT_TRUE(a && a2 && b);
  EXPECT_EQ(*a, *a2);
  EXPECT_NE(*a, *b);
  EXPECT_NE(*a, server_ctx->ssl_ctx());
}

TEST(TlsSim, AKeyThatIsNotTheLeafsIsRefused) {
  Harness h;
  TlsWorld w(h.client().clock.wall_now());
  auto client_key = KeyPair::from_pem(w.client_creds->key.to_pem());
  ASSERT_TRUE(client_key.ok());
  auto mixed = std::make_shared<Credentials>(Credentials{w.server_creds->chain, std::move(*client_key)});
  EXPECT_FALSE(TlsContext::create(w.config(TlsRole::server, mixed)).ok());
  TlsConfig server_cfg = w.config(TlsRole::server, w.server_creds);
  server_cfg.credentials_for = [&](const Endpoint&) -> std::shared_ptr<const Credentials> { return mixed; };
  auto server_ctx = w.context(server_cfg);
  EXPECT_FALSE(server_ctx->ssl_ctx_for(mixed).ok());
}

TEST(TlsSim, HandshakesReplayToTheSameTrace) {
  EXPECT_EQ(trace_of_handshakes(5), trace_of_handshakes(5));
  EXPECT_NE(trace_of_handshakes(5), trace_of_handshakes(6));
}

}  // namespace
}  // namespace zt::sim_tests

namespace zt::sim_tests {
namespace {

// A client that knows its server by DNS name (the xDS and CA clients and
// istiod): the chain against the roots and the name against the DNS SANs;
// no client certificate; SPIFFE identities play no part.
TEST(TlsServerName, AServerKnownByItsDnsName) {
  testing::SimHarness<IpAddr::Family::v4> h;
  tls::CaOptions opts;
  opts.pin_signature_sizes = true;
  auto ca = tls::Ca::create(opts, Rng(1), h.client().clock.wall_now());
  ASSERT_TRUE(ca.ok());
  auto serving = ca->issue_for_dns({"istiod.istio-system.svc", "istiod"}, std::chrono::hours(1), h.client().clock.wall_now());
  ASSERT_TRUE(serving.ok());
  tls::TlsConfig server_cfg;
  server_cfg.role = tls::TlsRole::server;
  server_cfg.credentials = std::make_shared<tls::Credentials>(tls::Credentials{serving->chain, std::move(serving->key)});
  server_cfg.roots = ca->trust_bundle();
  server_cfg.pin_signature_sizes = true;
  server_cfg.require_client_certificate = false;  // istiod: clients bring a token
  auto connect_as = [&](std::string name, std::vector<tls::Certificate> roots) {
    tls::TlsConfig client_cfg;
    client_cfg.role = tls::TlsRole::client;
    client_cfg.roots = std::move(roots);
    client_cfg.expected_server_name = std::move(name);
    testing::TlsPair p;
    EXPECT_TRUE(h.run(testing::connect_pair(h, *tls::TlsContext::create(client_cfg), *tls::TlsContext::create(server_cfg), p),
                      std::chrono::seconds(30)));
    return p;
  };
  testing::TlsPair good = connect_as("istiod.istio-system.svc", ca->trust_bundle());
  EXPECT_TRUE(good.client_hs.ok()) << good.client_hs.error().message();
  EXPECT_TRUE(good.server_hs.ok()) << good.server_hs.error().message();
  EXPECT_FALSE(good.server->peer_identity());
  testing::TlsPair wrong_name = connect_as("evil.example.com", ca->trust_bundle());
  ASSERT_FALSE(wrong_name.client_hs.ok());
  EXPECT_NE(wrong_name.client_hs.error().message().find("not for evil.example.com"), std::string::npos)
      << wrong_name.client_hs.error().message();
  auto other = tls::Ca::create(opts, Rng(2), h.client().clock.wall_now());
  testing::TlsPair untrusted = connect_as("istiod", other->trust_bundle());
  ASSERT_FALSE(untrusted.client_hs.ok());
  EXPECT_NE(untrusted.client_hs.error().message().find("untrusted"), std::string::npos)
      << untrusted.client_hs.error().message();
}

}  // namespace
}  // namespace zt::sim_tests
