// HBONE on io/sim: the pool and the server together, under load and while
// the server restarts, changes identity, drains or goes silent.
#include <gtest/gtest.h>

#include "testing/hbone_test_util.h"
#include "testing/sim_writes.h"

namespace zt::core::hbone {
namespace {

using namespace zt::testing;

TEST(Hbone, AThousandTunnelsShareTenConnections) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
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

// A fresh pooled connection sends its first CONNECT in the same send as the
// TLS client's last flight and the HTTP/2 preface: ClientHello, then one
// send, then the SETTINGS ACK, before the tunnel is open.
TEST(Hbone, TheFirstConnectGoesWithTheLastHandshakeFlight) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  Client c(h, w);
  testing::SimWrites writes(h.world());
  bool opened = false;
  size_t sends = 0;
  ASSERT_TRUE(h.run([](Pool& p, PoolKey key, testing::SimWrites& writes, bool& opened, size_t& sends) -> Task<void> {
    auto t = co_await p.open(key, connect_to());
    opened = t && t->tunnel && t->response.status == 200;
    sends = writes.by_side(testing::SimWrites::kClient).size();  // before the tunnel ends
  }(c.pool, key_for(h), writes, opened, sends), std::chrono::minutes(1)));
  ASSERT_TRUE(opened);
  EXPECT_EQ(sends, 3u);
}

// The server's SETTINGS (and its ACK of the client's) wait for its first
// answer when the request came with the handshake, so they go in one send:
// the ServerHello flight, then SETTINGS + SETTINGS ACK + 200.
TEST(Hbone, TheServersSettingsGoWithItsFirstAnswer) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w, "server", std::chrono::milliseconds(5));  // answers after "connecting" for 5 ms
  Client c(h, w);
  testing::SimWrites writes(h.world());
  bool opened = false;
  size_t client_sends = 0, server_sends = 0;
  ASSERT_TRUE(h.run([](Pool& p, PoolKey key, testing::SimWrites& writes, bool& opened, size_t& client_sends,
                       size_t& server_sends) -> Task<void> {
    auto t = co_await p.open(key, connect_to());
    opened = t && t->tunnel && t->response.status == 200;
    client_sends = writes.by_side(testing::SimWrites::kClient).size();  // before the tunnel ends
    server_sends = writes.by_side(testing::SimWrites::kServer).size();
  }(c.pool, key_for(h), writes, opened, client_sends, server_sends), std::chrono::minutes(1)));
  ASSERT_TRUE(opened);
  EXPECT_EQ(server_sends, 2u);
  EXPECT_EQ(client_sends, 3u);  // ClientHello, last flight + preface + CONNECT, SETTINGS ACK
  // Without a request pending, SETTINGS go at once: the pooled connection
  // keeps working (a second tunnel on it).
  ASSERT_TRUE(h.run([](Pool& p, PoolKey key, bool& opened) -> Task<void> {
    auto t = co_await p.open(key, connect_to());
    opened = t && t->tunnel && t->response.status == 200;
  }(c.pool, key_for(h), opened), std::chrono::minutes(1)));
  EXPECT_TRUE(opened);
  EXPECT_EQ(c.pool.counters().connections_opened, 1u);
}

TEST(Hbone, ABurstToANewKeyOpensOneConnection) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
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
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
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
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
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

