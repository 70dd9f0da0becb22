// HBONE on io/sim: the pool and the server together, under load and while
// the server restarts, changes identity, drains or goes silent.
#include <gtest/gtest.h>

#include "core/hbone/pool.h"
#include "core/hbone/server.h"
#include "testing/sim_harness.h"
#include "tls/tls_test_util.h"

namespace zt::core::hbone {
namespace {

using Harness = testing::SimHarness<IpAddr::Family::v4>;
constexpr uint16_t kHbonePort = 15008;

// A server host running the HBONE server with an echo-then-finish handler:
// each tunnel's bytes come back, then END_STREAM.
struct HboneServerApp {
  HboneServerApp(Harness& h, tls::TlsWorld& w, const char* identity = "server") {
    auto l = h.server().net.listen(Endpoint{h.server_ip(), kHbonePort}, {});
    ZT_ASSERT(l.ok());
    auto creds = tls::credentials(*w.ca->issue(tls::test_identity(identity), std::chrono::hours(24), w.now));
    server = std::make_unique<Server>(h.server(), std::move(*l), w.context(w.config(tls::TlsRole::server, creds)),
                                      [this](InboundRequest req, Answer a) {
                                        requests.push_back(req);
                                        if (req.target.port == 9) return a->reject(503);  // "nothing there"
                                        scope.spawn(echo(a->accept()));
                                      });
    server->start();
  }
  static Task<void> echo(StreamPtr t) {
    if (!t) co_return;
    std::vector<uint8_t> buf(65536);
    for (;;) {
      auto n = co_await io::read(*t, buf);
      if (!n || *n == 0) break;
      if (!co_await io::write_all(*t, ConstBytes(buf).first(*n))) co_return;
    }
    (void)t->shutdown_write();
    std::vector<uint8_t> drain(16);
    (void)co_await io::read(*t, drain);  // wait for the peer to finish too
  }
  std::vector<InboundRequest> requests;
  std::unique_ptr<Server> server;
  Scope scope;
};

struct Client {
  Client(Harness& h, tls::TlsWorld& w, PoolConfig cfg = {})
      : pool(h.client(), cfg, [&w](const PoolKey&) -> Result<std::shared_ptr<const tls::TlsContext>> {
          return w.client();
        }) {}
  Pool pool;
};

PoolKey key_for(Harness& h, const char* dst_identity = "server") {
  return PoolKey{"spiffe://cluster.local/ns/default/sa/client",
                 {tls::test_identity(dst_identity).to_string()},
                 Endpoint{h.server_ip(), kHbonePort},
                 h.client_ip()};
}

h2::Request connect_to(uint16_t port = 8080) {
  return h2::Request{"CONNECT", "10.0.0.3:" + std::to_string(port),
                     {{"forwarded", "for=\"10.0.0.1:5555\""}, {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}};
}

// One tunnel through the pool: send `size` bytes, half-close, read the echo.
Task<void> round_trip(Pool& pool, PoolKey key, size_t size, uint8_t salt, int& failures) {
  Result<h2::Opened> t = co_await pool.open(key, connect_to());
  if (!t || !t->tunnel) {
    ++failures;
    co_return;
  }
  const auto data = testing::pattern(size, salt);
  testing::ReadAll back;
  bool wrote = false;
  co_await join([](Stream& s, const std::vector<uint8_t>& d, bool& ok) -> Task<void> {
                  ok = d.empty() || (co_await io::write_all(s, d)).ok();
                  ok = ok && s.shutdown_write().ok();
                }(*t->tunnel, data, wrote),
                [](Stream& s, testing::ReadAll& out) -> Task<void> { out = co_await testing::read_all(s); }(*t->tunnel,
                                                                                                          back));
  if (!wrote || !back.end.ok() || back.bytes != data) ++failures;
}

TEST(Hbone, AThousandTunnelsShareTenConnections) {
  Harness h;
  tls::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  Client c(h, w);
  int failures = 0;
  std::vector<Task<void>> work;
  Rng r(7);
  for (int i = 0; i < 1000; ++i) work.push_back(round_trip(c.pool, key_for(h), r.below(20000), uint8_t(i), failures));
  ASSERT_TRUE(h.run(all(std::move(work)), std::chrono::minutes(10)));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(c.pool.counters().connections_opened, 10u);  // 100 streams each, opened in one burst
  EXPECT_EQ(c.pool.counters().tunnels_opened, 1000u);
  ASSERT_FALSE(srv.requests.empty());
  EXPECT_EQ(srv.requests[0].peer_identity->to_string(), "spiffe://cluster.local/ns/default/sa/client");
  EXPECT_EQ(srv.requests[0].header("forwarded"), "for=\"10.0.0.1:5555\"");
}

TEST(Hbone, ABurstToANewKeyOpensOneConnection) {
  Harness h;
  tls::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  Client c(h, w);
  int failures = 0;
  std::vector<Task<void>> work;
  for (int i = 0; i < 50; ++i) work.push_back(round_trip(c.pool, key_for(h), 100, uint8_t(i), failures));
  ASSERT_TRUE(h.run(all(std::move(work)), std::chrono::minutes(1)));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(c.pool.counters().connections_opened, 1u);
}

TEST(Hbone, ServerAnswersAreDeliveredAndBadRequestsGet400) {
  Harness h;
  tls::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  Client c(h, w);
  std::vector<int> statuses;
  ASSERT_TRUE(h.run([](Pool& p, PoolKey key, std::vector<int>& out) -> Task<void> {
    auto unavailable = co_await p.open(key, connect_to(9));
    out.push_back(unavailable ? unavailable->response.status : -1);
    h2::Request not_connect{"GET", "10.0.0.3:80", {}, "https", "/"};
    auto get = co_await p.open(key, not_connect);
    out.push_back(get ? get->response.status : -1);
    h2::Request bad_authority{"CONNECT", "productpage:9080", {}};
    auto bad = co_await p.open(key, bad_authority);
    out.push_back(bad ? bad->response.status : -1);
  }(c.pool, key_for(h), statuses), std::chrono::minutes(1)));
  EXPECT_EQ(statuses, (std::vector<int>{503, 400, 400}));
  EXPECT_EQ(srv.server->counters().bad_requests, 2u);
}

// The server restarts while load continues: tunnels that were accepted may
// fail with it, but no tunnel that was not yet accepted fails.
TEST(Hbone, AServerRestartUnderLoadFailsNoTunnelThatWasNotYetAccepted) {
  Harness h;
  tls::TlsWorld w(h.client().clock.wall_now());
  std::unique_ptr<HboneServerApp> srv = std::make_unique<HboneServerApp>(h, w);
  h.server_host().on_crash([&] { srv.reset(); });
  h.server_host().on_restart([&] { srv = std::make_unique<HboneServerApp>(h, w); });
  Client c(h, w);
  int before = 0, after = 0;
  // Warm the pool, then restart the server, then open more tunnels.
  std::vector<Task<void>> warm;
  for (int i = 0; i < 20; ++i) warm.push_back(round_trip(c.pool, key_for(h), 1000, uint8_t(i), before));
  ASSERT_TRUE(h.run(all(std::move(warm)), std::chrono::minutes(1)));
  ASSERT_EQ(before, 0);
  h.world().crash(h.server_host().id());
  h.world().run_for(std::chrono::milliseconds(100));
  h.world().restart(h.server_host().id());  // the old connections now get RST
  std::vector<Task<void>> load;
  for (int i = 0; i < 200; ++i) load.push_back(round_trip(c.pool, key_for(h), 5000, uint8_t(i), after));
  ASSERT_TRUE(h.run(all(std::move(load)), std::chrono::minutes(2)));
  EXPECT_EQ(after, 0);
  EXPECT_GE(c.pool.counters().connections_opened, 2u);
}

// The server's IP now belongs to a workload with another identity: the old
// key's connections die; a tunnel for the new identity gets a new connection.
TEST(Hbone, AReusedAddressGetsAFreshVerifiedConnection) {
  Harness h;
  tls::TlsWorld w(h.client().clock.wall_now());
  std::unique_ptr<HboneServerApp> srv = std::make_unique<HboneServerApp>(h, w, "server");
  h.server_host().on_crash([&] { srv.reset(); });
  h.server_host().on_restart([&] { srv = std::make_unique<HboneServerApp>(h, w, "new-tenant"); });
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run(round_trip(c.pool, key_for(h, "server"), 100, 1, failures), std::chrono::minutes(1)));
  h.world().crash(h.server_host().id());
  h.world().restart(h.server_host().id());
  h.world().run_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(h.run(round_trip(c.pool, key_for(h, "new-tenant"), 100, 2, failures), std::chrono::minutes(1)));
  EXPECT_EQ(failures, 0);
  // The old identity is refused by the new tenant's certificate.
  int refused = 0;
  ASSERT_TRUE(h.run(round_trip(c.pool, key_for(h, "server"), 100, 3, refused), std::chrono::minutes(1)));
  EXPECT_EQ(refused, 1);
}

TEST(Hbone, ADrainingServerMovesNewTunnelsToAFreshConnectionInvisibly) {
  Harness h;
  tls::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run(round_trip(c.pool, key_for(h), 100, 1, failures), std::chrono::minutes(1)));
  srv.server->drain();  // GOAWAY on the pooled connection, listener closed
  HboneServerApp replacement(h, w);  // the next process takes the port
  h.world().run_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(h.run(round_trip(c.pool, key_for(h), 100, 2, failures), std::chrono::minutes(1)));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(c.pool.counters().connections_opened, 2u);
  EXPECT_EQ(replacement.requests.size(), 1u);
}

TEST(Hbone, IdleConnectionsAreReleased) {
  Harness h;
  tls::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run(round_trip(c.pool, key_for(h), 100, 1, failures), std::chrono::minutes(1)));
  EXPECT_EQ(c.pool.connections(), 1u);
  h.world().run_for(std::chrono::minutes(4));
  EXPECT_EQ(c.pool.connections(), 1u);
  h.world().run_for(std::chrono::minutes(3));
  EXPECT_EQ(c.pool.connections(), 0u);
  EXPECT_EQ(c.pool.counters().connections_released, 1u);
}

}  // namespace
}  // namespace zt::core::hbone
