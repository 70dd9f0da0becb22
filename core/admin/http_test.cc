// Request-head parsing, query decoding, response serialization and routing.
#include "core/admin/http.h"

#include <gtest/gtest.h>

#include "core/admin/admin.h"

namespace zt::core::admin {
namespace {

TEST(HttpParse, RequestLineHeadersAndQuery) {
  Result<HttpRequest> r = parse_request_head("POST /logging?level=debug&x=1 HTTP/1.1\r\nHost: a\r\nX-Y:  v v \t");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->path, "/logging");
  EXPECT_EQ(r->query, "level=debug&x=1");
  EXPECT_EQ(r->version, "HTTP/1.1");
  ASSERT_EQ(r->headers.size(), 2u);
  EXPECT_EQ(r->header("x-y"), "v v");
  EXPECT_EQ(r->header("HOST"), "a");
  EXPECT_FALSE(r->header("missing"));
  EXPECT_EQ(r->query_param("level"), "debug");
  EXPECT_EQ(r->query_param("x"), "1");
  EXPECT_FALSE(r->query_param("lev"));
}

TEST(HttpParse, RejectsMalformedWithReasons) {
  for (const char* bad : {"", "GET / HTTP/1.1 extra", "GET /", "get\x01 / HTTP/1.1", "GET / HTTP/2",
                          "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\n: empty-name", "GET /a\x7f HTTP/1.1",
                          "GET / HTTP/1.1\r\nA: b\rc"}) {
    Result<HttpRequest> r = parse_request_head(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.code(), Errc::invalid_argument);
    EXPECT_FALSE(r.error().detail.empty());
  }
}

TEST(HttpParse, TooManyHeaders) {
  std::string head = "GET / HTTP/1.1";
  for (int i = 0; i < 101; ++i) head += "\r\nH" + std::to_string(i) + ": v";
  EXPECT_FALSE(parse_request_head(head));
}

TEST(HttpParse, PercentDecoding) {
  EXPECT_EQ(percent_decode("a%3Db+c%2c"), "a=b c,");
  EXPECT_FALSE(percent_decode("%"));
  EXPECT_FALSE(percent_decode("%4"));
  EXPECT_FALSE(percent_decode("%g0"));
  EXPECT_EQ(percent_decode(""), "");
}

TEST(HttpResponse, Serialization) {
  HttpResponse r = HttpResponse::text(405, "no\n");
  r.headers.emplace_back("Allow", "POST");
  EXPECT_EQ(serialize_response(r),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n"
            "Connection: close\r\nAllow: POST\r\n\r\nno\n");
}

// Runs a dispatch whose handlers answer at once.
HttpResponse answer(const Routes& routes, const HttpRequest& req) {
  HttpResponse out;
  bool done = false;
  Scope scope;
  scope.spawn([](const Routes& r, const HttpRequest& q, HttpResponse& o, bool& d) -> Task<void> {
    o = co_await dispatch(r, q);
    d = true;
  }(routes, req, out, done));
  EXPECT_TRUE(done);
  return out;
}

TEST(HttpRoutes, DispatchNotFoundAndMethodNotAllowed) {
  Routes routes;
  routes.push_back({"/a", {"GET", "POST"}, answer_with([](const HttpRequest&) { return HttpResponse::text(200, "a"); })});
  HttpRequest req;
  req.method = "GET";
  req.path = "/a";
  EXPECT_EQ(answer(routes, req).body, "a");
  req.method = "DELETE";
  HttpResponse not_allowed = answer(routes, req);
  EXPECT_EQ(not_allowed.status, 405);
  ASSERT_EQ(not_allowed.headers.size(), 1u);
  EXPECT_EQ(not_allowed.headers[0].second, "GET, POST");
  req.path = "/b";
  EXPECT_EQ(answer(routes, req).status, 404);
}

TEST(HttpRoutes, LogDirectivesAsUpstreamAcceptsThem) {
  for (const char* d : {"trace", "debug", "info", "warn", "error", "off", "INFO", "hbone=debug,info",
                        "ztunnel::proxy=debug", "access=off,warn"}) {
    EXPECT_TRUE(is_log_directives(d)) << d;
  }
  for (const char* d : {"", "verbose", "hbone", "hbone=", "=debug", "info,,warn", "a b=info"}) {
    EXPECT_FALSE(is_log_directives(d)) << d;
  }
}

}  // namespace
}  // namespace zt::core::admin
