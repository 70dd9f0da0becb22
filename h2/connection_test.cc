// HTTP/2 tunnels on io/sim: the conformance suite (IPv4 and IPv6), and what
// only the simulator can do: a peer that goes silent.
#include <gtest/gtest.h>

#include <numeric>

#include "testing/tunnel_conformance.h"
#include "testing/sim_harness.h"
#include "testing/sim_writes.h"

namespace zt::h2 {

using namespace zt::testing;

using SimHarnesses = ::testing::Types<testing::SimHarness<IpAddr::Family::v4>, testing::SimHarness<IpAddr::Family::v6>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Sim, TunnelConformance, SimHarnesses);

namespace {

class H2Sim : public TunnelConformance<testing::SimHarness<IpAddr::Family::v4>> {};

TEST_F(H2Sim, ABlackHoledPeerIsDroppedAfterThePingTimeout) {
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  auto [c, s] = tunnel(p);
  ASSERT_TRUE(c && s);
  h.world().partition(h.client_host().id(), h.server_host().id());
  testing::ReadAll got;
  const MonoTime start = h.world().now();
  ASSERT_TRUE(h.run(receive(*c, got), kLimit));
  EXPECT_TRUE(p.client->dead());
  EXPECT_EQ(got.end.code(), Errc::connection_reset);
  const Duration took = h.world().now() - start;
  EXPECT_GE(took, std::chrono::seconds(20));  // idle 10 s, then 20 s without an answer
  EXPECT_LE(took, std::chrono::seconds(41));
  EXPECT_FALSE(p.client->accepting_streams());
}

// A peer whose requests pile up unanswered past unanswered_requests_max
// (rapid reset, or a flood) gets GOAWAY(ENHANCE_YOUR_CALM) and the
// connection ends; requests still waiting for an answer are told (on_cancel).
TEST_F(H2Sim, TooManyUnansweredRequestsCalmThePeerDown) {
  H2Pair p;
  Settings server = Settings::server();
  server.unanswered_requests_max = 10;
  ASSERT_TRUE(h.run(connect_h2(h, p, nullptr, Settings::client(), server), kLimit));
  int refused = 0, cancelled = 0;
  for (int i = 0; i < 20; ++i) {
    p.client->open({"CONNECT", "10.0.0.1:80", {}}, [&refused](Result<Opened> r) {
      if (!r && r.code() == kRefused) ++refused;
    });
  }
  h.world().run_for(std::chrono::milliseconds(100));
  ASSERT_EQ(p.requests.size(), 10u) << "the application saw the first ten";
  for (auto& in : p.requests) in->on_cancel([&cancelled] { ++cancelled; });
  h.world().run_for(std::chrono::seconds(1));
  EXPECT_TRUE(p.server->calmed());
  EXPECT_TRUE(p.server->dead());
  EXPECT_TRUE(p.client->dead());
  EXPECT_EQ(refused, 20) << "no request was answered: every one is safe to retry elsewhere";
  EXPECT_EQ(cancelled, 10);
  EXPECT_TRUE(p.requests.front()->cancelled());
}

// A header block past the server's limit (64 KiB) is answered at once, not
// left hanging: 431 or a reset, and the connection serves the next request.
TEST_F(H2Sim, AnOversizedHeaderBlockIsAnsweredPromptly) {
  H2Pair p;
  Settings client = Settings::client();
  client.header_list_bytes_max = 256 << 10;  // lets us send what the server refuses
  ASSERT_TRUE(h.run(connect_h2(h, p, nullptr, client), kLimit));
  std::optional<Result<Opened>> answer;
  p.client->open({"CONNECT", "10.0.0.1:80", {{"x-big", std::string(70 << 10, 'a')}}},
                 [&answer](Result<Opened> r) { answer.emplace(std::move(r)); });
  ASSERT_TRUE(h.world().run_until([&] { return answer.has_value(); }, std::chrono::seconds(5)))
      << "no answer and no close";
  ASSERT_TRUE(answer->ok()) << answer->error().message();
  EXPECT_EQ((*answer)->response.status, 431);
  EXPECT_TRUE(p.requests.empty()) << "the application never saw it";
  EXPECT_EQ(p.server->oversized_requests(), 1u);
  std::optional<Result<Opened>> next;
  p.client->open({"CONNECT", "10.0.0.1:80", {}}, [&next](Result<Opened> r) { next.emplace(std::move(r)); });
  ASSERT_TRUE(h.world().run_until([&] { return !p.requests.empty() || next.has_value(); }, std::chrono::seconds(5)));
  EXPECT_EQ(p.requests.size(), 1u) << "the connection serves the next request";
}

// Below the bound, a reset stream only tells its own request.
TEST_F(H2Sim, AResetBeforeTheAnswerCancelsThatRequestOnly) {
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  std::vector<StreamPtr> early;
  for (int i = 0; i < 2; ++i) {
    p.client->open({"CONNECT", "10.0.0.1:80", {}}, [](Result<Opened>) {},
                   [&early](StreamPtr t) { early.push_back(std::move(t)); });
  }
  h.world().run_for(std::chrono::milliseconds(100));
  ASSERT_EQ(p.requests.size(), 2u);
  int cancelled[2] = {0, 0};
  p.requests[0]->on_cancel([&] { ++cancelled[0]; });
  p.requests[1]->on_cancel([&] { ++cancelled[1]; });
  early[0]->abort();
  h.world().run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(cancelled[0], 1);
  EXPECT_EQ(cancelled[1], 0);
  EXPECT_TRUE(p.requests[0]->cancelled());
  EXPECT_FALSE(p.requests[1]->cancelled());
  EXPECT_FALSE(p.server->calmed());
  p.requests[1]->accept();
  p.requests.clear();
  h.world().run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(cancelled[1], 0) << "an answered request is never cancelled";
}

// DATA frames that arrive while a read waits go straight into its buffer
// and complete it once: a 64 KiB write (four 16 KiB frames) arrives as one
// read, not one read per frame. (The first 64 KiB only wakes the connection:
// while quiet, the transports read in small buffers, io/bytes.h ReadBuffer.)
TEST_F(H2Sim, FramesArrivingTogetherCompleteOneRead) {
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  auto [c, s] = tunnel(p);
  ASSERT_TRUE(c && s);
  std::vector<uint8_t> buf(256 * 1024);
  std::vector<size_t> reads;
  Scope scope;
  scope.spawn([](Stream& s, std::vector<uint8_t>& buf, std::vector<size_t>& reads) -> Task<void> {
    for (;;) {
      Result<size_t> n = co_await io::read(s, buf);
      if (!n || *n == 0) co_return;
      reads.push_back(*n);
    }
  }(*s, buf, reads));
  const std::vector<uint8_t> data = testing::pattern(64 * 1024);
  ASSERT_TRUE(h.run([](Stream& c, const std::vector<uint8_t>& data) -> Task<void> {
    EXPECT_TRUE(co_await io::write_all(c, data));
  }(*c, data), kLimit));
  h.idle(std::chrono::milliseconds(100));  // delivered; the next read is pending
  const size_t first_burst = reads.size();
  ASSERT_TRUE(h.run(send_and_finish(*c, data), kLimit));
  h.idle(std::chrono::seconds(1));
  ASSERT_GT(reads.size(), first_burst);
  // All but the frame cut by the 64 KiB transport read; before, the first
  // frame completed the read on its own (16 KiB).
  EXPECT_GT(reads[first_burst], 3 * 16384u) << "reads: " << reads.size();
  EXPECT_EQ(std::accumulate(reads.begin(), reads.end(), size_t{0}), 2 * data.size());
}

// What a tunnel received and its application did not read is held up to the
// stream window, never more: the sender waits for the reader, and the held
// bytes (Connection::unread) shrink as it reads.
TEST_F(H2Sim, UnreadBytesStopAtTheStreamWindow) {
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  auto [c, s] = tunnel(p);
  ASSERT_TRUE(c && s);
  const std::vector<uint8_t> data = testing::pattern(6 << 20);
  Scope scope;
  bool written = false;
  scope.spawn([](Stream& c, const std::vector<uint8_t>& data, bool& written) -> Task<void> {
    written = bool(co_await io::write_all(c, data));
  }(*c, data, written));
  h.idle(std::chrono::seconds(2));
  const Settings windows = Settings::server();
  EXPECT_FALSE(written);  // held back by the window
  EXPECT_EQ(p.server->unread().stream_max, windows.stream_window_bytes);
  EXPECT_EQ(p.server->unread().total, windows.stream_window_bytes);
  std::vector<uint8_t> buf(1 << 20);
  ASSERT_TRUE(h.run([](Stream& s, std::vector<uint8_t>& buf) -> Task<void> {
    size_t got = 0;
    while (got < buf.size()) {
      Result<size_t> n = co_await io::read(s, MutableBytes(buf).subspan(got));
      if (!n || *n == 0) co_return;
      got += *n;
    }
  }(*s, buf), kLimit));
  EXPECT_LT(p.server->unread().total, windows.stream_window_bytes);
  EXPECT_EQ(p.client->unread().total, 0u);
}

// The client's first write waits one loop turn, so a CONNECT submitted
// right after start() goes with the preface and SETTINGS: one send, not two.
TEST_F(H2Sim, TheFirstRequestGoesWithThePreface) {
  testing::SimWrites writes(h.world());
  H2Pair p;
  std::optional<Result<Opened>> opened;
  Scope scope;
  ASSERT_TRUE(h.run([](testing::Harness& h, H2Pair& p, Scope& scope, std::optional<Result<Opened>>& opened) -> Task<void> {
    co_await connect_h2(h, p);
    // In the same turn as start().
    scope.spawn([](Connection& c, std::optional<Result<Opened>>& out) -> Task<void> {
      out = co_await open_tunnel(c, "10.0.0.3:80");
    }(*p.client, opened));
  }(h, p, scope, opened), kLimit));
  auto in = next_request(p);
  ASSERT_TRUE(in);
  StreamPtr server_side = in->accept();
  ASSERT_TRUE(h.run_until([&] { return opened.has_value(); }, kLimit));
  ASSERT_TRUE(*opened);
  // Preface + SETTINGS + WINDOW_UPDATE + HEADERS; then the SETTINGS ACK.
  const std::vector<size_t> sent = writes.by_side(testing::SimWrites::kClient);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_GT(sent[0], 24u + 9 + 5 * 6 + 13 + 9);  // more than the preface, SETTINGS and WINDOW_UPDATE
  EXPECT_EQ(sent[1], 9u);                        // SETTINGS ACK
}

// A stream whose early data left may have reached the peer's application:
// if the connection then ends before the answer, it is lost (kLost), not
// refused, so nobody sends those bytes elsewhere. One without data is
// still refused (safe to retry).
TEST_F(H2Sim, AStreamWhoseEarlyDataLeftIsLostNotRefusedWhenTheConnectionEnds) {
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  std::vector<StreamPtr> early;
  std::optional<Result<Opened>> with_data, without_data;
  p.client->open({"CONNECT", "10.0.0.1:80", {}}, [&](Result<Opened> r) { with_data.emplace(std::move(r)); },
                 [&early](StreamPtr t) { early.push_back(std::move(t)); });
  p.client->open({"CONNECT", "10.0.0.1:81", {}}, [&](Result<Opened> r) { without_data.emplace(std::move(r)); },
                 [&early](StreamPtr t) { early.push_back(std::move(t)); });
  ASSERT_EQ(early.size(), 2u);
  const std::vector<uint8_t> hello = testing::pattern(100);
  bool written = false;
  early[0]->write(hello, [&written](Result<size_t> r) { written = r.ok(); });
  h.world().run_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(written);
  ASSERT_EQ(p.requests.size(), 2u) << "both reached the server, unanswered";
  p.server->close(Error(Errc::cancelled, "the server goes away"));  // no GOAWAY: a crash
  ASSERT_TRUE(h.world().run_until([&] { return with_data && without_data; }, std::chrono::seconds(5)));
  ASSERT_FALSE(with_data->ok());
  EXPECT_EQ(with_data->code(), kLost) << with_data->error().message();
  ASSERT_FALSE(without_data->ok());
  EXPECT_EQ(without_data->code(), kRefused) << without_data->error().message();
}

// A request submitted while the connection is writing, overtaken by a
// GOAWAY that arrives before it is sent: nghttp2 will not send it. It never
// left, so it is refused (the pool retries it elsewhere), not an error of
// the caller's. (Mesh swarm seed 338: a tunnel failed, its endpoint ejected.)
TEST_F(H2Sim, ARequestOvertakenByGoawayBeforeItIsSentIsRefused) {
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  auto [c, s] = tunnel(p);
  ASSERT_TRUE(c && s);
  // Segments to the server are held: a big write keeps the client's
  // transport write in flight (and the next frames queued behind it).
  h.world().partition_one_way(h.client_host().id(), h.server_host().id());
  const std::vector<uint8_t> big = testing::pattern(3 << 20);
  c->write(big, [](Result<size_t>) {});
  h.world().run_for(std::chrono::milliseconds(10));
  std::optional<Result<Opened>> answer;
  p.client->open({"CONNECT", "10.0.0.1:80", {}}, [&answer](Result<Opened> r) { answer.emplace(std::move(r)); });
  p.server->goaway();  // reaches the client: the other way is open
  h.world().run_for(std::chrono::milliseconds(10));
  EXPECT_FALSE(p.client->accepting_streams());
  h.world().heal_all();
  ASSERT_TRUE(h.world().run_until([&] { return answer.has_value(); }, std::chrono::seconds(5)));
  ASSERT_FALSE(answer->ok());
  EXPECT_EQ(answer->code(), kRefused) << answer->error().message();
}

// A transport whose writes can be held: a write that reaches `hold_at`
// bytes in all is kept (not passed on, not completed) until release(), as a
// slow network keeps a last batch in flight. An abort drops it.
class HoldingStream final : public Stream {
 public:
  explicit HoldingStream(StreamPtr inner) : inner_(std::move(inner)) {}
  void read(MutableBytes buf, IoCallback done) override { inner_->read(buf, std::move(done)); }
  void write(ConstBytes buf, IoCallback done) override {
    if (hold_at_ && written_ + buf.size() >= *hold_at_) {
      held_buf_ = buf;
      held_cb_ = std::move(done);
      hold_at_.reset();
      return;
    }
    written_ += buf.size();
    inner_->write(buf, std::move(done));
  }
  Result<void> shutdown_write() override { return inner_->shutdown_write(); }
  void close() override { inner_->close(); }
  void abort() override {
    held_cb_ = nullptr;  // the held bytes are lost
    inner_->abort();
  }
  Endpoint local() const override { return inner_->local(); }
  Endpoint peer() const override { return inner_->peer(); }
  Result<Endpoint> original_dst() const override { return inner_->original_dst(); }

