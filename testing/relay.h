// The TCP relay: accept a connection, connect to its destination (a fixed
// one, or where the client meant to go before capture redirected it), then
// copy both ways until both sides are done. This is the passthrough path of
// the proxy.
//
//   RelayConfig cfg;
//   RelayServer relay(env, std::move(listener), cfg, RelayServer::original_destination());
//   relay.start();
//   ... relay.counters().bytes_to_upstream ...
//
// A connect that fails (refused, timed out) resets the client connection:
// a reset is the closest a transparent proxy can come to "refused", and a
// clean FIN would look like a successful empty exchange.
#pragma once

#include <functional>
#include <memory>

#include "core/copy.h"
#include "io/acceptor.h"
#include "io/env.h"
#include "io/task.h"

namespace zt::testing {

using core::CopyEnd;
using core::CopyStats;

struct RelayConfig {
  Duration connect_timeout = std::chrono::seconds(10);  // upstream ztunnel's default
  SocketOptions upstream;                               // nodelay, keepalive, mark, source IP
};

enum class RelayOutcome : uint8_t {
  finished,          // both directions closed cleanly
  reset_downstream,  // the client reset (forwarded to the server)
  reset_upstream,    // the server reset (forwarded to the client)
  connect_failed,    // refused, unreachable or timed out (the client was reset)
  no_destination,    // the destination could not be determined (the client was reset)
};

const char* relay_outcome_name(RelayOutcome o);

struct RelayResult {
  RelayOutcome outcome = RelayOutcome::finished;
  CopyStats bytes;  // a = downstream (client), b = upstream (server)
  std::optional<Error> error;
};

// Relays one accepted connection to dst.
Task<RelayResult> relay_connection(Env& env, StreamPtr downstream, Endpoint dst, const RelayConfig& cfg);

class RelayServer {
 public:
  // Picks the destination for an accepted connection.
  using Destination = std::function<Result<Endpoint>(const Stream& downstream)>;
  static Destination fixed(Endpoint dst);
  static Destination original_destination();

  struct Counters {
    uint64_t accepted = 0;
    uint64_t active = 0;
    uint64_t finished = 0;
    uint64_t reset = 0;           // by either side
    uint64_t connect_failed = 0;  // includes no_destination
    uint64_t bytes_to_upstream = 0;
    uint64_t bytes_to_downstream = 0;
  };

  RelayServer(Env& env, std::unique_ptr<Listener> listener, RelayConfig cfg, Destination dst);
  ~RelayServer();  // stops accepting and drops every relayed connection
  RelayServer(const RelayServer&) = delete;

  void start();
  Endpoint local() const { return acceptor_.local(); }
  const Counters& counters() const { return counters_; }
  // Called when a connection ends (tests and, later, access logs).
  void on_finished(std::function<void(const RelayResult&)> fn) { on_finished_ = std::move(fn); }

 private:
  Task<void> serve(StreamPtr downstream);

  Env& env_;
  RelayConfig cfg_;
  Destination dst_;
  Counters counters_;
  std::function<void(const RelayResult&)> on_finished_;
  Acceptor acceptor_;  // last: its tasks go first
};

}  // namespace zt::testing
