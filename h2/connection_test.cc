// HTTP/2 connections and tunnels on io/sim: bytes both ways with half-close,
// many streams at once, rejections, resets, flow control, GOAWAY, PING
// timeouts, and a connection dying before its response.
#include "h2/connection.h"

#include <gtest/gtest.h>

#include "h2/h2_test_util.h"
#include "testing/sim_harness.h"

namespace zt::h2 {
namespace {

using Harness = testing::SimHarness<IpAddr::Family::v4>;
constexpr Duration kLimit = std::chrono::minutes(5);

// Waits (virtual time) for the next request at the server.
std::unique_ptr<Connection::Incoming> next_request(Harness& h, H2Pair& p) {
  h.world().run_until([&] { return !p.requests.empty(); }, std::chrono::seconds(10));
  if (p.requests.empty()) return nullptr;
  auto r = std::move(p.requests.front());
  p.requests.pop_front();
  return r;
}

// Opens a tunnel and accepts it at the server; returns (client, server) tunnels.
std::pair<StreamPtr, StreamPtr> tunnel(Harness& h, H2Pair& p, const std::string& authority = "10.0.0.3:80") {
  std::optional<Result<Opened>> opened;
  Scope s;
  s.spawn([](Connection& c, std::string a, std::optional<Result<Opened>>& out) -> Task<void> {
    // (A named local: GCC 12 miscompiles braced temporaries inside co_await.)
    Headers headers{{"forwarded", "for=\"10.0.0.1:1234\""}};
    out = co_await open_tunnel(c, a, std::move(headers));
  }(*p.client, authority, opened));
  auto in = next_request(h, p);
  EXPECT_TRUE(in);
  if (!in) return {};
  EXPECT_EQ(in->request().method, "CONNECT");
  EXPECT_EQ(in->request().authority, authority);
  StreamPtr server = in->accept();
  h.world().run_until([&] { return opened.has_value(); }, std::chrono::seconds(10));
  EXPECT_TRUE(opened && *opened);
  if (!opened || !*opened) return {};
  EXPECT_EQ((*opened)->response.status, 200);
  return {std::move((*opened)->tunnel), std::move(server)};
}

Task<void> send_and_finish(Stream& s, const std::vector<uint8_t>& d) {
  if (!d.empty()) {
    EXPECT_TRUE(co_await io::write_all(s, d));
  }
  EXPECT_TRUE(s.shutdown_write());
}
Task<void> receive(Stream& s, testing::ReadAll& out) { out = co_await testing::read_all(s); }

TEST(H2, TunnelCarriesBytesBothWaysAndEndStreamIsHalfClose) {
  Harness h;
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  auto [c, s] = tunnel(h, p);
  ASSERT_TRUE(c && s);
  const auto up = testing::pattern(3 << 20, 1), down = testing::pattern(1 << 20, 2);
  testing::ReadAll at_s, at_c;
  // The client finishes first; the server still answers after seeing EOF.
  ASSERT_TRUE(h.run(all(send_and_finish(*c, up), receive(*s, at_s)), kLimit));
  EXPECT_TRUE(at_s.end.ok() && *at_s.end == 0);
  EXPECT_TRUE(at_s.bytes == up);
  ASSERT_TRUE(h.run(all(send_and_finish(*s, down), receive(*c, at_c)), kLimit));
  EXPECT_TRUE(at_c.end.ok() && *at_c.end == 0);
  EXPECT_TRUE(at_c.bytes == down);
  c.reset();
  s.reset();
  h.idle(std::chrono::seconds(1));
  EXPECT_EQ(p.client->active_streams(), 0u);
  EXPECT_EQ(p.server->active_streams(), 0u);
}

TEST(H2, TwoHundredConcurrentTunnelsOnOneConnection) {
  Harness h;
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  h.idle(std::chrono::milliseconds(10));  // settings exchanged
  EXPECT_EQ(p.client->peer_concurrent_streams_max(), 200u);
  std::vector<std::pair<StreamPtr, StreamPtr>> tunnels;
  for (int i = 0; i < 200; ++i) tunnels.push_back(tunnel(h, p));
  EXPECT_FALSE(p.client->accepting_streams());  // at the peer's limit
  std::vector<Task<void>> work;
  std::vector<std::vector<uint8_t>> sent(200);
  std::vector<testing::ReadAll> got(200);
  Rng r(3);
  for (size_t i = 0; i < 200; ++i) {
    ASSERT_TRUE(tunnels[i].first && tunnels[i].second);
    sent[i] = testing::pattern(r.below(100000), uint8_t(i));
    work.push_back(send_and_finish(*tunnels[i].first, sent[i]));
    work.push_back(receive(*tunnels[i].second, got[i]));
  }
  ASSERT_TRUE(h.run(all(std::move(work)), kLimit));
  for (size_t i = 0; i < 200; ++i) EXPECT_TRUE(got[i].bytes == sent[i]) << "tunnel " << i;
}

TEST(H2, ARejectedRequestGivesItsStatusAndNoTunnel) {
  Harness h;
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  std::optional<Result<Opened>> opened;
  Scope s;
  s.spawn([](Connection& c, std::optional<Result<Opened>>& out) -> Task<void> {
    out = co_await open_tunnel(c, "10.0.0.3:80");
  }(*p.client, opened));
  next_request(h, p)->reject(401);
  h.world().run_until([&] { return opened.has_value(); }, std::chrono::seconds(10));
  ASSERT_TRUE(opened && *opened);
  EXPECT_EQ((*opened)->response.status, 401);
  EXPECT_FALSE((*opened)->tunnel);
}

TEST(H2, ResetIsForwardedBothWays) {
  for (bool client_resets : {true, false}) {
    Harness h;
    H2Pair p;
    ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
    auto [c, s] = tunnel(h, p);
    ASSERT_TRUE(c && s);
    Stream& resetter = client_resets ? *c : *s;
    Stream& other = client_resets ? *s : *c;
    testing::ReadAll got;
    ASSERT_TRUE(h.run([](Stream& a, Stream& b, testing::ReadAll& got) -> Task<void> {
      a.abort();
      got = co_await testing::read_all(b);
    }(resetter, other, got), kLimit));
    ASSERT_FALSE(got.end.ok());
    EXPECT_EQ(got.end.code(), Errc::connection_reset);
  }
}

TEST(H2, ASlowReaderHoldsAtMostOneStreamWindow) {
  Harness h;
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  auto [c, s] = tunnel(h, p);
  ASSERT_TRUE(c && s);
  const auto data = testing::pattern(32 << 20, 4);
  size_t written = 0;
  Scope writer;
  writer.spawn([](Stream& s, const std::vector<uint8_t>& d, size_t& written) -> Task<void> {
    while (written < d.size()) {
      auto n = co_await io::write_some(s, ConstBytes(d).subspan(written, std::min<size_t>(65536, d.size() - written)));
      if (!n) co_return;
      written += *n;
    }
    EXPECT_TRUE(s.shutdown_write());
  }(*c, data, written));
  h.idle(std::chrono::seconds(30));
  const size_t window = Settings::server().stream_window_bytes;
  EXPECT_GE(written, window);
  EXPECT_LE(written, window + 2 * 65536 + h.world().options().window_bytes);
  testing::ReadAll got;
  ASSERT_TRUE(h.run(receive(*s, got), kLimit));
  EXPECT_TRUE(got.bytes == data);
}

TEST(H2, GoawayStopsNewStreamsButLetsOpenOnesFinish) {
  Harness h;
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  auto [c, s] = tunnel(h, p);
  ASSERT_TRUE(c && s);
  p.server->goaway();
  h.idle(std::chrono::milliseconds(10));
  EXPECT_FALSE(p.client->accepting_streams());
  std::optional<Result<Opened>> refused;
  Scope sc;
  sc.spawn([](Connection& c, std::optional<Result<Opened>>& out) -> Task<void> {
    out = co_await open_tunnel(c, "10.0.0.3:80");
  }(*p.client, refused));
  h.idle(std::chrono::milliseconds(10));
  ASSERT_TRUE(refused && !*refused);
  EXPECT_EQ(refused->code(), kRefused);
  const auto data = testing::pattern(100000, 5);
  testing::ReadAll got;
  ASSERT_TRUE(h.run(all(send_and_finish(*c, data), receive(*s, got)), kLimit));
  EXPECT_TRUE(got.bytes == data);
}

TEST(H2, ABlackHoledPeerIsDroppedAfterThePingTimeout) {
  Harness h;
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  auto [c, s] = tunnel(h, p);
  ASSERT_TRUE(c && s);
  h.world().partition(h.client_host().id(), h.server_host().id());
  testing::ReadAll got;
  MonoTime start = h.world().now();
  ASSERT_TRUE(h.run(receive(*c, got), kLimit));
  EXPECT_TRUE(p.client->dead());
  EXPECT_EQ(got.end.code(), Errc::connection_reset);
  const Duration took = h.world().now() - start;
  EXPECT_GE(took, std::chrono::seconds(20));  // idle 10 s, then 20 s without an answer
  EXPECT_LE(took, std::chrono::seconds(41));
  EXPECT_FALSE(p.client->accepting_streams());
}

TEST(H2, AConnectionThatDiesBeforeTheResponseRefusesTheStream) {
  Harness h;
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  std::optional<Result<Opened>> opened;
  Scope s;
  s.spawn([](Connection& c, std::optional<Result<Opened>>& out) -> Task<void> {
    out = co_await open_tunnel(c, "10.0.0.3:80");
  }(*p.client, opened));
  auto in = next_request(h, p);  // held, never answered
  ASSERT_TRUE(in);
  p.server.reset();  // the connection goes before the answer

  h.world().run_until([&] { return opened.has_value(); }, std::chrono::seconds(10));
  ASSERT_TRUE(opened && !*opened);
  EXPECT_EQ(opened->code(), kRefused) << opened->error().message();
}

TEST(H2, WorksOverTls) {
  Harness h;
  tls::TlsWorld w(h.client().clock.wall_now());
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p, &w), kLimit));
  auto [c, s] = tunnel(h, p);
  ASSERT_TRUE(c && s);
  const auto data = testing::pattern(2 << 20, 6);
  testing::ReadAll got;
  ASSERT_TRUE(h.run(all(send_and_finish(*c, data), receive(*s, got)), kLimit));
  EXPECT_TRUE(got.bytes == data);
}

}  // namespace
}  // namespace zt::h2
