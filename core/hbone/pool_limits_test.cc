// The pool against peers that hold it to HTTP/2's limits: a server with a
// small stream limit (SETTINGS_MAX_CONCURRENT_STREAMS), one that sends GOAWAY
// after a few streams, and ones that refuse streams (REFUSED_STREAM). Bursts
// of new tunnels must all succeed, with about as many connections as the
// limits need.
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <map>
#include <set>

#include "testing/hbone_test_util.h"

namespace zt::core::hbone {
namespace {

using namespace zt::testing;

// Our own HBONE server with a stream limit, counting per connection the
// tunnels open at once (the most is what the pool put on it).
struct LimitedServerApp {
  // `answer_delay`: each request is accepted that long after it arrives
  // (an upstream that is slow to connect).
  LimitedServerApp(HboneHarness& h, TlsWorld& w, uint32_t streams_max, Duration answer_delay = Duration(0)) {
    auto l = h.server().net.listen(Endpoint{h.server_ip(), kHbonePort}, {});
    ZT_ASSERT(l.ok());
    h2::Settings settings = h2::Settings::server();
    settings.concurrent_streams_max = streams_max;
    auto creds = credentials(*w.ca->issue(test_identity("server"), std::chrono::hours(24), w.now));
    server = std::make_unique<Server>(
        h.server(), std::move(*l), w.context(w.config(tls::TlsRole::server, creds)),
        [this, &h, answer_delay](InboundRequest req, Answer a) {
          const std::string conn = req.connection_peer.to_string();
          size_t& open = open_per_connection[conn];
          ++open;
          most_at_once = std::max(most_at_once, open);
          scope.spawn([](Env& env, Answer a, Duration delay, size_t& open) -> Task<void> {
            if (delay > Duration(0)) co_await io::sleep(env.loop, delay);
            co_await HboneServerApp::echo(a->accept());
            --open;
          }(h.server(), std::move(a), answer_delay, open));
        },
        settings);
    server->start();
  }
  std::map<std::string, size_t> open_per_connection;
  size_t most_at_once = 0;
  std::unique_ptr<Server> server;
  Scope scope;
};

// An HBONE server written straight on nghttp2, for what our h2::Connection
// never does on its own: refuse a stream (RST_STREAM(REFUSED_STREAM)), or
// send GOAWAY after a number of streams. Accepted streams get 200 and their
// bytes back, then END_STREAM. It records, per tunnel (the x-tunnel header),
// which connections refused it and how often it was accepted.
class ScriptedServer {
 public:
  struct Rules {
    uint32_t streams_max = 200;  // SETTINGS_MAX_CONCURRENT_STREAMS
    size_t goaway_after = 0;     // GOAWAY once a connection accepted this many (0: never)
    // Whether to refuse the `nth` request (from 0) of connection `conn` (from 0).
    std::function<bool(size_t conn, size_t nth)> refuse;
  };
  struct Tunnel {
    std::vector<size_t> refused_by;  // connection indexes, in order
    size_t accepted = 0;
  };

  ScriptedServer(HboneHarness& h, TlsWorld& w, Rules rules) : env_(h.server()), ctx_(w.server()), rules_(std::move(rules)) {
    auto l = env_.net.listen(Endpoint{h.server_ip(), kHbonePort}, {});
    ZT_ASSERT(l.ok());
    listener_ = std::move(*l);
    scope_.spawn(accept_loop());
  }
  ~ScriptedServer() {
    scope_.clear();
    sessions_.clear();
  }

  size_t connections() const { return sessions_.size(); }
  size_t refused() const { return refused_; }
  const std::map<std::string, Tunnel>& tunnels() const { return tunnels_; }

 private:
  struct Echo {
    std::string tunnel;
    std::vector<uint8_t> bytes;  // received, not sent back yet
    bool ended = false;          // the client's END_STREAM came
  };
  struct Session {
    ScriptedServer* server = nullptr;
    size_t index = 0;
    std::unique_ptr<tls::TlsStream> tls;
    nghttp2_session* ng = nullptr;
    std::map<int32_t, Echo> streams;
    size_t requests = 0, accepted = 0;
    bool goaway = false, writing = false, closed = false;
    Scope scope;  // last: its tasks go first
    ~Session() {
      scope.clear();
      if (ng) nghttp2_session_del(ng);
    }
  };