  void hold_at(size_t total) { hold_at_ = total; }
  size_t written() const { return written_; }
  bool holding() const { return bool(held_cb_); }
  void release() {
    if (!held_cb_) return;
    written_ += held_buf_.size();
    inner_->write(held_buf_, std::exchange(held_cb_, nullptr));
  }

 private:
  StreamPtr inner_;
  size_t written_ = 0;
  std::optional<size_t> hold_at_;
  ConstBytes held_buf_;
  IoCallback held_cb_;
};

// When the session ends (GOAWAY received, the last stream done) the frames
// still being written go before the transport closes: the client's last
// frame (END_STREAM) reaches the server, whose tunnel reads a clean end.
// Here the server's WINDOW_UPDATE arrives while that frame is in flight;
// the client's session then wants nothing more, and an abort dropped it.
TEST_F(H2Sim, TheLastFramesGoOutBeforeAFinishedConnectionCloses) {
  H2Pair p;
  HoldingStream* client_transport = nullptr;
  Settings server = Settings::server();
  server.stream_window_bytes = 64 << 10;  // a WINDOW_UPDATE for every 32 KiB read
  ASSERT_TRUE(h.run([](testing::Harness& h, H2Pair& p, Settings server, HoldingStream*& held) -> Task<void> {
    auto listener = h.server().net.listen(Endpoint{h.server_ip(), 0}, {});
    ZT_ASSERT(listener.ok());
    auto tcp = co_await io::connect(h.client(), (*listener)->local(), {}, std::chrono::seconds(5));
    auto acc = co_await io::accept(**listener);
    ZT_ASSERT(tcp && acc);
    auto wrapped = std::make_unique<HoldingStream>(std::move(*tcp));
    held = wrapped.get();
    p.client = std::make_unique<Connection>(h.client(), std::move(wrapped), Role::client, Settings::client());
    p.server = std::make_unique<Connection>(h.server(), std::move(*acc), Role::server, server);
    p.server->on_request([&p](std::unique_ptr<Connection::Incoming> in) { p.requests.push_back(std::move(in)); });
    p.client->start();
    p.server->start();
  }(h, p, server, client_transport), kLimit));
  auto [c, s] = tunnel(p);
  ASSERT_TRUE(c && s);
  p.server->goaway();
  ASSERT_TRUE(s->shutdown_write());  // the server's side is done
  // 60 KiB up, unread at the server for now: no WINDOW_UPDATE yet.
  const std::vector<uint8_t> up = testing::pattern(60 << 10, 7);
  ASSERT_TRUE(h.run([](Stream& c, const std::vector<uint8_t>& d) -> Task<void> {
    EXPECT_TRUE(co_await io::write_all(c, d));
  }(*c, up), kLimit));
  h.idle(std::chrono::milliseconds(10));
  // The client finishes: its END_STREAM is held in flight, and the stream is
  // over on its side (both ends done).
  client_transport->hold_at(client_transport->written());
  ASSERT_TRUE(c->shutdown_write());
  h.world().run_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(client_transport->holding());
  // The server reads: its WINDOW_UPDATE reaches the client.
  testing::ReadAll at_s;
  Scope work;
  work.spawn([](Stream& s, testing::ReadAll& out) -> Task<void> { out = co_await testing::read_all(s); }(*s, at_s));
  h.world().run_for(std::chrono::milliseconds(10));
  client_transport->release();
  ASSERT_TRUE(h.world().run_until([&] { return work.live() == 0; }, std::chrono::seconds(5)));
  EXPECT_TRUE(at_s.end.ok()) << at_s.end.error().message();
  EXPECT_TRUE(at_s.bytes == up);
  h.idle(std::chrono::milliseconds(100));
  EXPECT_TRUE(p.client->dead());
}

// A quiet connection may be dead without knowing it (a crashed peer, a
// black hole). A stream opened on it sends its request with a PING and
// holds its early data until the ACK: a live peer gets the data one round
// trip later; a silent one within liveness_timeout makes the stream
// refused (retried elsewhere: none of its data left) instead of lost when
// keepalive ends the connection 10 to 30 s later.
TEST_F(H2Sim, EarlyDataOnAQuietConnectionWaitsForASignOfLife) {
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  const std::vector<uint8_t> hello = testing::pattern(100);
  std::vector<StreamPtr> early;
  auto open_with_data = [&](std::optional<Result<Opened>>& out) {
    p.client->open({"CONNECT", "10.0.0.1:80", {}}, [&out](Result<Opened> r) { out.emplace(std::move(r)); },
                   [&early, &hello](StreamPtr t) {
                     t->write(hello, [](Result<size_t>) {});
                     early.push_back(std::move(t));
                   });
  };
  // Quiet for 5 s, peer alive: the data follows the ACK.
  h.world().run_for(std::chrono::seconds(5));
  std::optional<Result<Opened>> live;
  open_with_data(live);
  ASSERT_TRUE(h.world().run_until([&] { return !p.requests.empty(); }, std::chrono::seconds(1)));
  StreamPtr at_server = p.requests.front()->accept();
  p.requests.clear();
  ASSERT_TRUE(at_server);
  std::vector<uint8_t> got(hello.size());
  std::optional<Result<size_t>> n;
  at_server->read(got, [&n](Result<size_t> r) { n.emplace(std::move(r)); });
  ASSERT_TRUE(h.world().run_until([&] { return n.has_value() && live.has_value(); }, std::chrono::seconds(1)));
  ASSERT_TRUE(n->ok());
  EXPECT_EQ(**n, hello.size());
  ASSERT_TRUE(live->ok());
  EXPECT_TRUE(p.client->accepting_streams());
  // Quiet again, then a black hole: refused within the probe's deadline.
  at_server.reset();
  early.clear();
  h.world().run_for(std::chrono::seconds(5));
  h.world().partition(h.client_host().id(), h.server_host().id());
  std::optional<Result<Opened>> silent;
  const MonoTime start = h.world().now();
  open_with_data(silent);
  ASSERT_TRUE(h.world().run_until([&] { return silent.has_value(); }, std::chrono::seconds(60)));
  ASSERT_FALSE(silent->ok());
  EXPECT_EQ(silent->code(), kRefused) << silent->error().message();
  EXPECT_LE(h.world().now() - start, Settings::client().liveness_timeout + std::chrono::milliseconds(10));
  EXPECT_FALSE(p.client->accepting_streams());
  EXPECT_FALSE(p.client->dead()) << "keepalive decides about the connection";
}

}  // namespace
}  // namespace zt::h2
