// A gRPC channel: the one HTTP/2 connection to a server (istiod's xDS or
// CA), over TLS or plaintext, made when first needed and made again when it
// has died. Calls (call.h) run on the connection it hands out.
//
//   Channel ch(env, {.address = istiod, .tls = ctx, .authority = "istiod.istio-system.svc:15012"});
//   Result<h2::Connection*> conn = co_await ch.connection();
//   if (conn) ClientCall call(env, **conn, path, options);
//
// Reconnect pacing is the caller's (the xDS client backs off); a channel
// only connects when asked. Keepalive is HTTP/2's (h2::Settings: PING after
// idle, dropped when unanswered).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "h2/connection.h"
#include "io/env.h"
#include "io/event.h"
#include "io/task.h"
#include "tls/context.h"

namespace zt::xds::grpc {

struct ChannelConfig {
  // Where to connect: `host` resolved on every connect (istiod is a Service
  // name; its IPs change), on address.port; with several IPs, successive
  // connects take them in turn, so one dead IP does not stop the channel.
  // An empty host: `address` as it is.
  std::string host;
  Endpoint address;
  // Null: plaintext HTTP/2 (an http:// address, as upstream allows).
  std::shared_ptr<const tls::TlsContext> tls;
  std::string authority;  // :authority of every call, host:port
  Duration connect_timeout = std::chrono::seconds(10);  // TCP and TLS together
  SocketOptions socket;
  // Keepalive as upstream's control-plane client: PING after 30 s without a
  // frame, dropped 10 s later. istiod refuses PINGs more often than every
  // 15 s (GOAWAY too_many_pings), so the data path's 10 s would not do.
  h2::Settings settings = [] {
    h2::Settings s = h2::Settings::client();
    s.ping_idle = std::chrono::seconds(30);
    s.ping_timeout = std::chrono::seconds(10);
    return s;
  }();
};

class Channel {
 public:
  Channel(Env& env, ChannelConfig config);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // A live connection that takes new streams, connecting first when there
  // is none (callers that ask while a connect is under way share it). One
  // that stopped taking streams (the server sent GOAWAY, as istiod does to
  // rebalance, or a PING is overdue) is set aside, its calls running on,
  // and a new one made. The pointer stays valid until reset() or the
  // channel goes.
  Task<Result<h2::Connection*>> connection();
  // Drops every connection (their calls fail); the next connection() makes a new one.
  void reset();
  // New roots (root rotation): connections made from now on use `tls`; the
  // one that is up keeps its session.
  void set_tls(std::shared_ptr<const tls::TlsContext> tls) { config_.tls = std::move(tls); }
  const ChannelConfig& config() const { return config_; }
  std::string scheme() const { return config_.tls ? "https" : "http"; }
  uint64_t connects() const { return connects_; }

 private:
  Task<void> connect();
  Task<Result<Endpoint>> destination();

  Env& env_;
  ChannelConfig config_;
  std::unique_ptr<h2::Connection> conn_;
  std::vector<std::unique_ptr<h2::Connection>> retiring_;  // no new streams; their calls go on
  std::optional<Error> last_error_;
  std::shared_ptr<Event> connecting_;  // set while a connect runs
  uint64_t connects_ = 0;
  Scope scope_;  // last: a connect in flight goes first
};

}  // namespace zt::xds::grpc
