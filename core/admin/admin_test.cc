// The admin endpoints on io/sim: the conformance suite, plus what only the
// simulator can do cheaply (short reads and writes, virtual-time timeouts).
#include "testing/admin_conformance.h"
#include "testing/sim_harness.h"

namespace zt::core::admin {
namespace {

using namespace zt::testing;

using SimV4 = testing::SimHarness<IpAddr::Family::v4>;
INSTANTIATE_TYPED_TEST_SUITE_P(Sim, AdminConformance, ::testing::Types<SimV4>);

// Fixture wrapper so TEST_F can use the conformance fixture on io/sim.
class AdminSim : public AdminConformance<SimV4> {};

// /logging as upstream has it: POST only; no query lists the filter;
// ?level= adds directives to it; ?reset goes back to the start-up filter.
TEST_F(AdminSim, LoggingAddsDirectivesAndResets) {
  ClientResponse current = request(*admin, post("/logging"));
  EXPECT_EQ(current.status, 200);
  EXPECT_EQ(current.body, "current log level is info\n");
  EXPECT_EQ(request(*admin, get("/logging")).status, 405);

  ClientResponse set = request(*admin, post("/logging?level=debug"));
  EXPECT_EQ(set.status, 200);
  EXPECT_EQ(set.body, "current log level is debug\n");
  // Added to what is there, not replacing it.
  ClientResponse added = request(*admin, post("/logging?level=hbone%3Dtrace,access=off"));
  EXPECT_EQ(added.status, 200) << added.body;
  EXPECT_EQ(added.body, "current log level is debug,access=off,hbone=trace\n");
  EXPECT_EQ(request(*admin, post("/logging?level=")).body, "current log level is debug,access=off,hbone=trace\n");

  ClientResponse reset = request(*admin, post("/logging?reset"));
  EXPECT_EQ(reset.status, 200);
  EXPECT_EQ(reset.body, "current log level is info\n");
  EXPECT_EQ(request(*admin, post("/logging?reset=true&level=warn")).body, "current log level is warn\n");

  for (const char* bad : {"/logging?level=loud", "/logging?level=hbone", "/logging?level=a%20b=info",
                          "/logging?level=hbone=loud"}) {
    ClientResponse r = request(*admin, post(bad));
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.body.find("Invalid level provided"), std::string::npos) << bad << ": " << r.body;
  }
  EXPECT_EQ(request(*admin, post("/logging?level=%zz")).status, 400);
  EXPECT_EQ(log_filter.to_string(), "warn");
}

TEST_F(AdminSim, AFilterChangeTheHandlerRefusesIs400) {
  AdminHandlers handlers;
  handlers.log_filter = [] { return std::string("info"); };
  handlers.change_log_filter = [](std::string_view, bool) -> Result<void> {
    return Error(Errc::invalid_argument, "frozen");
  };
  auto strict = start(admin_routes(h.server(), std::move(handlers)));
  ClientResponse r = request(*strict, post("/logging?level=debug"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("Failed to set new level: frozen\n"), std::string::npos) << r.body;
}

TEST_F(AdminSim, OversizedHeadIs431) {
  std::string raw = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  ClientResponse r = request(*stats, raw);
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.body, "request head too large\n");
  // Just under the limit is fine.
  std::string head = "GET /metrics HTTP/1.1\r\nX-Big: ";
  std::string fits = head + std::string(16 * 1024 - head.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(fits.size(), 16u * 1024);
  EXPECT_EQ(request(*stats, fits).status, 200);
  std::string over = head + std::string(16 * 1024 - head.size() - 3, 'a') + "\r\n\r\n";
  EXPECT_EQ(request(*stats, over).status, 431);
}

TEST_F(AdminSim, MalformedRequestsAre400NeverACrash) {
  const char* cases[] = {
      "GET /metrics\r\n\r\n",                       // no version
      "GET  /metrics HTTP/1.1\r\n\r\n",             // two spaces
      "GET metrics HTTP/1.1\r\n\r\n",               // not origin-form
      "GET /metrics HTTP/9.9\r\n\r\n",              // unknown version
      "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n",   // header without colon
      "GET /metrics HTTP/1.1\r\n Folded: x\r\n\r\n",  // obs-fold
      "GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nX: a\x01b\r\n\r\n",   // control character
      "GET /metrics HTTP/1.1\nHost: x\r\n\r\n",     // bare LF
      "\r\n\r\n",
      "POST /quitquitquit HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
      "POST /quitquitquit HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "GET /metr",  // FIN inside the head
  };
  for (const char* raw : cases) {
    ClientResponse r = request(*admin, raw);
    EXPECT_EQ(r.status, 400) << raw;
  }
  EXPECT_EQ(shutdowns, 0);
}

TEST_F(AdminSim, BodyLimitsAndChunkedAreRefused) {
  ClientResponse big = request(*admin, "POST /quitquitquit HTTP/1.1\r\nContent-Length: 999999\r\n\r\n");
  EXPECT_EQ(big.status, 413);
  ClientResponse chunked = request(*admin, "POST /quitquitquit HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.status, 501);
  ClientResponse with_body = request(*admin, post("/quitquitquit", "now please"));
  EXPECT_EQ(with_body.status, 200);
  EXPECT_EQ(shutdowns, 1);
}

TEST_F(AdminSim, ByteByByteRequestsAndResponses) {
  h.world().options().faults.short_io = 1.0;
  pending.clear();
  ClientResponse r = request(*ready, get("/healthz/ready"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ready\n");
  ClientResponse m = request(*stats, get("/metrics"));
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.body, registry.render());
  ClientResponse p = request(*admin, post("/logging?level=warn", "ignored body"));
  EXPECT_EQ(p.status, 200);
  EXPECT_EQ(log_filter.to_string(), "warn");
}

// A client that connects and sends nothing is reset after the request
// timeout, so it cannot hold a connection slot forever.
TEST_F(AdminSim, SilentClientIsResetAfterTimeout) {
  bool reset = false;
  MonoTime start = h.client().clock.now();
  MonoTime end = start;
  auto body = [](Env& env, Endpoint to, bool& reset, MonoTime& end) -> Task<void> {
    Result<StreamPtr> s = co_await io::connect(env, to, SocketOptions{}, std::chrono::seconds(5));
    if (!s) co_return;
    testing::ReadAll all = co_await testing::read_all(**s);
    reset = testing::is_error(all.end, Errc::connection_reset);
    end = env.clock.now();
  };
  ASSERT_TRUE(h.run(body(h.client(), admin->local(), reset, end), std::chrono::seconds(60)));
  EXPECT_TRUE(reset);
  EXPECT_GE(end - start, std::chrono::seconds(10));
  EXPECT_LT(end - start, std::chrono::seconds(11));
}

// The shutdown callback may destroy the server that called it: it runs
// posted, after the request handler returned.
TEST_F(AdminSim, ShutdownMayDestroyTheServer) {
  std::unique_ptr<AdminServer> doomed;
  AdminHandlers handlers;
  handlers.shutdown = [&doomed] { doomed.reset(); };
  doomed = start(admin_routes(h.server(), std::move(handlers)));
  Endpoint at = doomed->local();
  ClientResponse out;
  ASSERT_TRUE(h.run(http_exchange(h.client(), at, post("/quitquitquit"), out), kLimit));
  // The response may or may not have made it out before the server went;
  // what matters is no crash and nothing left behind.
  EXPECT_EQ(doomed, nullptr);
}

// Connections past the limit are reset at once instead of queuing.
TEST_F(AdminSim, ConnectionsOverTheLimitAreReset) {
  auto hold = [](Env& env, Endpoint to, std::vector<StreamPtr>& held, size_t n) -> Task<void> {
    for (size_t i = 0; i < n; ++i) {
      Result<StreamPtr> s = co_await io::connect(env, to, SocketOptions{}, std::chrono::seconds(5));
      if (s) held.push_back(std::move(*s));
    }
    co_await io::sleep(env.loop, std::chrono::milliseconds(100));
  };
  std::vector<StreamPtr> held;
  ASSERT_TRUE(h.run(hold(h.client(), admin->local(), held, AdminServer::kConnectionsMax + 1), kLimit));
  EXPECT_EQ(admin->counters().accepted, AdminServer::kConnectionsMax + 1);
  EXPECT_EQ(admin->counters().refused_busy, 1u);
  held.clear();
}

}  // namespace
}  // namespace zt::core::admin