  Task<void> accept_loop() {
    for (;;) {
      auto s = co_await io::accept(*listener_);
      if (!s) co_return;
      auto session = std::make_unique<Session>();
      session->server = this;
      session->index = sessions_.size();
      session->tls = std::make_unique<tls::TlsStream>(env_, ctx_, std::move(*s));
      Session* raw = session.get();
      sessions_.push_back(std::move(session));
      raw->scope.spawn(serve(*raw));
    }
  }

  Task<void> serve(Session& s) {
    if (!co_await tls::handshake(*s.tls)) co_return;
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_server_new(&s.ng, cbs, &s);
    nghttp2_session_callbacks_del(cbs);
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, rules_.streams_max}};
    nghttp2_submit_settings(s.ng, NGHTTP2_FLAG_NONE, settings, 1);
    flush(s);
    std::vector<uint8_t> buf(16384);
    for (;;) {
      auto n = co_await io::read(*s.tls, buf);
      if (!n || *n == 0 || nghttp2_session_mem_recv(s.ng, buf.data(), *n) < 0) break;
      flush(s);
    }
    s.closed = true;
  }

  static void flush(Session& s) {
    if (s.writing || s.closed) return;
    s.writing = true;
    s.scope.spawn([](Session& s) -> Task<void> {
      for (;;) {
        std::vector<uint8_t> out;
        const uint8_t* data = nullptr;
        for (ssize_t n; (n = nghttp2_session_mem_send(s.ng, &data)) > 0;) out.insert(out.end(), data, data + n);
        if (out.empty()) break;
        if (!co_await io::write_all(*s.tls, out)) {
          s.closed = true;
          break;
        }
      }
      s.writing = false;
    }(s));
  }

  // Decides what becomes of a request that has arrived.
  void on_request(Session& s, int32_t id) {
    Echo& e = s.streams[id];
    const size_t nth = s.requests++;
    if (s.goaway) return;  // past the GOAWAY's last stream: the client retries it
    Tunnel& t = tunnels_[e.tunnel];
    if (rules_.refuse && rules_.refuse(s.index, nth)) {
      ++refused_;
      t.refused_by.push_back(s.index);
      nghttp2_submit_rst_stream(s.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
      return;
    }
    ++t.accepted;
    const std::string status_name = ":status", status = "200";
    const nghttp2_nv nva[] = {{(uint8_t*)status_name.data(), (uint8_t*)status.data(), status_name.size(), status.size(),
                               NGHTTP2_NV_FLAG_NONE}};
    nghttp2_data_provider data;
    data.source.ptr = nullptr;
    data.read_callback = read_echo;
    nghttp2_submit_response(s.ng, id, nva, 1, &data);
    if (rules_.goaway_after && ++s.accepted == rules_.goaway_after) {
      s.goaway = true;
      nghttp2_submit_goaway(s.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR, nullptr, 0);
    }
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* user) {
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      static_cast<Session*>(user)->streams[f->hd.stream_id] = Echo{};
    }
    return 0;
  }
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    auto& s = *static_cast<Session*>(user);
    auto it = s.streams.find(f->hd.stream_id);
    if (it != s.streams.end() && std::string_view((const char*)name, namelen) == "x-tunnel") {
      it->second.tunnel.assign((const char*)value, valuelen);
    }
    return 0;
  }
  static int on_frame_recv(nghttp2_session* ng, const nghttp2_frame* f, void* user) {
    auto& s = *static_cast<Session*>(user);
    auto it = s.streams.find(f->hd.stream_id);
    if (it == s.streams.end()) return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) s.server->on_request(s, f->hd.stream_id);
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      it->second.ended = true;
      nghttp2_session_resume_data(ng, f->hd.stream_id);
    }
    return 0;
  }
  static int on_data(nghttp2_session* ng, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
    auto& s = *static_cast<Session*>(user);
    auto it = s.streams.find(id);
    if (it == s.streams.end()) return 0;
    it->second.bytes.insert(it->second.bytes.end(), data, data + len);
    nghttp2_session_resume_data(ng, id);
    return 0;
  }
  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t, void* user) {
    static_cast<Session*>(user)->streams.erase(id);
    return 0;
  }
  static ssize_t read_echo(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source*, void* user) {
    auto& s = *static_cast<Session*>(user);
    auto it = s.streams.find(id);
    if (it == s.streams.end()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    Echo& e = it->second;
    const size_t n = std::min(len, e.bytes.size());
    std::copy(e.bytes.begin(), e.bytes.begin() + n, buf);
    e.bytes.erase(e.bytes.begin(), e.bytes.begin() + n);
    if (e.bytes.empty() && e.ended) *flags |= NGHTTP2_DATA_FLAG_EOF;
    else if (n == 0) return NGHTTP2_ERR_DEFERRED;
    return ssize_t(n);
  }

  Env& env_;
  std::shared_ptr<const tls::TlsContext> ctx_;
  Rules rules_;
  std::unique_ptr<Listener> listener_;
  std::map<std::string, Tunnel> tunnels_;
  size_t refused_ = 0;
  std::vector<std::unique_ptr<Session>> sessions_;
  Scope scope_;  // last: the accept loop goes first
};

