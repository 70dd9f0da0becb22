#include "core/admin/http.h"

#include <algorithm>
#include <array>
#include <variant>

#include "io/async.h"

namespace zt::core::admin {

namespace {

constexpr size_t kReadChunkBytes = 4096;
constexpr size_t kHeadersCountMax = 100;
constexpr size_t kContentLengthDigitsMax = 18;  // fits in size_t, far above any limit

char lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

// Header values: visible characters, spaces, tabs and obs-text; no controls.
bool is_field_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
  });
}

// Origin-form targets only ("/path?query"): visible ASCII, no spaces.
bool is_origin_target(std::string_view s) {
  if (s.empty() || s[0] != '/') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Error malformed(std::string why) { return Error(Errc::invalid_argument, std::move(why)); }

Result<void> parse_request_line(std::string_view line, HttpRequest& req) {
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return malformed("request line must be: METHOD SP target SP HTTP-version");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return malformed("bad method");
  if (!is_origin_target(target)) return malformed("bad request target (expected /path)");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return malformed("unsupported HTTP version");
  req.method = std::string(method);
  req.target = std::string(target);
  req.version = std::string(version);
  size_t q = target.find('?');
  req.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  return ok();
}

Result<void> parse_header_line(std::string_view line, HttpRequest& req) {
  if (line.front() == ' ' || line.front() == '\t') return malformed("folded header lines are not allowed");
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return malformed("header line without ':'");
  std::string_view name = line.substr(0, colon);
  std::string_view value = trim(line.substr(colon + 1));
  if (!is_token(name)) return malformed("bad header name");
  if (!is_field_value(value)) return malformed("control character in header value");
  if (req.headers.size() >= kHeadersCountMax) return malformed("too many headers");
  req.headers.emplace_back(std::string(name), std::string(value));
  return ok();
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (iequals(n, name)) return std::string_view(v);
  return std::nullopt;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;  // '%' needs two hex digits
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += char(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<std::string> HttpRequest::query_param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    size_t eq = pair.find('=');
    std::optional<std::string> key = percent_decode(pair.substr(0, eq));
    if (!key || *key != name) continue;
    return percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
  }
  return std::nullopt;
}

HttpResponse HttpResponse::text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Result<HttpRequest> parse_request_head(std::string_view head) {
  HttpRequest req;
  bool first = true;
  while (true) {
    size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    if (line.find_first_of("\r\n") != std::string_view::npos) return malformed("bare CR or LF in request head");
    if (line.empty()) return malformed(first ? "empty request line" : "empty header line");
    Result<void> r = first ? parse_request_line(line, req) : parse_header_line(line, req);
    if (!r) return r.error();
    first = false;
    if (eol == std::string_view::npos) break;
    head.remove_prefix(eol + 2);
  }
  return req;
}

const char* status_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
  }
  return "Unknown";
}

std::string serialize_response(const HttpResponse& resp) {
  std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " " + status_reason(resp.status) + "\r\n";
  out += "Content-Type: " + resp.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(resp.body.size()) + "\r\n";
  out += "Connection: close\r\n";
  for (const auto& [name, value] : resp.headers) out += name + ": " + value + "\r\n";
  out += "\r\n";
  out += resp.body;
  return out;
}

namespace {

// Resets the stream when the deadline passes, so whatever read or write is
// pending completes (cancelled) and the connection cannot be held open by a
// client that sends slowly or never reads.
class Deadline {
 public:
  Deadline(Loop& loop, Stream& stream, Duration d) : loop_(loop) {
    timer_ = loop_.run_after(d, [this, &stream] {
      timer_ = kNoTimer;
      stream.abort();
    });
  }
  Deadline(const Deadline&) = delete;
  ~Deadline() {
    if (timer_ != kNoTimer) loop_.cancel(timer_);
  }

