// gRPC over our HTTP/2 and TLS, client and server on the simulator: unary
// and streaming calls, statuses both ways, metadata, deadlines, limits, a
// server that dies and a channel that reconnects.
#include <gtest/gtest.h>

#include "testing/sim_harness.h"
#include "testing/tls_test_util.h"
#include "xds/grpc/call.h"
#include "xds/grpc/channel.h"
#include "xds/grpc/server.h"

namespace zt::xds::grpc {
namespace {

using testing::SimHarness;
using testing::TlsWorld;
using Harness = SimHarness<IpAddr::Family::v4>;

constexpr uint16_t kPort = 15012;
const std::string kEcho = "/test.Echo/Echo";
const std::string kChat = "/test.Echo/Chat";

// Handlers: non-capturing wrappers around coroutine functions.
Task<void> echo(ServerCall& call) {
  auto req = co_await call.receive();
  if (!req) co_return call.finish({Code::invalid_argument, "no request"});
  std::string answer(req->rbegin(), req->rend());
  if (auto auth = call.header("authorization")) answer += "|" + std::string(*auth);
  co_await call.send(answer);
  call.finish({});
}

Task<void> chat(ServerCall& call) {
  int n = 0;
  while (auto m = co_await call.receive()) {
    if (!co_await call.send("re:" + *m)) co_return;
    ++n;
  }
  call.finish({Code::ok, ""});
  (void)n;
}

struct Fixture {
  explicit Fixture(bool use_tls = true, size_t server_limit = kMessageBytesMax)
      : tls(h.client().clock.wall_now()), use_tls(use_tls) {
    start_server(server_limit);
    ChannelConfig cfg;
    cfg.address = Endpoint{h.server_ip(), kPort};
    cfg.authority = "istiod.test:15012";
    if (use_tls) cfg.tls = tls.client();
    channel = std::make_unique<Channel>(h.client(), cfg);
  }
  void start_server(size_t limit = kMessageBytesMax) {
    auto l = h.server().net.listen(Endpoint{h.server_ip(), kPort}, {});
    ZT_ASSERT(l.ok());
    server = std::make_unique<Server>(h.server(), std::move(*l), use_tls ? tls.server() : nullptr,
                                      h2::Settings::server(), limit);
    server->handle(kEcho, [](ServerCall& c) { return echo(c); });
    server->handle(kChat, [](ServerCall& c) { return chat(c); });
    server->handle("/test.Echo/Fail", [](ServerCall& c) -> Task<void> {
      c.finish({Code::not_found, "no such thing: 100%\n"});
      co_return;
    });
    server->handle("/test.Echo/Silent", [](ServerCall& c) -> Task<void> {
      (void)co_await c.receive();
      co_await io::sleep(c.env().loop, std::chrono::hours(1));
    });
    server->handle("/test.Echo/Forget", [](ServerCall&) -> Task<void> { co_return; });
    server->handle("/test.Echo/Big", [](ServerCall& c) -> Task<void> {
      (void)co_await c.receive();
      co_await c.send(std::string(5 << 20, 'b'));
      c.finish({});
    });
    server->start();
  }
  CallOptions options() const {
    CallOptions o;
    o.authority = "istiod.test:15012";
    o.scheme = use_tls ? "https" : "http";
    o.metadata = {{"authorization", "Bearer token-1"}, {"clusterid", "Kubernetes"}};
    return o;
  }

  UnaryResult call_unary(const std::string& path, std::string request, CallOptions o) {
    UnaryResult out;
    bool done = false;
    Scope s;
    s.spawn([](Fixture& f, std::string path, std::string req, CallOptions o, UnaryResult& out, bool& done) -> Task<void> {
      auto conn = co_await f.channel->connection();
      if (!conn) {
        out.status = {Code::unavailable, conn.error().message()};
      } else {
        out = co_await unary(f.h.client(), **conn, path, std::move(req), std::move(o));
      }
      done = true;
    }(*this, path, std::move(request), std::move(o), out, done));
    EXPECT_TRUE(h.run_until([&] { return done; }, std::chrono::hours(2)));
    return out;
  }