// The same, with tunnels opening continuously while the server crashes and
// comes back: opens that the old server never accepted are retried on a
// fresh connection, so no open fails; only tunnels it had accepted may break.
TEST(Hbone, OpensDuringAServerRestartNeverFail) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  std::unique_ptr<HboneServerApp> srv = std::make_unique<HboneServerApp>(h, w);
  h.server_host().on_crash([&] { srv.reset(); });
  h.server_host().on_restart([&] { srv = std::make_unique<HboneServerApp>(h, w); });
  Client c(h, w);
  int open_failures = 0, opened = 0;
  Scope load;
  for (int i = 0; i < 400; ++i) {
    h.world().scheduler().after(std::chrono::milliseconds(5 * i), io::sim::kNetwork, "test.open", [&, i] {
      load.spawn([](Pool& pool, PoolKey key, int& failed, int& ok, uint8_t salt) -> Task<void> {
        auto t = co_await pool.open(key, connect_to());
        if (!t || !t->tunnel || t->response.status != 200) {
          ++failed;
          co_return;
        }
        ++ok;
        const auto data = testing::pattern(20000, salt);
        (void)co_await io::write_all(*t->tunnel, data);  // may break with the restart: allowed
        (void)t->tunnel->shutdown_write();
        (void)co_await testing::read_all(*t->tunnel);
      }(c.pool, key_for(h), open_failures, opened, uint8_t(i)));
    });
  }
  h.world().scheduler().after(std::chrono::milliseconds(700), io::sim::kNetwork, "test.crash",
                              [&] { h.world().crash(h.server_host().id()); });
  h.world().scheduler().after(std::chrono::milliseconds(720), io::sim::kNetwork, "test.restart",
                              [&] { h.world().restart(h.server_host().id()); });
  ASSERT_TRUE(h.run_until([&] { return opened + open_failures == 400; }, std::chrono::minutes(5)));
  EXPECT_EQ(open_failures, 0);
  EXPECT_GE(c.pool.counters().connections_opened, 2u);
  EXPECT_GE(c.pool.counters().retries, 1u);  // the restart did catch opens in flight
}

// The server's IP now belongs to a workload with another identity: the old
// key's connections die; a tunnel for the new identity gets a new connection.
TEST(Hbone, AReusedAddressGetsAFreshVerifiedConnection) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
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

// The handshake presents the certificate held when it starts, not the one
// held when the TCP connect started: a connect that takes seconds (here a
// partition) must not present one replaced meanwhile. (The mesh swarm
// caught a node presenting a certificate that had expired, and been
// renewed, while its connect waited out a partition.)
TEST(Hbone, TheHandshakePresentsTheCertificateHeldWhenItStarts) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  std::shared_ptr<const tls::Credentials> held = w.client_creds;
  Pool pool(h.client(), {}, [&w, &held](const PoolKey&) -> Result<std::shared_ptr<const tls::TlsContext>> {
    return w.context(w.config(tls::TlsRole::client, held));
  });
  const io::sim::HostId c = h.client_host().id(), s = h.server_host().id();
  h.world().partition(c, s);
  h.world().scheduler().after(std::chrono::seconds(2), io::sim::kNetwork, "test.renew", [&] {
    held = credentials(*w.ca->issue(test_identity("web"), std::chrono::hours(24), w.now));
  });
  h.world().scheduler().after(std::chrono::seconds(4), io::sim::kNetwork, "test.heal",
                              [&] { h.world().heal(c, s); });
  int failures = 0;
  ASSERT_TRUE(h.run(round_trip(pool, key_for(h), 100, 1, failures), std::chrono::minutes(1)));
  EXPECT_EQ(failures, 0);
  ASSERT_EQ(srv.requests.size(), 1u);
  ASSERT_TRUE(srv.requests[0].peer_identity);
  EXPECT_EQ(srv.requests[0].peer_identity->to_string(), "spiffe://cluster.local/ns/default/sa/web");
}

TEST(Hbone, ADrainingServerMovesNewTunnelsToAFreshConnectionInvisibly) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
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

