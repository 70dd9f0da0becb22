// The tunnel conformance suite: HTTP/2 CONNECT tunnels with half-close,
// many streams, rejections, resets both ways, flow control, GOAWAY, a
// connection dying before its response, and TLS underneath; on io/sim
// (h2/tunnel_conformance_sim_test.cc) and on real loopback
// (e2e/tunnel_conformance_real_test.cc).
#pragma once

#include <gtest/gtest.h>

#include "testing/h2_test_util.h"

namespace zt::testing {

template <class H>
class TunnelConformance : public ::testing::Test {
 protected:
  static constexpr Duration kLimit = std::chrono::minutes(2);

  // Waits for the next request at the server.
  std::unique_ptr<Connection::Incoming> next_request(H2Pair& p) {
    h.run_until([&] { return !p.requests.empty(); }, std::chrono::seconds(10));
    if (p.requests.empty()) return nullptr;
    auto r = std::move(p.requests.front());
    p.requests.pop_front();
    return r;
  }

  std::optional<Result<Opened>> open_async(Connection& c, Scope& scope, std::optional<Result<Opened>>& out,
                                           const std::string& authority = "10.0.0.3:80") {
    scope.spawn([](Connection& c, std::string a, std::optional<Result<Opened>>& out) -> Task<void> {
      // (A named local: GCC 12 miscompiles braced temporaries inside co_await.)
      Headers headers{{"forwarded", "for=\"10.0.0.1:1234\""}};
      out = co_await open_tunnel(c, a, std::move(headers));
    }(c, authority, out));
    return std::nullopt;
  }

  // Opens a tunnel and accepts it at the server; returns (client, server).
  std::pair<StreamPtr, StreamPtr> tunnel(H2Pair& p, const std::string& authority = "10.0.0.3:80") {
    std::optional<Result<Opened>> opened;
    Scope s;
    open_async(*p.client, s, opened, authority);
    auto in = next_request(p);
    EXPECT_TRUE(in);
    if (!in) return {};
    EXPECT_EQ(in->request().method, "CONNECT");
    EXPECT_EQ(in->request().authority, authority);
    StreamPtr server = in->accept();
    h.run_until([&] { return opened.has_value(); }, std::chrono::seconds(10));
    EXPECT_TRUE(opened && *opened);
    if (!opened || !*opened) return {};
    EXPECT_EQ((*opened)->response.status, 200);
    return {std::move((*opened)->tunnel), std::move(server)};
  }

  // Opens a tunnel with early data: the tunnel comes at once, the answer
  // later into `answer`.
  static StreamPtr open_early(H2Pair& p, std::optional<Result<Opened>>& answer) {
    StreamPtr tunnel;
    p.client->open({"CONNECT", "10.0.0.3:80", {}}, [&answer](Result<Opened> r) { answer = std::move(r); },
                   [&tunnel](StreamPtr t) { tunnel = std::move(t); });
    return tunnel;
  }

  static Task<void> send_and_finish(Stream& s, const std::vector<uint8_t>& d) {
    if (!d.empty()) {
      EXPECT_TRUE(co_await io::write_all(s, d));
    }
    EXPECT_TRUE(s.shutdown_write());
  }
  static Task<void> receive(Stream& s, testing::ReadAll& out) { out = co_await testing::read_all(s); }

