// The relay conformance suite: one set of tests, run on io/sim
// (sim-tests/relay_conformance_sim_test.cc) and on real loopback sockets
// (e2e/relay_conformance_real_test.cc), over IPv4 and IPv6.
//
// Instantiate with a Harness type:
//   INSTANTIATE_TYPED_TEST_SUITE_P(Sim, RelayConformance, ::testing::Types<SimHarness<v4>>);
#pragma once

#include <gtest/gtest.h>

#include "testing/relay.h"
#include "testing/harness.h"

namespace zt::testing {

using zt::testing::is_error;
using zt::testing::pattern;
using zt::testing::read_all;
using zt::testing::ReadAll;

template <class H>
class RelayConformance : public ::testing::Test {
 protected:
  static constexpr Duration kLimit = std::chrono::seconds(60);

  // A server listening on the server side, and a relay on the proxy side
  // pointing at it.
  void SetUp() override {
    auto l = h.server().net.listen(Endpoint{h.server_ip(), 0}, {});
    ASSERT_TRUE(l) << l.error().message();
    server_listener = std::move(*l);
    start_relay(server_listener->local());
  }

  void start_relay(Endpoint dst) {
    auto l = h.proxy().net.listen(Endpoint{h.proxy_ip(), 0}, {});
    ASSERT_TRUE(l) << l.error().message();
    relay = std::make_unique<RelayServer>(h.proxy(), std::move(*l), cfg, RelayServer::fixed(dst));
    relay->on_finished([this](const RelayResult& r) { results.push_back(r); });
    relay->start();
  }

  void TearDown() override {
    relay.reset();
    server_listener.reset();
    EXPECT_EQ(h.leftovers(), "");
  }

  // Connects a client through the relay and accepts it at the server.
  static Task<void> open(H& h, RelayServer& relay, Listener& server_listener, StreamPtr& client, StreamPtr& server) {
    auto c = co_await io::connect(h.client(), relay.local(), {}, std::chrono::seconds(5));
    EXPECT_TRUE(c) << c.error().message();
    if (!c) co_return;
    auto s = co_await io::accept(server_listener);
    EXPECT_TRUE(s) << s.error().message();
    if (!s) co_return;
    client = std::move(*c);
    server = std::move(*s);
  }

  // Sends data then FIN.
  static Task<void> send_and_finish(Stream& s, const std::vector<uint8_t>& data) {
    if (!data.empty()) {
      EXPECT_TRUE(co_await io::write_all(s, data));
    }
    EXPECT_TRUE(s.shutdown_write());
  }

  static Task<void> receive(Stream& s, ReadAll& out) { out = co_await read_all(s); }

