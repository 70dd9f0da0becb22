// The admin endpoints' conformance suite: one set of HTTP exchanges run on
// io/sim (admin_test.cc) and on real loopback sockets (admin_real_test.cc),
// with a tiny test HTTP client coroutine.
//
//   INSTANTIATE_TYPED_TEST_SUITE_P(Sim, AdminConformance, ::testing::Types<SimHarness<v4>>);
#pragma once

#include <gtest/gtest.h>

#include "core/admin/admin.h"
#include "testing/harness.h"

namespace zt::testing {

using core::admin::AdminHandlers;
using core::admin::AdminServer;
using core::admin::Routes;
using core::admin::admin_routes;
using core::admin::stats_routes;
using core::admin::readiness_routes;
using core::metrics::Registry;

// What the test client saw: status 0 when no response could be parsed.
struct ClientResponse {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
  std::string error;  // connect failure or unparsable response
};

// Parses "HTTP/1.1 NNN ...\r\n...\r\n\r\nbody" (the response ends at EOF).
inline ClientResponse parse_client_response(const std::vector<uint8_t>& bytes) {
  ClientResponse out;
  std::string text(bytes.begin(), bytes.end());
  size_t end = text.find("\r\n\r\n");
  if (end == std::string::npos || text.size() < 12 || !text.starts_with("HTTP/1.1 ")) {
    out.error = "unparsable response: " + text;
    return out;
  }
  out.status = std::stoi(text.substr(9, 3));
  out.head = text.substr(0, end);
  out.body = text.substr(end + 4);
  return out;
}

// Connects, writes `request` then FIN, reads the response to EOF.
inline Task<void> http_exchange(Env& env, Endpoint to, std::string request, ClientResponse& out) {
  Result<StreamPtr> s = co_await io::connect(env, to, SocketOptions{}, std::chrono::seconds(5));
  if (!s) {
    out.error = "connect: " + s.error().message();
    co_return;
  }
  ConstBytes bytes(reinterpret_cast<const uint8_t*>(request.data()), request.size());
  Result<void> w = co_await io::write_all(**s, bytes);
  if (!w) {
    out.error = "write: " + w.error().message();
    co_return;
  }
  Result<void> fin = (*s)->shutdown_write();
  if (!fin) {
    out.error = "shutdown_write: " + fin.error().message();
    co_return;
  }
  testing::ReadAll all = co_await testing::read_all(**s);
  out = parse_client_response(all.bytes);
  (*s)->close();
}

inline std::string get(std::string_view path) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n";
}

inline std::string post(std::string_view path, std::string_view body = "") {
  return "POST " + std::string(path) + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

template <class H>
class AdminConformance : public ::testing::Test {
 protected:
  static constexpr Duration kLimit = std::chrono::seconds(30);

  void SetUp() override {
    registry.declare("test_build", core::metrics::MetricType::gauge, "Build info.");
    registry.gauge("test_build", {{"tag", "1.2.3"}}).set(1);
    AdminHandlers handlers;
    handlers.config_dump = [] { return std::string(R"({"workloads":[]})"); };
    // The binary's semantics (app/logging.h), on a LogFilter: directives
    // add to the current filter, reset goes back to "info".
    handlers.change_log_filter = [this](std::string_view directives, bool reset) -> Result<void> {
      auto added = LogFilter::parse(directives);
      if (!added) return added.error();
      log_filter = (reset ? LogFilter() : log_filter).combined(*added);
      return ok();
    };
    handlers.log_filter = [this] { return log_filter.to_string(); };
    handlers.shutdown = [this] { ++shutdowns; };
    admin = start(admin_routes(h.server(), std::move(handlers)));
    stats = start(stats_routes(registry));
    ready = start(readiness_routes([this] { return pending; }));
  }

  // Every connection must be gone once the servers are (io/sim sees them all).
  void TearDown() override {
    admin.reset();
    stats.reset();
    ready.reset();
    EXPECT_EQ(h.leftovers(), "");
  }

  std::unique_ptr<AdminServer> start(Routes routes) {
    auto l = h.server().net.listen(Endpoint{h.server_ip(), 0}, {});
    EXPECT_TRUE(l) << l.error().message();
    if (!l) return nullptr;
    auto server = std::make_unique<AdminServer>(h.server(), std::move(*l), std::move(routes));
    server->start();
    return server;
  }

  ClientResponse request(const AdminServer& server, std::string raw) {
    ClientResponse out;
    EXPECT_TRUE(h.run(http_exchange(h.client(), server.local(), std::move(raw), out), kLimit));
    EXPECT_EQ(out.error, "");
    return out;
  }

  H h;
  Registry registry;
  LogFilter log_filter;
  int shutdowns = 0;
  std::vector<std::string> pending = {"xds", "listeners"};
  std::unique_ptr<AdminServer> admin;
  std::unique_ptr<AdminServer> stats;
  std::unique_ptr<AdminServer> ready;
};

TYPED_TEST_SUITE_P(AdminConformance);

TYPED_TEST_P(AdminConformance, ReadinessNamesPendingThenReady) {
  ClientResponse before = this->request(*this->ready, get("/healthz/ready"));
  EXPECT_EQ(before.status, 500);
  EXPECT_EQ(before.body, "not ready, pending: xds, listeners\n");
  this->pending.clear();
  ClientResponse after = this->request(*this->ready, get("/healthz/ready"));
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.body, "ready\n");
  EXPECT_NE(after.head.find("Content-Length: 6\r\n"), std::string::npos) << after.head;
  EXPECT_NE(after.head.find("Connection: close"), std::string::npos) << after.head;
}

