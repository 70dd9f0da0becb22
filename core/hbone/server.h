// The HBONE server side (port 15008): mutual TLS, HTTP/2, and CONNECT
// requests validated before a handler decides what happens to them.
//
//   Server server(env, std::move(listener), tls_ctx, [&](InboundRequest req, Answer answer) {
//     if (!allowed(req)) return answer->reject(401);
//     StreamPtr tunnel = answer->accept();   // 200, then the bytes
//   });
//   server.start();
//
// Only CONNECT with an `ip:port` authority (IPv4 or [IPv6]) reaches the
// handler; anything else is answered 400 here. The handler may answer later
// (after connecting upstream); an answer it drops becomes a 503.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <optional>

#include "h2/connection.h"
#include "io/acceptor.h"
#include "io/env.h"
#include "tls/context.h"
#include "tls/identity.h"

namespace zt::core::hbone {

struct InboundRequest {
  Endpoint target;                             // the :authority
  std::optional<tls::Identity> peer_identity;  // verified client identity
  Endpoint connection_local;                   // where the TLS connection arrived
  Endpoint connection_peer;
  // The HBONE connection it came on: unique per Server, never reused; the
  // Server's on_connection_closed names it when the connection ends.
  uint64_t connection_id = 0;
  h2::Headers headers;  // forwarded, baggage, traceparent, ...
  std::string header(std::string_view name) const;
};

using Answer = std::unique_ptr<h2::Connection::Incoming>;

struct ServerCounters {
  uint64_t connections = 0;
  uint64_t handshake_failures = 0;
  uint64_t requests = 0;
  uint64_t bad_requests = 0;  // answered 400
  uint64_t calmed = 0;        // connections ended with GOAWAY(ENHANCE_YOUR_CALM)
  uint64_t timed_out = 0;     // no TLS handshake, or no first request, in time
};

// Deadlines for what a client must do before it costs us more than a
// descriptor: finish the TLS handshake, then send its first request (a
// pooled HBONE connection is opened for one). Past them it is dropped.
struct ServerDeadlines {
  Duration handshake = std::chrono::seconds(10);
  Duration first_request = std::chrono::seconds(10);
};

class Server {
 public:
  using Handler = std::function<void(InboundRequest, Answer)>;

  Server(Env& env, std::unique_ptr<Listener> listener, std::shared_ptr<const tls::TlsContext> tls, Handler handler,
         h2::Settings settings = h2::Settings::server(), ServerDeadlines deadlines = {});
  ~Server();
  Server(const Server&) = delete;

  void start();
  // Draws its connections from `budget` (descriptor headroom; io/acceptor.h).
  void set_budget(ConnectionBudget* budget) { acceptor_.set_budget(budget); }
  Endpoint local() const { return acceptor_.local(); }
  // Sends GOAWAY on every connection and stops accepting new ones.
  void drain();
  // Connections accepted from now on handshake with `tls` (root rotation).
  void set_tls(std::shared_ptr<const tls::TlsContext> tls) { tls_ = std::move(tls); }
  size_t connections() const { return conns_.size(); }
  // Per connection: what its tunnels received and have not read (h2).
  std::vector<h2::Connection::Unread> unread() const;
  const ServerCounters& counters() const { return counters_; }
  // Runs when a connection is calmed (too many unanswered requests).
  void on_calmed(std::function<void()> fn) { on_calmed_ = std::move(fn); }
  // Runs when an HBONE connection ends (its InboundRequest::connection_id),
  // inside the connection's own processing; not when the Server itself goes.
  // Its requests still waiting for an answer are cancelled around this call
  // (Incoming::on_cancel), some perhaps after it.
  void on_connection_closed(std::function<void(uint64_t)> fn) { on_connection_closed_ = std::move(fn); }

 private:
  Task<void> serve(StreamPtr tcp);
  void on_request(h2::Connection& conn, const std::optional<tls::Identity>& peer, uint64_t id, Answer in);

  Env& env_;
  std::shared_ptr<const tls::TlsContext> tls_;
  Handler handler_;
  h2::Settings settings_;
  ServerDeadlines deadlines_;
  ServerCounters counters_;
  std::function<void()> on_calmed_;
  std::function<void(uint64_t)> on_connection_closed_;
  uint64_t next_connection_id_ = 0;
  std::list<std::unique_ptr<h2::Connection>> conns_;
  bool draining_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  Acceptor acceptor_;  // last: its tasks go first
};

// Parses an HBONE :authority: "ip:port" or "[ipv6]:port".
Result<Endpoint> parse_authority(std::string_view authority);

}  // namespace zt::core::hbone