// One tunnel named `id` (the x-tunnel header): send `size` bytes, keep the
// tunnel open for `hold` (so a burst's tunnels overlap), half-close, read
// the echo. Counts a failure for anything but every byte back.
Task<void> tagged_round_trip(HboneHarness& h, Pool& pool, int id, size_t size, Duration hold, int& failures) {
  h2::Request req = connect_to();
  req.headers.emplace_back("x-tunnel", std::to_string(id));
  Result<h2::Opened> t = co_await pool.open(key_for(h), std::move(req));
  if (!t || !t->tunnel || t->response.status != 200) {
    ++failures;
    co_return;
  }
  const auto data = testing::pattern(size, uint8_t(id));
  bool wrote = false;
  testing::ReadAll back;
  co_await join(
      [](Env& env, Stream& s, const std::vector<uint8_t>& d, Duration hold, bool& ok) -> Task<void> {
        ok = (co_await io::write_all(s, d)).ok();
        if (hold > Duration(0)) co_await io::sleep(env.loop, hold);
        ok = ok && s.shutdown_write().ok();
      }(h.client(), *t->tunnel, data, hold, wrote),
      [](Stream& s, testing::ReadAll& out) -> Task<void> { out = co_await testing::read_all(s); }(*t->tunnel, back));
  if (!wrote || !back.end.ok() || back.bytes != data) ++failures;
}

Task<void> burst(HboneHarness& h, Pool& pool, int first, int n, Duration hold, int& failures) {
  std::vector<Task<void>> work;
  for (int i = first; i < first + n; ++i) work.push_back(tagged_round_trip(h, pool, i, 2000, hold, failures));
  co_await join(std::move(work));
}

size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

// A cold burst against a server that takes 10 streams per connection: the
// first connection carries one stream until the server's SETTINGS are known;
// then the burst spreads out by the server's limit. Nothing is refused.
void BurstAgainstALimitOfTen(int n) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  LimitedServerApp srv(h, w, 10);
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run(burst(h, c.pool, 0, n, std::chrono::milliseconds(50), failures), std::chrono::minutes(1)));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(c.pool.counters().tunnels_opened, size_t(n));
  EXPECT_EQ(c.pool.counters().retries, 0u);  // no stream went past the limit, so none was refused
  EXPECT_EQ(c.pool.counters().settings_waits, size_t(n - 1));  // all but the first waited for its SETTINGS
  EXPECT_EQ(c.pool.counters().connections_opened, ceil_div(n, 10));
  EXPECT_LE(srv.most_at_once, 10u);
}

TEST(HbonePoolLimits, ABurstOf40NewTunnelsToALimitOf10Succeeds) { BurstAgainstALimitOfTen(40); }