TYPED_TEST_P(AdminConformance, MetricsOnBothPaths) {
  this->registry.counter("test_connections_total", {{"reporter", "destination"}, {"protocol", "tcp"}}).inc(3);
  for (const char* path : {"/metrics", "/stats/prometheus"}) {
    ClientResponse r = this->request(*this->stats, get(path));
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.body, this->registry.render()) << path;
    EXPECT_NE(r.body.find("test_build{tag=\"1.2.3\"} 1\n"), std::string::npos);
    EXPECT_NE(r.body.find("test_connections_total{protocol=\"tcp\",reporter=\"destination\"} 3\n"), std::string::npos);
    EXPECT_NE(r.head.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << r.head;
  }
}

TYPED_TEST_P(AdminConformance, ConfigDumpIsJson) {
  ClientResponse r = this->request(*this->admin, get("/config_dump"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"workloads":[]})");
  EXPECT_NE(r.head.find("Content-Type: application/json"), std::string::npos) << r.head;
}

TYPED_TEST_P(AdminConformance, UnknownPathIs404AndMalformedIs400) {
  EXPECT_EQ(this->request(*this->admin, get("/nope")).status, 404);
  EXPECT_EQ(this->request(*this->stats, get("/healthz/ready")).status, 404);
  ClientResponse bad = this->request(*this->admin, "GARBAGE\r\n\r\n");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("malformed request"), std::string::npos) << bad.body;
}

TYPED_TEST_P(AdminConformance, QuitQuitQuitOnlyOnPost) {
  ClientResponse get_r = this->request(*this->admin, get("/quitquitquit"));
  EXPECT_EQ(get_r.status, 405);
  EXPECT_NE(get_r.head.find("Allow: POST"), std::string::npos) << get_r.head;
  EXPECT_EQ(this->shutdowns, 0);
  ClientResponse post_r = this->request(*this->admin, post("/quitquitquit"));
  EXPECT_EQ(post_r.status, 200);
  EXPECT_EQ(this->shutdowns, 1);
}

// The client is still sending when the 431 goes out: the server must drain
// what follows so its close is a FIN, not an RST that could eat the answer.
TYPED_TEST_P(AdminConformance, OversizedHeadIs431) {
  std::string raw = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(100 * 1024, 'a') + "\r\n\r\n";
  ClientResponse r = this->request(*this->stats, raw);
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.body, "request head too large\n");
}

REGISTER_TYPED_TEST_SUITE_P(AdminConformance, ReadinessNamesPendingThenReady, MetricsOnBothPaths, ConfigDumpIsJson,
                            UnknownPathIs404AndMalformedIs400, QuitQuitQuitOnlyOnPost, OversizedHeadIs431);

}  // namespace zt::testing
