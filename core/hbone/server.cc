#include "core/hbone/server.h"

#include <optional>

#include "io/async.h"
#include "io/event.h"
#include "tls/stream.h"

namespace zt::core::hbone {

std::string InboundRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return "";
}

Result<Endpoint> parse_authority(std::string_view authority) { return Endpoint::parse(authority); }

Server::Server(Env& env, std::unique_ptr<Listener> listener, std::shared_ptr<const tls::TlsContext> tls,
               Handler handler, h2::Settings settings, ServerDeadlines deadlines)
    : env_(env), tls_(std::move(tls)), handler_(std::move(handler)), settings_(settings), deadlines_(deadlines),
      acceptor_(env, std::move(listener), [this](StreamPtr s) { return serve(std::move(s)); }) {}

Server::~Server() {
  *alive_ = false;
  acceptor_.tasks().clear();  // the connections' tasks, before the connections
  conns_.clear();
}

void Server::start() { acceptor_.start(); }

std::vector<h2::Connection::Unread> Server::unread() const {
  std::vector<h2::Connection::Unread> out;
  for (const auto& c : conns_) out.push_back(c->unread());
  return out;
}

void Server::drain() {
  draining_ = true;
  acceptor_.drain();
  for (auto& c : conns_) c->goaway();
}

Task<void> Server::serve(StreamPtr tcp) {
  const Endpoint from = tcp->peer();
  auto tls = std::make_unique<tls::TlsStream>(env_, tls_, std::move(tcp));
  bool late = false;
  std::optional<io::ScopedTimer> deadline(std::in_place, env_.loop, deadlines_.handshake, [t = tls.get(), &late] {
    late = true;
    t->abort();
  });
  Result<void> hs = co_await tls::handshake(*tls);
  deadline.reset();
  if (late) {
    ++counters_.timed_out;
    ZT_LOG(env_.log, debug, "hbone::server", "no TLS handshake in time: dropped", {"peer", from});
    co_return;
  }
  if (!hs) {
    ++counters_.handshake_failures;
    ZT_LOG(env_.log, debug, "hbone::server", "TLS handshake failed", {"peer", from},
           {"failure", tls::tls_failure_name(tls->failure())}, {"error", hs.error().message()});
    co_return;  // the stream closes; a failed handshake already sent its alert
  }
  ++counters_.connections;
  const std::optional<tls::Identity> peer = tls->peer_identity();
  auto conn = std::make_unique<h2::Connection>(env_, std::move(tls), h2::Role::server, settings_);
  h2::Connection* raw = conn.get();
  const uint64_t id = ++next_connection_id_;
  // A handshake that completed during a drain: the client sent its first
  // CONNECT (and early data) with its last flight. A bare close would leave
  // it unsure whether we took them; GOAWAY naming no stream tells it none
  // was, so it retries them elsewhere invisibly and closes the connection.
  if (draining_) {
    ZT_LOG(env_.log, debug, "hbone::server", "connection during a drain: GOAWAY", {"peer", from});
    conns_.push_back(std::move(conn));
    auto it = std::prev(conns_.end());
    auto closed = std::make_shared<bool>(false);
    raw->on_closed([this, it, closed](const Error&) {
      *closed = true;
      env_.loop.post([this, it, alive = alive_] {
        if (*alive) conns_.erase(it);
      });
    });
    raw->goaway();  // before start(): it is sent before any request is read, so none is taken
    raw->start();
    // A client that never closes it is dropped like one that never asks.
    env_.loop.run_after(deadlines_.first_request, [raw, closed, alive = alive_] {
      if (*alive && !*closed) raw->close(Error(Errc::timed_out, "draining"));
    });
    co_return;
  }
  // Until its first request the connection is on a deadline.
  struct Watch {
    bool requested = false, closed = false;
  };
  auto watch = std::make_shared<Watch>();
  raw->on_request([this, raw, peer, watch, id](Answer in) {
    watch->requested = true;
    on_request(*raw, peer, id, std::move(in));
  });
  conns_.push_back(std::move(conn));
  auto it = std::prev(conns_.end());
  // This task lasts as long as the connection, so that the acceptor's
  // budget unit (a descriptor: io/acceptor.h) is held by every HBONE
  // connection and its tunnels, not only by handshakes.
  Event closed(env_.loop);
  raw->on_closed([this, it, raw, watch, id, closed](const Error&) mutable {
    watch->closed = true;
    closed.set();
    if (raw->calmed()) {
      ++counters_.calmed;
      if (on_calmed_) on_calmed_();
    }
    if (on_connection_closed_) on_connection_closed_(id);
    // Not inside the connection's own call stack: free it from the loop.
    env_.loop.post([this, it, alive = alive_] {
      if (*alive) conns_.erase(it);
    });
  });
  raw->start();
  // `raw` is alive while the watch says open: it is freed only after on_closed.
  env_.loop.run_after(deadlines_.first_request, [this, raw, watch, alive = alive_] {
    if (!*alive || watch->requested || watch->closed) return;
    ++counters_.timed_out;
    ZT_LOG(env_.log, debug, "hbone::server", "no request in time: dropped", {"peer", raw->peer()});
    raw->close(Error(Errc::timed_out, "no request within the deadline"));
  });
  co_await closed.wait();
}

void Server::on_request(h2::Connection& conn, const std::optional<tls::Identity>& peer, uint64_t id, Answer in) {
  ++counters_.requests;
  h2::Request& req = in->request();
  auto target = parse_authority(req.authority);
  if (req.method != "CONNECT" || !target) {
    ++counters_.bad_requests;
    ZT_LOG(env_.log, debug, "hbone::server", "bad request: 400", {"peer", conn.peer()}, {"method", req.method},
           {"authority", req.authority});
    return in->reject(400);
  }
  ZT_LOG(env_.log, debug, "hbone::server", "request", {"peer", conn.peer()},
         {"identity", peer ? peer->to_string() : std::string()}, {"authority", req.authority});
  InboundRequest r;
  r.target = *target;
  r.peer_identity = peer;
  r.headers = std::move(req.headers);  // the handler's now; the answer needs none
  r.connection_local = conn.local();
  r.connection_peer = conn.peer();
  r.connection_id = id;
  handler_(std::move(r), std::move(in));
}

}  // namespace zt::core::hbone