// A cold burst behind a slow first answer (the upstream takes a second to
// connect): the callers waiting for the new connection's limit go as soon
// as the server's SETTINGS arrive, not a second later with its first answer.
TEST(HbonePoolLimits, AColdBurstGoesAtTheServersSettingsNotItsFirstAnswer) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  LimitedServerApp srv(h, w, 10, std::chrono::seconds(1));
  Client c(h, w);
  const MonoTime start = h.client().clock.now();
  std::vector<MonoTime> opened;
  int failures = 0;
  ASSERT_TRUE(h.run([](HboneHarness& h, Pool& pool, std::vector<MonoTime>& opened, int& failures) -> Task<void> {
    std::vector<Task<void>> work;
    for (int i = 0; i < 20; ++i) {
      work.push_back([](HboneHarness& h, Pool& pool, std::vector<MonoTime>& opened, int& failures) -> Task<void> {
        Result<h2::Opened> t = co_await pool.open(key_for(h), connect_to());
        if (!t || t->response.status != 200) {
          ++failures;
          co_return;
        }
        opened.push_back(h.client().clock.now());
        t->tunnel->abort();
      }(h, pool, opened, failures));
    }
    co_await join(std::move(work));
  }(h, c.pool, opened, failures), std::chrono::minutes(1)));
  EXPECT_EQ(failures, 0);
  ASSERT_EQ(opened.size(), 20u);
  EXPECT_EQ(c.pool.counters().connections_opened, 2u);
  EXPECT_EQ(c.pool.counters().retries, 0u);
  // One second for the answer, and the handshake's round trips (a
  // millisecond or so here); the first answer would add another second.
  for (MonoTime t : opened) EXPECT_LT(t - start, std::chrono::milliseconds(1500));
  EXPECT_LE(srv.most_at_once, 10u);
}
TEST(HbonePoolLimits, ABurstOf100NewTunnelsToALimitOf10Succeeds) { BurstAgainstALimitOfTen(100); }

// Warm: one connection with a tunnel on it and the server's limit known; a
// burst fills it up to the limit and opens new connections that may carry
// the known limit at once.
TEST(HbonePoolLimits, ABurstOnAWarmPoolStaysWithinTheLimit) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  LimitedServerApp srv(h, w, 10);
  Client c(h, w);
  int failures = 0;
  Scope held;
  held.spawn(tagged_round_trip(h, c.pool, 1000, 100, std::chrono::seconds(1), failures));
  ASSERT_TRUE(h.run_until([&] { return c.pool.counters().tunnels_opened == 1; }, std::chrono::minutes(1)));
  ASSERT_TRUE(h.run(burst(h, c.pool, 0, 40, std::chrono::milliseconds(50), failures), std::chrono::minutes(1)));
  ASSERT_TRUE(h.run_until([&] { return held.live() == 0; }, std::chrono::minutes(1)));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(c.pool.counters().retries, 0u);
  EXPECT_EQ(c.pool.counters().settings_waits, 0u);  // the limit was known: new connections carry it at once
  EXPECT_EQ(c.pool.counters().connections_opened, ceil_div(41, 10));
  EXPECT_LE(srv.most_at_once, 10u);
}

// The server sends GOAWAY after 5 streams on each connection: the streams
// past it are retried on fresh connections, as often as it takes, and no
// caller sees them fail.
void GoawayAfterFiveStreams(int clients) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  ScriptedServer srv(h, w, {.goaway_after = 5});
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run(burst(h, c.pool, 0, clients, std::chrono::milliseconds(20), failures), std::chrono::minutes(1)));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(c.pool.counters().tunnels_opened, size_t(clients));
  ASSERT_EQ(srv.tunnels().size(), size_t(clients));
  for (const auto& [id, t] : srv.tunnels()) EXPECT_EQ(t.accepted, 1u) << "tunnel " << id;
  EXPECT_EQ(c.pool.counters().connections_opened, ceil_div(clients, 5));
  EXPECT_GE(c.pool.counters().retries, size_t(clients - 5));
}

TEST(HbonePoolLimits, GoawayAfterFiveStreamsFailsNoneOfTwentyClients) { GoawayAfterFiveStreams(20); }
// The last of 40 are caught by 7 GOAWAYs: retries after a connection that
// answered streams went away do not count against refused_retries_max.
TEST(HbonePoolLimits, GoawayAfterFiveStreamsFailsNoneOfFortyClients) { GoawayAfterFiveStreams(40); }

// A connection that refused a stream takes no new ones: the next requests go
// to another connection instead of being refused and retried each time.
TEST(HbonePoolLimits, ARefusingConnectionIsNotPreferred) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  // The first connection answers its first stream and refuses all others.
  ScriptedServer srv(h, w, {.refuse = [](size_t conn, size_t nth) { return conn == 0 && nth > 0; }});
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run([](HboneHarness& h, Pool& pool, int& failures) -> Task<void> {
    for (int i = 0; i < 10; ++i) co_await tagged_round_trip(h, pool, i, 100, Duration(0), failures);
  }(h, c.pool, failures), std::chrono::minutes(1)));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(srv.refused(), 1u);
  EXPECT_EQ(c.pool.counters().connections_opened, 2u);
}