  H h;
};

TYPED_TEST_SUITE_P(TunnelConformance);

#define ZT_T TestFixture

TYPED_TEST_P(TunnelConformance, BytesBothWaysAndEndStreamIsHalfClose) {
  H2Pair p;
  ASSERT_TRUE(this->h.run(connect_h2(this->h, p), ZT_T::kLimit));
  auto [c, s] = this->tunnel(p);
  ASSERT_TRUE(c && s);
  const auto up = testing::pattern(3 << 20, 1), down = testing::pattern(1 << 20, 2);
  testing::ReadAll at_s, at_c;
  // The client finishes first; the server still answers after seeing EOF.
  ASSERT_TRUE(this->h.run(all(ZT_T::send_and_finish(*c, up), ZT_T::receive(*s, at_s)), ZT_T::kLimit));
  EXPECT_TRUE(at_s.end.ok() && *at_s.end == 0);
  EXPECT_TRUE(at_s.bytes == up);
  ASSERT_TRUE(this->h.run(all(ZT_T::send_and_finish(*s, down), ZT_T::receive(*c, at_c)), ZT_T::kLimit));
  EXPECT_TRUE(at_c.end.ok() && *at_c.end == 0);
  EXPECT_TRUE(at_c.bytes == down);
  c.reset();
  s.reset();
  this->h.idle(std::chrono::milliseconds(100));
  EXPECT_EQ(p.client->active_streams(), 0u);
  EXPECT_EQ(p.server->active_streams(), 0u);
}

TYPED_TEST_P(TunnelConformance, TwoHundredConcurrentTunnelsOnOneConnection) {
  H2Pair p;
  ASSERT_TRUE(this->h.run(connect_h2(this->h, p), ZT_T::kLimit));
  this->h.run_until([&] { return p.client->peer_concurrent_streams_max() == 200; }, std::chrono::seconds(5));
  EXPECT_EQ(p.client->peer_concurrent_streams_max(), 200u);
  std::vector<std::pair<StreamPtr, StreamPtr>> tunnels;
  for (int i = 0; i < 200; ++i) tunnels.push_back(this->tunnel(p));
  EXPECT_FALSE(p.client->accepting_streams());  // at the peer's limit
  std::vector<Task<void>> work;
  std::vector<std::vector<uint8_t>> sent(200);
  std::vector<testing::ReadAll> got(200);
  Rng r(3);
  for (size_t i = 0; i < 200; ++i) {
    ASSERT_TRUE(tunnels[i].first && tunnels[i].second);
    sent[i] = testing::pattern(r.below(100000), uint8_t(i));
    work.push_back(ZT_T::send_and_finish(*tunnels[i].first, sent[i]));
    work.push_back(ZT_T::receive(*tunnels[i].second, got[i]));
  }
  ASSERT_TRUE(this->h.run(all(std::move(work)), ZT_T::kLimit));
  for (size_t i = 0; i < 200; ++i) EXPECT_TRUE(got[i].bytes == sent[i]) << "tunnel " << i;
}

TYPED_TEST_P(TunnelConformance, ARejectedRequestGivesItsStatusAndNoTunnel) {
  H2Pair p;
  ASSERT_TRUE(this->h.run(connect_h2(this->h, p), ZT_T::kLimit));
  std::optional<Result<Opened>> opened;
  Scope s;
  this->open_async(*p.client, s, opened);
  auto in = this->next_request(p);
  ASSERT_TRUE(in);
  in->reject(401);
  this->h.run_until([&] { return opened.has_value(); }, std::chrono::seconds(10));
  ASSERT_TRUE(opened && *opened);
  EXPECT_EQ((*opened)->response.status, 401);
  EXPECT_FALSE((*opened)->tunnel);
  this->h.idle(std::chrono::milliseconds(100));
  EXPECT_EQ(p.client->active_streams(), 0u);
  EXPECT_EQ(p.server->active_streams(), 0u);
}

TYPED_TEST_P(TunnelConformance, ResetIsForwardedBothWays) {
  for (bool client_resets : {true, false}) {
    H2Pair p;
    ASSERT_TRUE(this->h.run(connect_h2(this->h, p), ZT_T::kLimit));
    auto [c, s] = this->tunnel(p);
    ASSERT_TRUE(c && s);
    Stream& resetter = client_resets ? *c : *s;
    Stream& other = client_resets ? *s : *c;
    testing::ReadAll got;
    ASSERT_TRUE(this->h.run([](Stream& a, Stream& b, testing::ReadAll& got) -> Task<void> {
      a.abort();
      got = co_await testing::read_all(b);
    }(resetter, other, got), ZT_T::kLimit));
    ASSERT_FALSE(got.end.ok());
    EXPECT_EQ(got.end.code(), Errc::connection_reset);
  }
}

TYPED_TEST_P(TunnelConformance, ASlowReaderHoldsAtMostOneStreamWindow) {
  H2Pair p;
  ASSERT_TRUE(this->h.run(connect_h2(this->h, p), ZT_T::kLimit));
  auto [c, s] = this->tunnel(p);
  ASSERT_TRUE(c && s);
  const auto data = testing::pattern(48 << 20, 4);
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
  this->h.idle(std::chrono::seconds(1));
  const size_t window = Settings::server().stream_window_bytes;
  EXPECT_GE(written, window);
  EXPECT_LE(written, window + 4 * 65536 + this->h.transport_buffer_bytes_max());
  testing::ReadAll got;
  ASSERT_TRUE(this->h.run(ZT_T::receive(*s, got), ZT_T::kLimit));
  EXPECT_TRUE(got.bytes == data);
}

TYPED_TEST_P(TunnelConformance, GoawayStopsNewStreamsButLetsOpenOnesFinish) {
  H2Pair p;
  ASSERT_TRUE(this->h.run(connect_h2(this->h, p), ZT_T::kLimit));
  auto [c, s] = this->tunnel(p);
  ASSERT_TRUE(c && s);
  p.server->goaway();
  this->h.run_until([&] { return !p.client->accepting_streams(); }, std::chrono::seconds(5));
  EXPECT_FALSE(p.client->accepting_streams());
  std::optional<Result<Opened>> refused;
  Scope sc;
  this->open_async(*p.client, sc, refused);
  this->h.run_until([&] { return refused.has_value(); }, std::chrono::seconds(5));
  ASSERT_TRUE(refused && !*refused);
  EXPECT_EQ(refused->code(), kRefused);
  const auto data = testing::pattern(100000, 5);
  testing::ReadAll got;
  ASSERT_TRUE(this->h.run(all(ZT_T::send_and_finish(*c, data), ZT_T::receive(*s, got)), ZT_T::kLimit));
  EXPECT_TRUE(got.bytes == data);
}

TYPED_TEST_P(TunnelConformance, AConnectionThatDiesBeforeTheResponseRefusesTheStream) {
  H2Pair p;
  ASSERT_TRUE(this->h.run(connect_h2(this->h, p), ZT_T::kLimit));
  std::optional<Result<Opened>> opened;
  Scope s;
  this->open_async(*p.client, s, opened);
  auto in = this->next_request(p);  // held, never answered
  ASSERT_TRUE(in);
  p.server.reset();  // the connection goes before the answer
  this->h.run_until([&] { return opened.has_value(); }, std::chrono::seconds(10));
  ASSERT_TRUE(opened && !*opened);
  EXPECT_EQ(opened->code(), kRefused) << opened->error().message();
}

TYPED_TEST_P(TunnelConformance, WorksOverMutualTls) {
  TlsWorld w(this->h.client().clock.wall_now());
  H2Pair p;
  ASSERT_TRUE(this->h.run(connect_h2(this->h, p, &w), ZT_T::kLimit));
  auto [c, s] = this->tunnel(p);
  ASSERT_TRUE(c && s);
  const auto data = testing::pattern(2 << 20, 6);
  testing::ReadAll got;
  ASSERT_TRUE(this->h.run(all(ZT_T::send_and_finish(*c, data), ZT_T::receive(*s, got)), ZT_T::kLimit));
  EXPECT_TRUE(got.bytes == data);
}

// Closing while the peer still sends: nothing happens until the peer sends
// more, then the stream is reset, as TCP does; a peer that just finishes
// closes it quietly.
TYPED_TEST_P(TunnelConformance, ClosingWhileThePeerStillSendsResetsOnlyIfMoreArrives) {
  H2Pair p;
  ASSERT_TRUE(this->h.run(connect_h2(this->h, p), ZT_T::kLimit));
  auto [c, s] = this->tunnel(p);
  ASSERT_TRUE(c && s);
  c->close();  // sends END_STREAM; the server has not finished
  testing::ReadAll at_server;
  ASSERT_TRUE(this->h.run(ZT_T::receive(*s, at_server), ZT_T::kLimit));
  EXPECT_TRUE(at_server.end.ok() && *at_server.end == 0);  // a clean FIN, no reset yet
  Result<void> w = ok();
  ASSERT_TRUE(this->h.run([](Stream& s, Result<void>& w) -> Task<void> {
    const auto more = testing::pattern(1000, 9);
    w = co_await io::write_all(s, more);
    // The reset comes back a round trip later.
    for (int i = 0; i < 100 && w.ok(); ++i) {
      w = co_await io::write_all(s, more);
    }
  }(*s, w), ZT_T::kLimit));
  EXPECT_FALSE(w.ok());
  if (!w.ok()) {
    EXPECT_EQ(w.code(), Errc::connection_reset);
  }
}

// Early data: a client may write before the answer; the server keeps those
// bytes (and the END_STREAM behind them) for the tunnel it accepts.
TYPED_TEST_P(TunnelConformance, EarlyDataIsKeptForTheAcceptedTunnel) {
  H2Pair p;
  ASSERT_TRUE(this->h.run(connect_h2(this->h, p), ZT_T::kLimit));
  std::optional<Result<Opened>> answer;
  StreamPtr c = ZT_T::open_early(p, answer);
  ASSERT_TRUE(c);  // handed out at once
  const auto up = testing::pattern(300000, 11), down = testing::pattern(5000, 12);
  Scope writer;
  writer.spawn(ZT_T::send_and_finish(*c, up));
  auto in = this->next_request(p);
  ASSERT_TRUE(in);
  this->h.idle(std::chrono::milliseconds(200));  // every early byte arrives before the answer
  EXPECT_FALSE(answer.has_value());
  StreamPtr s = in->accept();
  ASSERT_TRUE(s);
  this->h.run_until([&] { return answer.has_value(); }, std::chrono::seconds(10));
  ASSERT_TRUE(answer && *answer);
  EXPECT_EQ((*answer)->response.status, 200);
  EXPECT_FALSE((*answer)->tunnel);  // it was handed out early
  testing::ReadAll at_s, at_c;
  ASSERT_TRUE(this->h.run(ZT_T::receive(*s, at_s), ZT_T::kLimit));
  EXPECT_TRUE(at_s.end.ok() && *at_s.end == 0);
  EXPECT_TRUE(at_s.bytes == up);
  ASSERT_TRUE(this->h.run(all(ZT_T::send_and_finish(*s, down), ZT_T::receive(*c, at_c)), ZT_T::kLimit));
  EXPECT_TRUE(at_c.bytes == down);
}

// A refused request's early data is dropped and acknowledged: more than a
// connection window of it, over several refused streams, still leaves the
// connection able to carry a tunnel; the early tunnel fails with kRefused.
TYPED_TEST_P(TunnelConformance, EarlyDataOfARefusedRequestIsDroppedAndItsWindowReturns) {
  H2Pair p;
  ASSERT_TRUE(this->h.run(connect_h2(this->h, p), ZT_T::kLimit));
  const size_t per_stream = Settings::server().stream_window_bytes - 65536;
  const size_t streams = Settings::server().connection_window_bytes / per_stream + 2;
  const auto early = testing::pattern(per_stream, 13);
  for (size_t i = 0; i < streams; ++i) {
    std::optional<Result<Opened>> answer;
    StreamPtr c = ZT_T::open_early(p, answer);
    ASSERT_TRUE(c);
    std::optional<Result<void>> written;  // stays empty while the window is closed
    Scope writer;
    writer.spawn([](Stream& c, const std::vector<uint8_t>& d, std::optional<Result<void>>& w) -> Task<void> {
      w = co_await io::write_all(c, d);
    }(*c, early, written));
    auto in = this->next_request(p);
    ASSERT_TRUE(in);
    this->h.idle(std::chrono::milliseconds(200));
    ASSERT_TRUE(written && *written) << "stream " << i;
    in->reject(503);
    this->h.run_until([&] { return answer.has_value(); }, std::chrono::seconds(10));
    ASSERT_TRUE(answer && *answer);
    EXPECT_EQ((*answer)->response.status, 503);
    testing::ReadAll got;
    ASSERT_TRUE(this->h.run(ZT_T::receive(*c, got), ZT_T::kLimit));
    ASSERT_FALSE(got.end.ok());
    EXPECT_EQ(got.end.code(), kRefused);
    c.reset();
    this->h.idle(std::chrono::milliseconds(100));
    EXPECT_EQ(p.client->active_streams(), 0u);
    EXPECT_EQ(p.server->active_streams(), 0u);
  }
  auto [c, s] = this->tunnel(p);
  ASSERT_TRUE(c && s);
  const auto data = testing::pattern(1 << 20, 14);
  testing::ReadAll got;
  ASSERT_TRUE(this->h.run(all(ZT_T::send_and_finish(*c, data), ZT_T::receive(*s, got)), ZT_T::kLimit));
  EXPECT_TRUE(got.bytes == data);
}

#undef ZT_T

REGISTER_TYPED_TEST_SUITE_P(TunnelConformance, BytesBothWaysAndEndStreamIsHalfClose,
                            TwoHundredConcurrentTunnelsOnOneConnection, ARejectedRequestGivesItsStatusAndNoTunnel,
                            ResetIsForwardedBothWays, ASlowReaderHoldsAtMostOneStreamWindow,
                            GoawayStopsNewStreamsButLetsOpenOnesFinish,
                            AConnectionThatDiesBeforeTheResponseRefusesTheStream, WorksOverMutualTls,
                            ClosingWhileThePeerStillSendsResetsOnlyIfMoreArrives, EarlyDataIsKeptForTheAcceptedTunnel,
                            EarlyDataOfARefusedRequestIsDroppedAndItsWindowReturns);

}  // namespace zt::testing
