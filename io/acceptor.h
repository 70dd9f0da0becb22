// The accept / serve / drain skeleton every server shares (outbound,
// inbound HBONE, inbound plaintext, SOCKS5, admin, the test relay): accept
// until drained, serve each connection as a task of the acceptor's own
// scope, count what is served, refuse past a bound, and back off on accept
// errors (out of descriptors) instead of spinning.
//
//   Acceptor acceptor(env, std::move(listener), [this](StreamPtr s) { return serve(std::move(s)); });
//   acceptor.start();
//   acceptor.drain();      // stop accepting; connections in flight go on
//   acceptor.serving();    // connections whose task still runs
//
// Declare the acceptor last in its server: destroying it destroys every
// connection's task (at its suspension point) while the server's other
// members, which the tasks use, still exist.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>

#include "io/env.h"
#include "io/task.h"

namespace zt {

// Connections shared out among several acceptors (every data-path listener
// of every worker), so that the data path runs out of them before the
// process runs out of descriptors: the admin, stats and readiness ports,
// which take none, keep answering when the data path is saturated. The
// binary's is thread-safe and sized from RLIMIT_NOFILE; one serve task holds
// one unit (work it hands on, as SOCKS5 does to outbound, holds none).
class ConnectionBudget {
 public:
  virtual ~ConnectionBudget() = default;
  virtual bool try_acquire() = 0;
  virtual void release() = 0;
};

class Acceptor {
 public:
  using Serve = std::function<Task<void>(StreamPtr)>;
  struct Counters {
    uint64_t accepted = 0;
    uint64_t refused_busy = 0;  // over connections_max: reset at once
    uint64_t accept_errors = 0;
    uint64_t refused_budget = 0;  // the shared ConnectionBudget was spent: reset at once
  };
  static constexpr size_t kUnbounded = std::numeric_limits<size_t>::max();

  Acceptor(Env& env, std::unique_ptr<Listener> listener, Serve serve, size_t connections_max = kUnbounded);
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  void start();
  // Draws every connection from `budget` (shared, outliving this acceptor).
  void set_budget(ConnectionBudget* budget) { budget_ = budget; }
  // Stops accepting (the listener closes); connections in flight go on.
  void drain();
  bool draining() const { return draining_; }
  size_t serving() const { return serving_; }
  const Counters& counters() const { return counters_; }
  Endpoint local() const { return listener_->local(); }
  // For tasks a server starts besides a connection's own (a SOCKS5 client
  // handed on to outbound): they live and die with the connections.
  Scope& tasks() { return scope_; }

 private:
  Task<void> accept_loop();
  static Task<void> counted(Task<void> task, size_t& serving, ConnectionBudget* budget);

  Env& env_;
  std::unique_ptr<Listener> listener_;
  Serve serve_;
  const size_t connections_max_;
  ConnectionBudget* budget_ = nullptr;
  Counters counters_;
  size_t serving_ = 0;
  bool started_ = false;
  bool draining_ = false;
  Scope scope_;  // last: destroyed first, while everything it uses lives
};

}  // namespace zt