// A drain sends GOAWAY and lets the tunnels under way finish: a tunnel open
// across the drain still carries bytes both ways and ends cleanly (closing
// the connections instead would cut every tunnel of the node).
TEST(Hbone, ATunnelOpenAcrossADrainFinishesIntact) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  Client c(h, w);
  std::optional<Result<h2::Opened>> opened;
  ASSERT_TRUE(h.run([](Pool& p, PoolKey key, std::optional<Result<h2::Opened>>& out) -> Task<void> {
    out = co_await p.open(key, connect_to());
  }(c.pool, key_for(h), opened), std::chrono::seconds(10)));
  ASSERT_TRUE(opened && opened->ok() && (*opened)->tunnel);
  Stream& t = *(*opened)->tunnel;
  const std::vector<uint8_t> first = testing::pattern(1000, 1), second = testing::pattern(3000, 2);
  std::vector<uint8_t> echoed;
  ASSERT_TRUE(h.run([](Stream& t, const std::vector<uint8_t>& d, std::vector<uint8_t>& back) -> Task<void> {
    if (!co_await io::write_all(t, d)) co_return;
    std::vector<uint8_t> buf(d.size());
    while (back.size() < d.size()) {
      Result<size_t> n = co_await io::read(t, MutableBytes(buf).first(d.size() - back.size()));
      if (!n || *n == 0) co_return;
      back.insert(back.end(), buf.begin(), buf.begin() + std::ptrdiff_t(*n));
    }
  }(t, first, echoed), std::chrono::seconds(10)));
  ASSERT_EQ(echoed, first);
  srv.server->drain();
  h.world().run_for(std::chrono::milliseconds(50));
  bool wrote = false;
  testing::ReadAll rest;
  ASSERT_TRUE(h.run([](Stream& t, const std::vector<uint8_t>& d, bool& wrote, testing::ReadAll& out) -> Task<void> {
    wrote = (co_await io::write_all(t, d)).ok() && t.shutdown_write().ok();
    out = co_await testing::read_all(t);
  }(t, second, wrote, rest), std::chrono::seconds(10)));
  EXPECT_TRUE(wrote);
  ASSERT_TRUE(rest.end.ok()) << "the tunnel open across the drain was cut: " << rest.end.error().message();
  EXPECT_EQ(rest.bytes, second);
}

// A pooled connection whose server went silent (black-holed both ways) is
// dead once its keepalive PING goes unanswered (a PING after 10 s of quiet,
// given up 20 s later); the pool drops it then, not at the idle release
// (PoolConfig::idle_release, 5 min).
TEST(Hbone, APooledConnectionToASilentServerIsDroppedAfterTheKeepalive) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run(round_trip(c.pool, key_for(h), 100, 1, failures), std::chrono::minutes(1)));
  ASSERT_EQ(failures, 0);
  ASSERT_EQ(c.pool.connections(), 1u);
  h.world().partition(h.client_host().id(), h.server_host().id());
  h.world().run_for(std::chrono::seconds(45));
  EXPECT_EQ(c.pool.connections(), 0u) << "a pooled connection to a silent server outlived its keepalive";
}

