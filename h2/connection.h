// HTTP/2 connections over any io Stream (usually a TlsStream), on nghttp2,
// with each stream exposed as a byte Stream: the transport of HBONE tunnels
// (CONNECT) and later of gRPC.
//
//   h2::Connection conn(env, std::move(tls), h2::Role::client, h2::Settings::client());
//   conn.start();
//   conn.open({"CONNECT", "10.0.0.5:8080", {{"forwarded", "for=..."}}}, [](Result<h2::Opened> r) {
//     if (r && r->response.status == 200) use(std::move(r->tunnel));   // a Stream
//   });
//
// Mapping to Stream semantics: a tunnel's shutdown_write() is END_STREAM and
// the peer's END_STREAM reads as EOF (half-close both ways); abort() is
// RST_STREAM(CANCEL) and a received RST_STREAM fails reads and writes with
// connection_reset. Flow control is manual: received bytes are acknowledged
// (WINDOW_UPDATE) only when the application reads them, so a slow reader
// holds at most one stream window (4 MiB) and the connection at most its
// window (16 MiB). A write completes once nghttp2 has framed all of it, which
// waits for window: a slow peer slows the writer.
//
// Keepalive: after ping_idle without a frame from the peer a PING goes out;
// no answer within ping_timeout and the connection is dropped.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <string>
#include <utility>
#include <vector>

#include "io/env.h"
#include "io/task.h"

namespace zt::h2 {

enum class Role : uint8_t { client, server };

// HTTP/2 settings (docs/PROTOCOL.md: HBONE).
struct Settings {
  uint32_t stream_window_bytes = 4 << 20;
  uint32_t connection_window_bytes = 16 << 20;
  uint32_t frame_bytes_max = 1 << 20;
  uint32_t header_list_bytes_max = 16 << 10;
  uint32_t concurrent_streams_max = 200;  // what the peer may open towards us
  Duration ping_idle = std::chrono::seconds(10);
  Duration ping_timeout = std::chrono::seconds(20);
  // Client: a sign of life before early data goes on a quiet connection.
  // A connection that has heard nothing from its peer for liveness_quiet
  // may be dead (the peer crashed, or a black hole) without knowing it yet:
  // keepalive notices only after ping_idle + ping_timeout. A stream opened
  // on it sends its request at once, with a PING, but holds its DATA until
  // a PING ACK comes. None within liveness_timeout: the connection takes no
  // new streams, and the held ones (none of their data left) are refused,
  // so the pool retries them on a fresh connection instead of losing their
  // early data into a hole. A live peer costs the early data one round trip
  // (as if it had waited for the answer); the request itself is not
  // delayed. Zero liveness_quiet: no probe.
  Duration liveness_quiet = std::chrono::seconds(2);
  Duration liveness_timeout = std::chrono::seconds(2);
  // Incoming RST_STREAM rate limit (server): a token bucket.
  uint64_t stream_resets_burst = 10000;
  uint64_t stream_resets_per_s = 1000;
  // Server: requests handed to the application and not answered yet. A
  // peer that opens streams and resets them (rapid reset) stays under the
  // stream limit while its requests pile up behind it; past this bound it
  // gets GOAWAY(ENHANCE_YOUR_CALM) and the connection ends.
  size_t unanswered_requests_max = 400;

