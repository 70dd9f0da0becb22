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

class Acceptor {
 public:
  using Serve = std::function<Task<void>(StreamPtr)>;
  struct Counters {
    uint64_t accepted = 0;
    uint64_t refused_busy = 0;  // over connections_max: reset at once
    uint64_t accept_errors = 0;
  };
  static constexpr size_t kUnbounded = std::numeric_limits<size_t>::max();

  Acceptor(Env& env, std::unique_ptr<Listener> listener, Serve serve, size_t connections_max = kUnbounded);
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  void start();
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
  static Task<void> counted(Task<void> task, size_t& serving);

  Env& env_;
  std::unique_ptr<Listener> listener_;
  Serve serve_;
  const size_t connections_max_;
  Counters counters_;
  size_t serving_ = 0;
  bool started_ = false;
  bool draining_ = false;
  Scope scope_;  // last: destroyed first, while everything it uses lives
};

}  // namespace zt