// A client whose TLS handshake completes while the server drains has sent
// its first CONNECT and its early data with its last flight. The server
// answers GOAWAY naming no stream, so the pool moves the tunnel to the next
// process invisibly; a bare close left the early data's fate unknown, and
// the tunnel failed (h2::kLost).
TEST(Hbone, AHandshakeCompletedDuringADrainIsToldGoawayAndItsTunnelMoves) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  std::optional<HboneServerApp> srv(std::in_place, h, w);
  Client c(h, w);
  std::optional<Result<h2::Opened>> opened;
  std::vector<StreamPtr> early;
  const std::vector<uint8_t> hello = testing::pattern(100);
  Scope scope;
  scope.spawn([](Pool& p, PoolKey key, std::vector<StreamPtr>& early, const std::vector<uint8_t>& hello,
                 std::optional<Result<h2::Opened>>& out) -> Task<void> {
    out = co_await p.open(key, connect_to(), [&early, &hello](StreamPtr t) {
      t->write(hello, [](Result<size_t>) {});
      early.push_back(std::move(t));
    });
  }(c.pool, key_for(h), early, hello, opened));
  // The client's handshake is done (its CONNECT and data left with its
  // Finished); the server's is not yet.
  ASSERT_TRUE(h.world().run_until([&] { return c.pool.counters().connections_opened == 1; }, std::chrono::seconds(5)));
  ASSERT_EQ(srv->server->connections(), 0u);
  srv->server->drain();
  HboneServerApp replacement(h, w);  // the next process takes the port
  ASSERT_TRUE(h.world().run_until([&] { return opened.has_value(); }, std::chrono::seconds(30)));
  ASSERT_TRUE(opened->ok()) << opened->error().message();
  EXPECT_EQ((*opened)->response.status, 200);
  EXPECT_TRUE(srv->requests.empty()) << "the draining server took no request";
  EXPECT_EQ(replacement.requests.size(), 1u);
  EXPECT_GE(c.pool.counters().retries, 1u);
  ASSERT_EQ(early.size(), 2u);
  std::vector<uint8_t> back;
  ASSERT_TRUE(h.run([](Stream& t, std::vector<uint8_t>& back, size_t want) -> Task<void> {
    std::vector<uint8_t> buf(want);
    while (back.size() < want) {
      Result<size_t> n = co_await io::read(t, buf);
      if (!n || *n == 0) co_return;
      back.insert(back.end(), buf.begin(), buf.begin() + std::ptrdiff_t(*n));
    }
  }(*early.back(), back, hello.size()), std::chrono::seconds(5)));
  EXPECT_TRUE(back == hello) << "the echo of the early data, from the replacement";
}

// A pooled connection whose server restarted while it was quiet is dead
// without knowing it. A tunnel with early data opened on it holds the data
// until a sign of life (h2 Settings::liveness_quiet); the restarted host's
// RST ends the connection first, so the tunnel is refused, not lost, and
// moves to a fresh connection invisibly.
TEST(Hbone, EarlyDataOnAConnectionToARestartedServerMovesToAFreshOne) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  std::unique_ptr<HboneServerApp> srv = std::make_unique<HboneServerApp>(h, w);
  h.server_host().on_crash([&] { srv.reset(); });
  h.server_host().on_restart([&] { srv = std::make_unique<HboneServerApp>(h, w); });
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run(round_trip(c.pool, key_for(h), 100, 1, failures), std::chrono::minutes(1)));
  ASSERT_EQ(failures, 0);
  h.world().crash(h.server_host().id());
  h.world().run_for(std::chrono::seconds(3));
  h.world().restart(h.server_host().id());
  ASSERT_EQ(c.pool.connections(), 1u) << "the pool does not know yet";
  std::optional<Result<h2::Opened>> opened;
  std::vector<StreamPtr> early;
  const std::vector<uint8_t> hello = testing::pattern(100);
  Scope scope;
  scope.spawn([](Pool& p, PoolKey key, std::vector<StreamPtr>& early, const std::vector<uint8_t>& hello,
                 std::optional<Result<h2::Opened>>& out) -> Task<void> {
    out = co_await p.open(key, connect_to(), [&early, &hello](StreamPtr t) {
      t->write(hello, [](Result<size_t>) {});
      early.push_back(std::move(t));
    });
  }(c.pool, key_for(h), early, hello, opened));
  ASSERT_TRUE(h.world().run_until([&] { return opened.has_value(); }, std::chrono::seconds(30)));
  ASSERT_TRUE(opened->ok()) << opened->error().message();
  EXPECT_EQ((*opened)->response.status, 200);
  EXPECT_EQ(srv->requests.size(), 1u);
  EXPECT_EQ(c.pool.counters().connections_opened, 2u);
}