  static Settings client() { return Settings{}; }
  static Settings server() {
    Settings s;
    s.header_list_bytes_max = 64 << 10;
    return s;
  }
};

using Headers = std::vector<std::pair<std::string, std::string>>;
// The first value of `name` (as received: lower case), if any.
std::optional<std::string_view> find_header(const Headers& headers, std::string_view name);

struct Request {
  std::string method;     // "CONNECT" for HBONE
  std::string authority;  // ip:port
  Headers headers;        // regular headers (no pseudo-headers)
  std::string scheme, path;  // empty for CONNECT
};

struct Response {
  int status = 0;
  Headers headers;
};

struct Opened {
  Response response;
  StreamPtr tunnel;  // set for a 2xx answer
  // The response's trailers (gRPC's status): filled when they arrive, before
  // the tunnel reads EOF; empty if the peer sent none; null unless the
  // request said it takes them (a "te: trailers" header).
  std::shared_ptr<const Headers> trailers;
};

// Why open() failed. `refused` streams never reached the peer's application
// (REFUSED_STREAM, GOAWAY past them, a request that never left, or the
// connection gone before the response while none of the request's DATA had
// left): they are safe to retry on another connection. `lost` streams may
// have reached it (the peer reset the stream before answering, or the
// connection ended after DATA left, early data): the bytes may have been
// consumed, so they must not be sent again elsewhere.
inline constexpr Errc kRefused = Errc::connection_refused;
inline constexpr Errc kLost = Errc::connection_reset;

struct Core;

class Connection {
 public:
  // A request arrived (server). Answer it once with accept() or reject();
  // destroying it unanswered rejects it with 503. DATA that arrives before
  // the answer (a client's early data) is kept for the tunnel accept()
  // returns.
  class Incoming {
   public:
    Incoming(std::shared_ptr<Core> core, int32_t stream_id, Request request);
    ~Incoming();
    // Until answered: accept() frees it (an open tunnel keeps no strings).
    const Request& request() const { return request_; }
    Request& request() { return request_; }
    int32_t stream_id() const { return id_; }
    // 200, then the tunnel. With `trailers`, the tunnel's shutdown_write()
    // ends the stream with them (read then, so they may be set late).
    StreamPtr accept(Headers headers = {}, std::shared_ptr<const Headers> trailers = nullptr);
    void reject(int status, Headers headers = {});
    // The client reset the stream (or the connection died) before our
    // answer: `fn` runs then, at once if that already happened, and never
    // after this Incoming is gone. Work done for the request can stop.
    void on_cancel(std::function<void()> fn);
    bool cancelled() const;

   private:
    void answered();
    std::shared_ptr<Core> core_;
    int32_t id_;
    Request request_;
    bool answered_ = false;
  };

  Connection(Env& env, StreamPtr transport, Role role, Settings settings);
  ~Connection();  // drops the transport; open tunnels fail with connection_reset
  Connection(const Connection&) = delete;

  void start();
  // Client: sends a request; `done` gets the answer, and a 2xx one the
  // tunnel. With `early`, the tunnel is handed out at once instead (through
  // `early`, before open() returns; `done` then carries none): what is
  // written to it before the answer goes as DATA right behind the request,
  // which a server keeps for the tunnel it accepts (Incoming::accept) and
  // drops with a request it rejects. A non-2xx answer fails the early
  // tunnel's reads and writes with kRefused.
  void open(Request request, std::function<void(Result<Opened>)> done, std::function<void(StreamPtr)> early = {});
  void on_request(std::function<void(std::unique_ptr<Incoming>)> fn);   // server
  void on_closed(std::function<void(const Error&)> fn);
  // Called when the connection's last open stream has closed (not on death:
  // see on_closed). Runs inside the connection's own processing: it may
  // note the time or arm a timer, not destroy the connection.
  void on_idle(std::function<void()> fn);
  // Sends GOAWAY: no new streams; open ones finish. Called before start(),
  // it goes out before any request is read: the peer learns none was taken.
  void goaway();
  // Ends the connection now (on_closed runs with `why`); open streams fail.
  void close(Error why);

  // Whether a new stream may go on this connection: alive, no GOAWAY either
  // way, no PING left unanswered past ping_idle, no liveness probe left
  // unanswered past liveness_timeout, below the stream limit.
  bool accepting_streams() const;
  bool dead() const;
  // Server: this connection was told to calm down (GOAWAY with
  // ENHANCE_YOUR_CALM: too many unanswered requests) and is ending.
  bool calmed() const;
  // Server: requests answered 431 because their header list was larger
  // than header_list_bytes_max (they never reach on_request).
  uint64_t oversized_requests() const;
  size_t active_streams() const;
  // Received DATA the application has not read yet, over the open streams,
  // and the most on one of them: what flow control bounds (a stream's
  // window each, the connection's window in all), whatever the peer does.
  struct Unread {
    size_t total = 0, stream_max = 0;
  };
  Unread unread() const;
  Endpoint local() const;
  Endpoint peer() const;
  uint32_t peer_concurrent_streams_max() const;

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace zt::h2