  Harness h;
  TlsWorld tls;
  bool use_tls;
  std::unique_ptr<Server> server;
  std::unique_ptr<Channel> channel;
};

TEST(Grpc, UnaryOverTlsCarriesMetadataAndStatus) {
  Fixture f;
  UnaryResult r = f.call_unary(kEcho, "olleh", f.options());
  EXPECT_TRUE(r.status.ok()) << r.status.to_string();
  EXPECT_EQ(r.response, "hello|Bearer token-1");
  EXPECT_EQ(f.server->counters().calls, 1u);
  // A second call reuses the connection.
  EXPECT_TRUE(f.call_unary(kEcho, "x", f.options()).status.ok());
  EXPECT_EQ(f.channel->connects(), 1u);
}

TEST(Grpc, UnaryOverPlaintext) {
  Fixture f(/*use_tls=*/false);
  UnaryResult r = f.call_unary(kEcho, "cba", f.options());
  EXPECT_TRUE(r.status.ok()) << r.status.to_string();
  EXPECT_EQ(r.response, "abc|Bearer token-1");
}

TEST(Grpc, StatusesComeBackAsTheServerSetThem) {
  Fixture f;
  UnaryResult fail = f.call_unary("/test.Echo/Fail", "", f.options());
  EXPECT_EQ(fail.status.code, Code::not_found);
  EXPECT_EQ(fail.status.message, "no such thing: 100%\n");  // percent-encoded on the wire
  UnaryResult unknown = f.call_unary("/test.Echo/Nope", "", f.options());
  EXPECT_EQ(unknown.status.code, Code::unimplemented) << unknown.status.to_string();
  EXPECT_EQ(f.server->counters().unimplemented, 1u);
  UnaryResult forgot = f.call_unary("/test.Echo/Forget", "", f.options());
  EXPECT_EQ(forgot.status.code, Code::internal);
}

TEST(Grpc, ADeadlineEndsTheCall) {
  Fixture f;
  CallOptions o = f.options();
  o.deadline = std::chrono::seconds(3);
  const MonoTime start = f.h.world().now();
  UnaryResult r = f.call_unary("/test.Echo/Silent", "?", o);
  EXPECT_EQ(r.status.code, Code::deadline_exceeded) << r.status.to_string();
  EXPECT_GE(f.h.world().now() - start, std::chrono::seconds(3));
  EXPECT_LT(f.h.world().now() - start, std::chrono::seconds(4));
}

TEST(Grpc, MessagesOverTheLimitAreRefusedBothWays) {
  Fixture f(true, /*server_limit=*/1024);
  UnaryResult big_request = f.call_unary(kEcho, std::string(2048, 'q'), f.options());
  EXPECT_NE(big_request.status.code, Code::ok);
  CallOptions o = f.options();
  o.message_bytes_max = 1 << 20;
  UnaryResult big_answer = f.call_unary("/test.Echo/Big", "", o);
  EXPECT_EQ(big_answer.status.code, Code::resource_exhausted) << big_answer.status.to_string();
  // Within the limit, megabytes pass (flow control windows refill).
  UnaryResult fits = f.call_unary("/test.Echo/Big", "", f.options());
  EXPECT_TRUE(fits.status.ok()) << fits.status.to_string();
  EXPECT_EQ(fits.response.size(), 5u << 20);
}

TEST(Grpc, BidirectionalStreamsInterleave) {
  Fixture f;
  std::vector<std::string> got;
  Status end;
  bool done = false;
  Scope s;
  s.spawn([](Fixture& f, std::vector<std::string>& got, Status& end, bool& done) -> Task<void> {
    auto conn = co_await f.channel->connection();
    EXPECT_TRUE(conn);
    ClientCall call(f.h.client(), **conn, kChat, f.options());
    for (int i = 0; i < 50; ++i) {
      EXPECT_TRUE(co_await call.send("m" + std::to_string(i)));
      auto back = co_await call.receive();  // the server answers each before the next is sent
      if (!back) break;
      got.push_back(*back);
    }
    call.close_send();
    auto last = co_await call.receive();
    EXPECT_FALSE(last);
    end = call.status();
    done = true;
  }(f, got, end, done));
  ASSERT_TRUE(f.h.run_until([&] { return done; }, std::chrono::minutes(1)));
  ASSERT_EQ(got.size(), 50u);
  EXPECT_EQ(got[0], "re:m0");
  EXPECT_EQ(got[49], "re:m49");
  EXPECT_TRUE(end.ok()) << end.to_string();
}

TEST(Grpc, AServerThatDiesIsUnavailableAndTheChannelReconnects) {
  Fixture f;
  Status end;
  bool done = false;
  Scope s;
  s.spawn([](Fixture& f, Status& end, bool& done) -> Task<void> {
    auto conn = co_await f.channel->connection();
    ClientCall call(f.h.client(), **conn, kChat, f.options());
    (void)co_await call.send("hello");
    (void)co_await call.receive();
    while (co_await call.receive()) {
    }
    end = call.status();
    done = true;
  }(f, end, done));
  f.h.world().run_for(std::chrono::seconds(1));
  f.h.world().crash(f.h.server_host().id());
  f.server.reset();  // the process died with its host
  // The client hears nothing (a crash sends no FIN): HTTP/2 keepalive finds
  // the connection dead within ping_idle + ping_timeout.
  ASSERT_TRUE(f.h.run_until([&] { return done; }, std::chrono::minutes(2)));
  EXPECT_EQ(end.code, Code::unavailable) << end.to_string();
  f.h.world().restart(f.h.server_host().id());
  f.start_server();
  UnaryResult again = f.call_unary(kEcho, "ti", f.options());
  EXPECT_TRUE(again.status.ok()) << again.status.to_string();
  EXPECT_EQ(f.channel->connects(), 2u);
}

// A server that sends GOAWAY (istiod rebalancing): new calls go to a fresh
// connection at once, the call already open on the old one goes on.
TEST(Grpc, AGoawayMovesNewCallsToAFreshConnectionWhileOldOnesFinish) {
  Fixture f;
  bool step = false, done = false;
  std::vector<std::string> got;
  Status end;
  Scope s;
  s.spawn([](Fixture& f, bool& step, bool& done, std::vector<std::string>& got, Status& end) -> Task<void> {
    auto conn = co_await f.channel->connection();
    ClientCall call(f.h.client(), **conn, kChat, f.options());
    (void)co_await call.send("one");
    if (auto m = co_await call.receive()) got.push_back(*m);
    step = true;
    co_await io::sleep(f.h.client().loop, std::chrono::seconds(5));  // the GOAWAY comes meanwhile
    (void)co_await call.send("two");
    if (auto m = co_await call.receive()) got.push_back(*m);
    call.close_send();
    while (co_await call.receive()) {
    }
    end = call.status();
    done = true;
  }(f, step, done, got, end));
  ASSERT_TRUE(f.h.run_until([&] { return step; }, std::chrono::seconds(10)));
  f.server->drain();  // GOAWAY; the listener closes
  auto old = std::move(f.server);
  f.start_server();  // the new one takes the port
  f.h.world().run_for(std::chrono::seconds(1));
  UnaryResult fresh = f.call_unary(kEcho, "wen", f.options());
  EXPECT_TRUE(fresh.status.ok()) << fresh.status.to_string();
  EXPECT_EQ(f.channel->connects(), 2u);
  ASSERT_TRUE(f.h.run_until([&] { return done; }, std::chrono::seconds(30)));
  EXPECT_EQ(got, (std::vector<std::string>{"re:one", "re:two"}));
  EXPECT_TRUE(end.ok()) << end.to_string();
}

TEST(Grpc, NothingIsLeftWhenEverythingIsGone) {
  Fixture f;
  EXPECT_TRUE(f.call_unary(kEcho, "a", f.options()).status.ok());
  f.channel.reset();
  f.server.reset();
  EXPECT_EQ(f.h.leftovers(), "");
}

}  // namespace
}  // namespace zt::xds::grpc