  H h;
  RelayConfig cfg;
  std::unique_ptr<Listener> server_listener;
  std::unique_ptr<RelayServer> relay;
  std::vector<RelayResult> results;
};

TYPED_TEST_SUITE_P(RelayConformance);

TYPED_TEST_P(RelayConformance, CopiesBothWaysConcurrentlyAndCountsBytes) {
  using T = RelayConformance<TypeParam>;
  StreamPtr client, server;
  ASSERT_TRUE(this->h.run(T::open(this->h, *this->relay, *this->server_listener, client, server), T::kLimit));
  ASSERT_TRUE(client && server);
  const auto up = pattern(3 << 20, 1), down = pattern(2 << 20, 2);
  ReadAll at_server, at_client;
  ASSERT_TRUE(this->h.run(all(T::send_and_finish(*client, up), T::send_and_finish(*server, down),
                               T::receive(*server, at_server), T::receive(*client, at_client)),
                          T::kLimit));
  EXPECT_TRUE(at_server.end.ok() && *at_server.end == 0);
  EXPECT_TRUE(at_server.bytes == up);
  EXPECT_TRUE(at_client.end.ok() && *at_client.end == 0);
  EXPECT_TRUE(at_client.bytes == down);
  client.reset();
  server.reset();
  this->h.idle(std::chrono::milliseconds(100));
  ASSERT_EQ(this->results.size(), 1u);
  EXPECT_EQ(this->results[0].outcome, RelayOutcome::finished);
  EXPECT_EQ(this->results[0].bytes.bytes_a_to_b, up.size());
  EXPECT_EQ(this->results[0].bytes.bytes_b_to_a, down.size());
  EXPECT_EQ(this->relay->counters().bytes_to_upstream, up.size());
  EXPECT_EQ(this->relay->counters().bytes_to_downstream, down.size());
  EXPECT_EQ(this->relay->counters().active, 0u);
}

// The client finishes its request first; the server answers after seeing EOF.
TYPED_TEST_P(RelayConformance, ClientHalfCloseIsForwardedAndTheReplyStillFlows) {
  using T = RelayConformance<TypeParam>;
  StreamPtr client, server;
  ASSERT_TRUE(this->h.run(T::open(this->h, *this->relay, *this->server_listener, client, server), T::kLimit));
  ASSERT_TRUE(client && server);
  bool ok = this->h.run([](Stream& client, Stream& server) -> Task<void> {
    const auto request = pattern(5000, 3), reply = pattern(70000, 4);
    co_await T::send_and_finish(client, request);
    ReadAll got = co_await read_all(server);
    EXPECT_TRUE(got.end.ok() && *got.end == 0);  // FIN arrived after the request
    EXPECT_TRUE(got.bytes == request);
    ReadAll back;
    co_await join(T::send_and_finish(server, reply), T::receive(client, back));  // concurrently: flow control
    EXPECT_TRUE(back.end.ok() && *back.end == 0);
    EXPECT_TRUE(back.bytes == reply);
  }(*client, *server), T::kLimit);
  EXPECT_TRUE(ok);
}

// The server finishes first (e.g. a banner then close); the client keeps sending.
TYPED_TEST_P(RelayConformance, ServerHalfCloseIsForwardedAndTheClientStillSends) {
  using T = RelayConformance<TypeParam>;
  StreamPtr client, server;
  ASSERT_TRUE(this->h.run(T::open(this->h, *this->relay, *this->server_listener, client, server), T::kLimit));
  ASSERT_TRUE(client && server);
  bool ok = this->h.run([](Stream& client, Stream& server) -> Task<void> {
    const auto banner = pattern(100, 5), upload = pattern(200000, 6);
    co_await T::send_and_finish(server, banner);
    ReadAll got = co_await read_all(client);
    EXPECT_TRUE(got.end.ok() && *got.end == 0);
    EXPECT_TRUE(got.bytes == banner);
    ReadAll at_server;
    co_await join(T::send_and_finish(client, upload), T::receive(server, at_server));
    EXPECT_TRUE(at_server.end.ok() && *at_server.end == 0);
    EXPECT_TRUE(at_server.bytes == upload);
  }(*client, *server), T::kLimit);
  EXPECT_TRUE(ok);
}

TYPED_TEST_P(RelayConformance, ClientResetIsForwardedAsReset) {
  using T = RelayConformance<TypeParam>;
  StreamPtr client, server;
  ASSERT_TRUE(this->h.run(T::open(this->h, *this->relay, *this->server_listener, client, server), T::kLimit));
  ASSERT_TRUE(client && server);
  ReadAll at_server;
  bool ok = this->h.run([](Stream& client, Stream& server, ReadAll& at_server) -> Task<void> {
    const auto hello = pattern(1000, 7);
    EXPECT_TRUE(co_await io::write_all(client, hello));
    std::vector<uint8_t> buf(hello.size());
    size_t got = 0;
    while (got < hello.size()) {  // the bytes before the reset arrive
      auto n = co_await io::read(server, MutableBytes(buf).subspan(got));
      if (!n || *n == 0) break;
      got += *n;
    }
    EXPECT_EQ(got, hello.size());
    client.abort();
    at_server = co_await read_all(server);
  }(*client, *server, at_server), T::kLimit);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(is_error(at_server.end, Errc::connection_reset)) << "server saw a clean EOF, not a reset";
  this->h.idle(std::chrono::milliseconds(100));
  ASSERT_EQ(this->results.size(), 1u);
  EXPECT_EQ(this->results[0].outcome, RelayOutcome::reset_downstream);
}

TYPED_TEST_P(RelayConformance, ServerResetIsForwardedAsReset) {
  using T = RelayConformance<TypeParam>;
  StreamPtr client, server;
  ASSERT_TRUE(this->h.run(T::open(this->h, *this->relay, *this->server_listener, client, server), T::kLimit));
  ASSERT_TRUE(client && server);
  ReadAll at_client;
  bool ok = this->h.run([](Stream& server, Stream& client, ReadAll& at_client) -> Task<void> {
    // One byte end to end first, so the reset comes mid-stream, after the
    // relay's upstream connect has completed.
    const uint8_t one[] = {42};
    EXPECT_TRUE(co_await io::write_all(server, one));
    uint8_t got[1];
    auto n = co_await io::read(client, got);
    EXPECT_TRUE(n && *n == 1);
    server.abort();
    at_client = co_await read_all(client);
  }(*server, *client, at_client), T::kLimit);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(is_error(at_client.end, Errc::connection_reset));
  this->h.idle(std::chrono::milliseconds(100));
  ASSERT_EQ(this->results.size(), 1u);
  EXPECT_EQ(this->results[0].outcome, RelayOutcome::reset_upstream);
}

TYPED_TEST_P(RelayConformance, RefusedUpstreamResetsTheClient) {
  using T = RelayConformance<TypeParam>;
  const Endpoint closed = this->server_listener->local();
  this->server_listener.reset();  // nothing listens there now
  this->start_relay(closed);
  ReadAll at_client;
  bool ok = this->h.run([](TypeParam& h, RelayServer& relay, ReadAll& out) -> Task<void> {
    auto c = co_await io::connect(h.client(), relay.local(), {}, std::chrono::seconds(5));
    EXPECT_TRUE(c);
    if (c) out = co_await read_all(**c);
  }(this->h, *this->relay, at_client), T::kLimit);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(is_error(at_client.end, Errc::connection_reset));
  this->h.idle(std::chrono::milliseconds(100));
  ASSERT_EQ(this->results.size(), 1u);
  EXPECT_EQ(this->results[0].outcome, RelayOutcome::connect_failed);
  ASSERT_TRUE(this->results[0].error);
  EXPECT_EQ(this->results[0].error->code, Errc::connection_refused);
  EXPECT_EQ(this->relay->counters().connect_failed, 1u);
}

TYPED_TEST_P(RelayConformance, UnansweredUpstreamTimesOutAndResetsTheClient) {
  using T = RelayConformance<TypeParam>;
  this->cfg.connect_timeout = std::chrono::milliseconds(300);
  this->start_relay(this->h.unresponsive_endpoint());
  ReadAll at_client;
  bool ok = this->h.run([](TypeParam& h, RelayServer& relay, ReadAll& out) -> Task<void> {
    auto c = co_await io::connect(h.client(), relay.local(), {}, std::chrono::seconds(5));
    EXPECT_TRUE(c);
    if (c) out = co_await read_all(**c);
  }(this->h, *this->relay, at_client), T::kLimit);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(is_error(at_client.end, Errc::connection_reset));
  this->h.idle(std::chrono::milliseconds(100));
  ASSERT_EQ(this->results.size(), 1u);
  ASSERT_TRUE(this->results[0].error);
  EXPECT_EQ(this->results[0].error->code, Errc::timed_out);
}

// A server that stops reading stalls the client's writes: the relay holds at
// most its two copy buffers, never the whole upload.
TYPED_TEST_P(RelayConformance, SlowReaderStallsTheWriterAndLosesNothing) {
  using T = RelayConformance<TypeParam>;
  StreamPtr client, server;
  ASSERT_TRUE(this->h.run(T::open(this->h, *this->relay, *this->server_listener, client, server), T::kLimit));
  ASSERT_TRUE(client && server);
  const auto upload = pattern(48u << 20, 8);
  size_t written = 0;
  bool writer_done = false;
  Scope writer;
  writer.spawn([](Stream& s, const std::vector<uint8_t>& data, size_t& written, bool& done) -> Task<void> {
    while (written < data.size()) {
      auto n = co_await io::write_some(s, ConstBytes(data).subspan(written));
      if (!n) break;
      written += *n;
    }
    EXPECT_TRUE(s.shutdown_write());
    done = true;
  }(*client, upload, written, writer_done));
  this->h.idle(std::chrono::milliseconds(500));
  EXPECT_FALSE(writer_done);
  // Kernel socket buffers on loopback may hold a few MiB each; the relay adds
  // at most copy_buffer_bytes_max per direction.
  EXPECT_LT(written, size_t(24) << 20);
  ReadAll at_server;
  ASSERT_TRUE(this->h.run(T::receive(*server, at_server), T::kLimit));
  EXPECT_TRUE(writer_done);
  EXPECT_EQ(at_server.bytes.size(), upload.size());
  EXPECT_TRUE(at_server.bytes == upload);
  EXPECT_TRUE(at_server.end.ok() && *at_server.end == 0);
}

TYPED_TEST_P(RelayConformance, ManyConnectionsAtOnce) {
  using T = RelayConformance<TypeParam>;
  constexpr int kConns = 40;
  std::vector<StreamPtr> clients(kConns), servers(kConns);
  bool ok = this->h.run([](TypeParam& h, RelayServer& relay, Listener& l, std::vector<StreamPtr>& clients,
                           std::vector<StreamPtr>& servers) -> Task<void> {
    for (int i = 0; i < kConns; ++i) co_await T::open(h, relay, l, clients[size_t(i)], servers[size_t(i)]);
  }(this->h, *this->relay, *this->server_listener, clients, servers), T::kLimit);
  ASSERT_TRUE(ok);
  std::vector<Task<void>> work;
  std::vector<ReadAll> got(kConns);
  std::vector<std::vector<uint8_t>> sent(kConns);
  for (int i = 0; i < kConns; ++i) {
    sent[size_t(i)] = pattern(size_t(1000 + 7919 * i), uint8_t(i));
    work.push_back(T::send_and_finish(*clients[size_t(i)], sent[size_t(i)]));
    work.push_back(T::receive(*servers[size_t(i)], got[size_t(i)]));
  }
  ASSERT_TRUE(this->h.run(all(std::move(work)), T::kLimit));
  for (int i = 0; i < kConns; ++i) EXPECT_TRUE(got[size_t(i)].bytes == sent[size_t(i)]) << "connection " << i;
  EXPECT_EQ(this->relay->counters().accepted, uint64_t(kConns));
}

// Bulk flows leave the copy buffer for the runtime's transfer (splice on
// real sockets, proven by its counters); FIN per direction, byte counts and
// the results stay what the buffered copy gives.
TYPED_TEST_P(RelayConformance, BulkGoesThroughTheRuntimesTransferWithHalfCloseAndExactCounts) {
  using T = RelayConformance<TypeParam>;
  const TransferStats before = this->h.proxy().net.transfer_stats();
  StreamPtr client, server;
  ASSERT_TRUE(this->h.run(T::open(this->h, *this->relay, *this->server_listener, client, server), T::kLimit));
  ASSERT_TRUE(client && server);
  const auto request = pattern(6u << 20, 11), reply = pattern((5u << 20) + 4321, 12);
  bool ok = this->h.run([](Stream& client, Stream& server, const std::vector<uint8_t>& request,
                           const std::vector<uint8_t>& reply) -> Task<void> {
    ReadAll got;
    co_await join(T::send_and_finish(client, request), T::receive(server, got));
    EXPECT_TRUE(got.end.ok() && *got.end == 0);  // the FIN came through the transfer
    EXPECT_TRUE(got.bytes == request);
    ReadAll back;
    co_await join(T::send_and_finish(server, reply), T::receive(client, back));
    EXPECT_TRUE(back.end.ok() && *back.end == 0);
    EXPECT_TRUE(back.bytes == reply);
  }(*client, *server, request, reply), T::kLimit);
  EXPECT_TRUE(ok);
  client.reset();
  server.reset();
  this->h.idle(std::chrono::milliseconds(100));
  const TransferStats after = this->h.proxy().net.transfer_stats();
  EXPECT_EQ(after.transfers - before.transfers, 2u) << "one transfer per direction";
  // All but the first few hundred KiB of each direction (the buffer's growth).
  EXPECT_GE(after.bytes - before.bytes, request.size() + reply.size() - (2u << 20));
  ASSERT_EQ(this->results.size(), 1u);
  EXPECT_EQ(this->results[0].outcome, RelayOutcome::finished);
  EXPECT_EQ(this->results[0].bytes.bytes_a_to_b, request.size());
  EXPECT_EQ(this->results[0].bytes.bytes_b_to_a, reply.size());
}

// A reset in the middle of a bulk flow, once the transfer carries it, is
// still forwarded as a reset, whichever side resets.
TYPED_TEST_P(RelayConformance, ResetDuringBulkTransferIsForwardedAsReset) {
  using T = RelayConformance<TypeParam>;
  for (const bool client_resets : {true, false}) {
    SCOPED_TRACE(client_resets ? "client resets" : "server resets");
    this->results.clear();
    const TransferStats before = this->h.proxy().net.transfer_stats();
    StreamPtr client, server;
    ASSERT_TRUE(this->h.run(T::open(this->h, *this->relay, *this->server_listener, client, server), T::kLimit));
    ASSERT_TRUE(client && server);
    Stream& sender = client_resets ? *client : *server;
    Stream& receiver = client_resets ? *server : *client;
    const auto bulk = pattern(2u << 20, 13);
    ReadAll at_receiver;
    bool ok = this->h.run([](Stream& sender, Stream& receiver, const std::vector<uint8_t>& bulk,
                             ReadAll& out) -> Task<void> {
      size_t got = 0;
      co_await join(
          [](Stream& s, const std::vector<uint8_t>& bulk) -> Task<void> {
            EXPECT_TRUE(co_await io::write_all(s, bulk));
          }(sender, bulk),
          [](Stream& s, size_t want, size_t& got) -> Task<void> {
            std::vector<uint8_t> buf(64 * 1024);
            while (got < want) {  // everything before the reset arrives
              auto n = co_await io::read(s, buf);
              if (!n || *n == 0) break;
              got += *n;
            }
          }(receiver, bulk.size(), got));
      EXPECT_EQ(got, bulk.size());
      sender.abort();
      out = co_await read_all(receiver);
    }(sender, receiver, bulk, at_receiver), T::kLimit);
    EXPECT_TRUE(ok);
    EXPECT_TRUE(is_error(at_receiver.end, Errc::connection_reset)) << "a clean EOF, not a reset";
    client.reset();
    server.reset();
    this->h.idle(std::chrono::milliseconds(100));
    EXPECT_GT(this->h.proxy().net.transfer_stats().bytes, before.bytes) << "the transfer never ran";
    ASSERT_EQ(this->results.size(), 1u);
    EXPECT_EQ(this->results[0].outcome,
              client_resets ? RelayOutcome::reset_downstream : RelayOutcome::reset_upstream);
  }
}

// Request/response traffic in small messages is not bulk: it keeps the
// small buffer and never takes a pipe, however many bytes pass.
TYPED_TEST_P(RelayConformance, PingPongNeverAsksForATransfer) {
  using T = RelayConformance<TypeParam>;
  const TransferStats before = this->h.proxy().net.transfer_stats();
  StreamPtr client, server;
  ASSERT_TRUE(this->h.run(T::open(this->h, *this->relay, *this->server_listener, client, server), T::kLimit));
  ASSERT_TRUE(client && server);
  bool ok = this->h.run([](Stream& client, Stream& server) -> Task<void> {
    const auto msg = pattern(1024, 14);
    std::vector<uint8_t> buf(1024);
    for (int i = 0; i < 400; ++i) {  // 400 KiB each way, well past copy_grow_after_bytes
      EXPECT_TRUE(co_await io::write_all(client, msg));
      for (size_t got = 0; got < msg.size();) {
        auto n = co_await io::read(server, MutableBytes(buf).subspan(got));
        if (!n || *n == 0) co_return;
        got += *n;
      }
      EXPECT_TRUE(co_await io::write_all(server, buf));
      for (size_t got = 0; got < msg.size();) {
        auto n = co_await io::read(client, MutableBytes(buf).subspan(got));
        if (!n || *n == 0) co_return;
        got += *n;
      }
    }
  }(*client, *server), T::kLimit);
  EXPECT_TRUE(ok);
  EXPECT_EQ(this->h.proxy().net.transfer_stats().transfers, before.transfers);
}

REGISTER_TYPED_TEST_SUITE_P(RelayConformance, CopiesBothWaysConcurrentlyAndCountsBytes,
                            ClientHalfCloseIsForwardedAndTheReplyStillFlows,
                            ServerHalfCloseIsForwardedAndTheClientStillSends, ClientResetIsForwardedAsReset,
                            ServerResetIsForwardedAsReset, RefusedUpstreamResetsTheClient,
                            UnansweredUpstreamTimesOutAndResetsTheClient, SlowReaderStallsTheWriterAndLosesNothing,
                            ManyConnectionsAtOnce, BulkGoesThroughTheRuntimesTransferWithHalfCloseAndExactCounts,
                            ResetDuringBulkTransferIsForwardedAsReset, PingPongNeverAsksForATransfer);

}  // namespace zt::testing
