// SOCKS5 outbound (15080, off unless UNSTABLE_ENABLE_SOCKS5=true): a client
// names its destination (IPv4, IPv6, or a hostname the mesh state knows) in
// a no-auth CONNECT (RFC 1928), and the connection then takes the same path
// as captured outbound traffic.
//
//   Socks5Server socks(env, std::move(listener_15080), state, outbound);
//   socks.start();
#pragma once

#include "core/proxy/proxy.h"
#include "io/acceptor.h"

namespace zt::core::proxy {

struct Socks5Request {
  Endpoint destination;
  std::string hostname;  // as asked, when the client gave a name
};

// RFC 1928 reply codes we send.
enum class Socks5Reply : uint8_t {
  succeeded = 0,
  general_failure = 1,
  host_unreachable = 4,
  command_not_supported = 7,
  address_type_not_supported = 8,
};

// Reads the greeting and the CONNECT request, answering the greeting.
// Hostnames are resolved with `resolve`. On failure the error's detail says
// why and `reply` holds the code to send (or nothing: close at once).
// A client that sent its request without waiting for the method choice (most
// do) gets the choice in the same write as the reply: `owed` holds bytes of
// the answer still to send, ahead of the reply. Never reads past the request.
struct Socks5Failure {
  std::optional<Socks5Reply> reply;
  std::string why;
};
Task<Result<Socks5Request>> read_socks5_request(Stream& s, const std::function<std::optional<IpAddr>(std::string_view)>& resolve,
                                                Socks5Failure& failure, std::vector<uint8_t>& owed);

std::vector<uint8_t> socks5_reply(Socks5Reply code);

// A name known to the mesh state: a service's VIP, else a workload's address.
std::optional<IpAddr> resolve_in_mesh(const mesh::StateSnapshot& state, std::string_view hostname);

struct Socks5Counters {
  uint64_t accepted = 0, forwarded = 0, rejected = 0;
  uint64_t timed_out = 0;  // no complete greeting and request within kSocks5RequestTimeout
};

// A client must finish its greeting and request within this (a slow or
// silent one holds a descriptor and a task): then it is dropped.
inline constexpr Duration kSocks5RequestTimeout = std::chrono::seconds(10);

class Socks5Server {
 public:
  Socks5Server(Env& env, std::unique_ptr<Listener> listener, StateSource state, Outbound& outbound);
  ~Socks5Server();
  void start();
  // Draws its connections from `budget` (descriptor headroom; io/acceptor.h).
  void set_budget(ConnectionBudget* budget) { acceptor_.set_budget(budget); }
  const Socks5Counters& counters() const { return counters_; }
  void drain() { acceptor_.drain(); }

 private:
  Task<void> serve(StreamPtr client);

  Env& env_;
  StateSource state_;
  Outbound& outbound_;
  Socks5Counters counters_;
  Acceptor acceptor_;  // last: its tasks go first
};

}  // namespace zt::core::proxy