// The same server under a burst: once the first connection has refused a
// stream, a burst of tunnels all goes to the other connection, none of
// them to the refusing one (where each would be refused and retried).
TEST(HbonePoolLimits, ABurstAfterARefusalAvoidsTheRefusingConnection) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  ScriptedServer srv(h, w, {.refuse = [](size_t conn, size_t nth) { return conn == 0 && nth > 0; }});
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run([](HboneHarness& h, Pool& pool, int& failures) -> Task<void> {
    for (int i = 0; i < 2; ++i) co_await tagged_round_trip(h, pool, i, 100, Duration(0), failures);
  }(h, c.pool, failures), std::chrono::minutes(1)));
  ASSERT_EQ(srv.refused(), 1u);
  ASSERT_TRUE(h.run(burst(h, c.pool, 2, 20, std::chrono::milliseconds(5), failures), std::chrono::minutes(1)));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(srv.refused(), 1u) << "the connection that refused kept getting streams";
  EXPECT_EQ(c.pool.counters().connections_opened, 2u);
}

// Refusals are retried more than once, and each retry goes to a connection
// that has not refused that stream.
TEST(HbonePoolLimits, AStreamRefusedTwiceStillOpens) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  // The first two connections refuse everything.
  ScriptedServer srv(h, w, {.refuse = [](size_t conn, size_t) { return conn < 2; }});
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run(tagged_round_trip(h, c.pool, 0, 100, Duration(0), failures), std::chrono::minutes(1)));
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(srv.refused(), 2u);
  EXPECT_EQ(c.pool.counters().retries, 2u);
  EXPECT_EQ(c.pool.counters().connections_opened, 3u);
}

// A server that refuses every stream: the caller fails after a bounded
// number of attempts, each on another connection.
TEST(HbonePoolLimits, RetriesOfRefusedStreamsAreBounded) {
  HboneHarness h;
  testing::TlsWorld w(h.client().clock.wall_now());
  ScriptedServer srv(h, w, {.refuse = [](size_t, size_t) { return true; }});
  Client c(h, w);
  int failures = 0;
  ASSERT_TRUE(h.run(tagged_round_trip(h, c.pool, 0, 100, Duration(0), failures), std::chrono::minutes(1)));
  EXPECT_EQ(failures, 1);
  const size_t attempts = PoolConfig{}.refused_retries_max + 1;
  EXPECT_EQ(srv.refused(), attempts);
  EXPECT_EQ(c.pool.counters().connections_opened, attempts);
  ASSERT_EQ(srv.tunnels().size(), 1u);
  const auto& refused_by = srv.tunnels().begin()->second.refused_by;
  EXPECT_EQ(std::set<size_t>(refused_by.begin(), refused_by.end()).size(), attempts);  // each on another connection
}

// A server that refuses streams at random (one in ten), over seeds, under a
// burst of 100 tunnels: every tunnel opens (with 3 retries a tunnel is lost
// only if refused 4 times: 1 in 10,000; with the one retry of before, 1 in
// 100), no tunnel is retried on a connection that refused it, none is
// accepted twice, and the connections stay few.
TEST(HbonePoolLimits, RandomRefusalsLoseNoTunnel) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    HboneHarness h(seed);
    testing::TlsWorld w(h.client().clock.wall_now());
    Rng rng = h.server().rng.stream("test.refusals");
    ScriptedServer srv(h, w, {.refuse = [&rng](size_t, size_t) { return rng.chance(0.1); }});
    Client c(h, w);
    int failures = 0;
    ASSERT_TRUE(h.run(burst(h, c.pool, 0, 100, std::chrono::milliseconds(20), failures), std::chrono::minutes(1)));
    EXPECT_EQ(failures, 0);
    EXPECT_GT(srv.refused(), 0u);
    ASSERT_EQ(srv.tunnels().size(), 100u);
    for (const auto& [id, t] : srv.tunnels()) {
      EXPECT_EQ(t.accepted, 1u) << "tunnel " << id;
      EXPECT_EQ(std::set<size_t>(t.refused_by.begin(), t.refused_by.end()).size(), t.refused_by.size())
          << "tunnel " << id << " refused twice by one connection";
    }
    // One connection for the burst, and about one more for each wave of
    // retries (the refusing ones take no new streams for a while).
    EXPECT_LE(c.pool.counters().connections_opened, 1 + PoolConfig{}.refused_retries_max);
  }
}

}  // namespace
}  // namespace zt::core::hbone