// Clients that close a tunnel as soon as they have their answer (before the
// server's END_STREAM) must not make the server tear down the connection:
// nghttp2 drops connections whose peer sends RST_STREAM too fast.
TEST(Hbone, ManyTunnelsClosedEarlyKeepTheirConnection) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run([](Pool& pool, PoolKey key, int& failures) -> Task<void> {
    for (int i = 0; i < 1500; ++i) {
      auto t = co_await pool.open(key, connect_to());
      if (!t || !t->tunnel) {
        ++failures;
        continue;
      }
      const uint8_t one[] = {7};
      uint8_t back[1];
      if (!co_await io::write_all(*t->tunnel, one) || !t->tunnel->shutdown_write()) ++failures;
      auto n = co_await io::read(*t->tunnel, back);
      if (!n || *n != 1) ++failures;
      // The tunnel goes now, before the server's END_STREAM.
    }
  }(c.pool, key_for(h), failures), std::chrono::minutes(10)));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(c.pool.counters().connections_opened, 1u);
  EXPECT_EQ(c.pool.counters().retries, 0u);
}

// Release is timed per connection, not by a periodic sweep: a pool whose
// connections are busy runs no timer of its own (with a short release
// timeout a sweep every idle_release/4 woke the worker all the time), and an
// idle connection goes idle_release after its last stream.
TEST(Hbone, ReleaseTimersRunOnlyWhenAConnectionIsDue) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  PoolConfig cfg;
  cfg.idle_release = std::chrono::milliseconds(200);
  Client c(h, w, cfg);
  testing::SimWrites trace(h.world());
  std::optional<Result<h2::Opened>> held;
  Scope scope;
  scope.spawn([](Pool& p, PoolKey key, std::optional<Result<h2::Opened>>& out) -> Task<void> {
    out = co_await p.open(key, connect_to());
  }(c.pool, key_for(h), held));
  ASSERT_TRUE(h.run_until([&] { return held.has_value(); }, std::chrono::minutes(1)));
  ASSERT_TRUE(*held && (*held)->tunnel);
  const size_t before = trace.timers_fired(h.client_host().id());
  h.world().run_for(std::chrono::seconds(5));  // one busy connection: 25 sweeps before
  // Only the HTTP/2 keepalive (PING after 10 s idle) may run meanwhile.
  EXPECT_LE(trace.timers_fired(h.client_host().id()) - before, 1u);
  EXPECT_EQ(c.pool.connections(), 1u);
  (*held)->tunnel.reset();  // the stream ends; the release is due in 200 ms
  h.world().run_for(std::chrono::milliseconds(150));
  EXPECT_EQ(c.pool.connections(), 1u);
  h.world().run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(c.pool.connections(), 0u);
  EXPECT_EQ(c.pool.counters().connections_released, 1u);
}

TEST(Hbone, IdleConnectionsAreReleased) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
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

// Each HBONE connection has its own id in the requests it carries, and the
// server names it when the connection ends (the inbound releases what it
// counted for it).
TEST(Hbone, TheServerNamesEachConnectionAndSaysWhenItEnds) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  HboneServerApp srv(h, w);
  Client c(h, w);
  std::vector<uint64_t> closed;
  srv.server->on_connection_closed([&closed](uint64_t id) { closed.push_back(id); });
  int failures = 0;
  ASSERT_TRUE(h.run(round_trip(c.pool, key_for(h), 20, 1, failures), std::chrono::minutes(1)));
  ASSERT_FALSE(srv.requests.empty());
  const uint64_t first = srv.requests.front().connection_id;
  EXPECT_NE(first, 0u);
  for (const InboundRequest& r : srv.requests) EXPECT_EQ(r.connection_id, first);
  EXPECT_TRUE(closed.empty());
  h.world().run_for(std::chrono::minutes(8));  // the pool releases its idle connection
  EXPECT_EQ(closed, std::vector<uint64_t>{first});
  ASSERT_TRUE(h.run(round_trip(c.pool, key_for(h), 5, 1, failures), std::chrono::minutes(1)));
  EXPECT_NE(srv.requests.back().connection_id, first) << "a new connection, a new id";
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace zt::core::hbone
