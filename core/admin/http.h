// A minimal HTTP/1.1 server for the admin, stats and readiness ports: one
// request per connection over any Stream, answered with `Connection: close`.
//
//   HttpHandler hello = answer_with([](const HttpRequest& req) {
//     return HttpResponse::text(200, "hello " + req.path + "\n");
//   });
//   scope.spawn(serve_http_connection(env, std::move(stream), hello, HttpLimits{}));
//
// Input is never trusted: a head over `head_bytes_max` gets 431, a body over
// `body_bytes_max` 413, chunked bodies 501, anything malformed 400 with a
// body saying why; a connection that does not finish its request within
// `request_timeout` is reset. Nothing a peer sends can reach an assertion.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/env.h"
#include "io/result.h"
#include "io/task.h"

namespace zt::core::admin {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: "/logging?level=debug"
  std::string path;    // "/logging"
  std::string query;   // "level=debug" (without '?'), may be empty
  std::string version;  // "HTTP/1.1" or "HTTP/1.0"
  HttpHeaders headers;  // names as sent
  std::string body;

  // First header with this name (case-insensitive).
  std::optional<std::string_view> header(std::string_view name) const;
  // The first `name=value` of the query, percent-decoded ('+' is a space).
  // nullopt when absent or badly encoded.
  std::optional<std::string> query_param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  HttpHeaders headers;  // extra headers (e.g. Allow)

  static HttpResponse text(int status, std::string body);
};

// A handler may wait (a scrape asks every worker for its metrics); the
// request lives until its task ends.
using HttpHandler = std::function<Task<HttpResponse>(const HttpRequest&)>;
// A handler that answers at once.
HttpHandler answer_with(std::function<HttpResponse(const HttpRequest&)> fn);

struct HttpLimits {
  size_t head_bytes_max = 16 * 1024;  // request line + headers + blank line
  size_t body_bytes_max = 64 * 1024;
  Duration request_timeout = std::chrono::seconds(10);  // whole exchange, head to drained close
  size_t drain_bytes_max = 256 * 1024;  // read and dropped after the response, so close sends FIN not RST
};

// Parses a request head (request line and headers, without the blank line
// that ends it; lines end with CRLF). Errc::invalid_argument with a reason
// when malformed.
Result<HttpRequest> parse_request_head(std::string_view head);

// "HTTP/1.1 <status> <reason>\r\n" + Content-Type, Content-Length,
// Connection: close and the extra headers, then the body.
std::string serialize_response(const HttpResponse& resp);

const char* status_reason(int status);

// Percent-decodes a query component ('+' is a space); nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view s);

// Serves one request on `stream` and closes it.
Task<void> serve_http_connection(Env& env, StreamPtr stream, HttpHandler handler, HttpLimits limits);

}  // namespace zt::core::admin