namespace zt::xds::grpc {
namespace {

// istiod is a Service name: the channel resolves it on every connect, so
// new IPs are found after a reconnect, and an unknown name is an error that
// names it rather than a hang.
TEST(Grpc, ChannelResolvesItsHostOnEveryConnect) {
  Fixture f;
  ChannelConfig cfg = f.channel->config();
  cfg.host = "istiod.istio-system.svc";
  cfg.address = Endpoint{IpAddr::v4(0, 0, 0, 0), kPort};  // only the port counts
  f.channel = std::make_unique<Channel>(f.h.client(), cfg);

  UnaryResult unknown = f.call_unary(kEcho, "x", f.options());
  EXPECT_EQ(unknown.status.code, Code::unavailable);
  EXPECT_NE(unknown.status.message.find("istiod.istio-system.svc"), std::string::npos) << unknown.status.message;
  EXPECT_NE(unknown.status.message.find("name_not_found"), std::string::npos) << unknown.status.message;

  f.h.world().set_name("istiod.istio-system.svc", {f.h.server_ip()});
  UnaryResult found = f.call_unary(kEcho, "olleh", f.options());
  EXPECT_EQ(found.status.code, Code::ok) << found.status.message;

  // The name moves: a dead first address is skipped on the next connect.
  f.h.world().set_name("istiod.istio-system.svc", {IpAddr::v4(10, 9, 9, 9), f.h.server_ip()});
  f.channel->reset();
  int ok_calls = 0;
  for (int i = 0; i < 3; ++i) {
    f.channel->reset();
    if (f.call_unary(kEcho, "again", f.options()).status.code == Code::ok) ++ok_calls;
  }
  EXPECT_GE(ok_calls, 1);
  EXPECT_GE(f.channel->connects(), 5u);
}

}  // namespace
}  // namespace zt::xds::grpc