 private:
  Loop& loop_;
  TimerId timer_ = kNoTimer;
};

enum class HeadStatus : uint8_t { complete, no_request, truncated, too_large, failed };

struct HeadRead {
  HeadStatus status = HeadStatus::failed;
  size_t head_bytes = 0;  // up to and including the blank line
};

// Reads into buf until the blank line that ends the head; buf may then hold
// the start of the body too. Never holds more than head_bytes_max + one chunk.
Task<HeadRead> read_head(Stream& s, std::string& buf, size_t head_bytes_max) {
  std::array<uint8_t, kReadChunkBytes> chunk;
  size_t scanned = 0;
  for (;;) {
    size_t end = buf.find("\r\n\r\n", scanned >= 3 ? scanned - 3 : 0);
    if (end != std::string::npos) {
      size_t head_bytes = end + 4;
      co_return HeadRead{head_bytes > head_bytes_max ? HeadStatus::too_large : HeadStatus::complete, head_bytes};
    }
    if (buf.size() > head_bytes_max) co_return HeadRead{HeadStatus::too_large};
    scanned = buf.size();
    Result<size_t> n = co_await io::read(s, chunk);
    if (!n) co_return HeadRead{HeadStatus::failed};
    if (*n == 0) co_return HeadRead{buf.empty() ? HeadStatus::no_request : HeadStatus::truncated};
    buf.append(reinterpret_cast<const char*>(chunk.data()), *n);
  }
}

// How many body bytes follow the head, or the response refusing the request.
std::variant<size_t, HttpResponse> body_length(const HttpRequest& req, const HttpLimits& limits) {
  if (req.header("transfer-encoding")) return HttpResponse::text(501, "transfer-encoding is not supported\n");
  std::optional<std::string_view> length;
  for (const auto& [name, value] : req.headers) {
    if (!iequals(name, "content-length")) continue;
    if (length && *length != value) return HttpResponse::text(400, "conflicting content-length headers\n");
    length = value;
  }
  if (!length) return size_t{0};
  if (length->empty() || length->size() > kContentLengthDigitsMax ||
      !std::all_of(length->begin(), length->end(), [](char c) { return c >= '0' && c <= '9'; }))
    return HttpResponse::text(400, "bad content-length\n");
  size_t n = 0;
  for (char c : *length) n = n * 10 + size_t(c - '0');
  if (n > limits.body_bytes_max) return HttpResponse::text(413, "request body too large\n");
  return n;
}

// Appends body bytes to req.body until it holds `length`; false when the
// peer ended or failed first.
Task<bool> read_body(Stream& s, HttpRequest& req, size_t length) {
  std::array<uint8_t, kReadChunkBytes> chunk;
  while (req.body.size() < length) {
    size_t want = std::min(chunk.size(), length - req.body.size());
    Result<size_t> n = co_await io::read(s, MutableBytes(chunk.data(), want));
    if (!n || *n == 0) co_return false;
    req.body.append(reinterpret_cast<const char*>(chunk.data()), *n);
  }
  co_return true;
}

// The response to send, or nothing when the peer went away first.
Task<std::optional<HttpResponse>> read_and_answer(Stream& s, const HttpHandler& handler, const HttpLimits& limits) {
  std::string buf;
  HeadRead head = co_await read_head(s, buf, limits.head_bytes_max);
  switch (head.status) {
    case HeadStatus::no_request:
    case HeadStatus::failed: co_return std::nullopt;
    case HeadStatus::truncated: co_return HttpResponse::text(400, "malformed request: connection ended inside the head\n");
    case HeadStatus::too_large: co_return HttpResponse::text(431, "request head too large\n");
    case HeadStatus::complete: break;
  }
  // Parse without the blank line's CRLF pair that ends the head.
  Result<HttpRequest> req = parse_request_head(std::string_view(buf).substr(0, head.head_bytes - 4));
  if (!req) co_return HttpResponse::text(400, "malformed request: " + req.error().detail + "\n");
  std::variant<size_t, HttpResponse> length = body_length(*req, limits);
  if (auto* refused = std::get_if<HttpResponse>(&length)) co_return std::move(*refused);
  size_t body_bytes = std::get<size_t>(length);
  // Bytes past the body (a pipelined request) are ignored: one request per connection.
  req->body = buf.substr(head.head_bytes, body_bytes);
  if (!co_await read_body(s, *req, body_bytes)) co_return std::nullopt;
  co_return co_await handler(*req);
}

// Sends the response, FIN, then reads and drops what the client still sends
// (up to a bound) so that close() ends with FIN, not with an RST that could
// destroy the response before the client reads it.
Task<void> respond_and_close(Stream& s, const HttpResponse& resp, const HttpLimits& limits) {
  std::string bytes = serialize_response(resp);
  Result<void> w = co_await io::write_all(s, ConstBytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  if (w && s.shutdown_write()) {
    std::array<uint8_t, kReadChunkBytes> chunk;
    size_t drained = 0;
    while (drained <= limits.drain_bytes_max) {
      Result<size_t> n = co_await io::read(s, chunk);
      if (!n || *n == 0) break;
      drained += *n;
    }
  }
  s.close();
}

Task<HttpResponse> answered(HttpResponse r) { co_return r; }

}  // namespace

HttpHandler answer_with(std::function<HttpResponse(const HttpRequest&)> fn) {
  ZT_ASSERT(fn);
  return [fn = std::move(fn)](const HttpRequest& req) { return answered(fn(req)); };
}

Task<void> serve_http_connection(Env& env, StreamPtr stream, HttpHandler handler, HttpLimits limits) {
  ZT_ASSERT(stream && handler);
  Deadline deadline(env.loop, *stream, limits.request_timeout);
  std::optional<HttpResponse> resp = co_await read_and_answer(*stream, handler, limits);
  if (!resp) {
    stream->close();
    co_return;
  }
  co_await respond_and_close(*stream, *resp, limits);
}

}  // namespace zt::core::admin
