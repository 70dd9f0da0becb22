// The HBONE client connection pool: tunnels (HTTP/2 CONNECT streams) to a
// destination share mutual-TLS HTTP/2 connections, keyed like upstream
// ztunnel (source identity, destination identities, destination address,
// source IP).
//
//   Pool pool(env, PoolConfig{}, contexts);      // contexts: TLS per source identity
//   Result<h2::Opened> t = co_await pool.open(key, request);
//
// Guarantees, because pooled connections to peers that went away were
// upstream users' worst pain:
// - a burst of tunnels to a new key opens one connection (up to the stream
//   limit), not one each;
// - at most min(streams_per_connection_max, peer's limit) streams share a
//   connection; a connection that received GOAWAY, lost its transport or left
//   a PING unanswered takes no new streams;
// - a stream the peer never accepted (REFUSED_STREAM, GOAWAY past it, the
//   connection gone before the response) is retried once on a fresh
//   connection, so the caller never sees it;
// - connections without streams are released after idle_release. A timer
//   runs only when one is due (the earliest idle connection's release), not
//   as a periodic sweep: with a short idle_release a sweep every
//   idle_release/4 woke the worker thousands of times a second.
#pragma once

#include <compare>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "h2/connection.h"
#include "io/env.h"
#include "tls/context.h"

namespace zt::core::hbone {

struct PoolKey {
  std::string source_identity;
  std::vector<std::string> destination_identities;  // sorted
  Endpoint destination;                              // the peer's HBONE endpoint (port 15008)
  IpAddr source_ip;
  auto operator<=>(const PoolKey&) const = default;
  bool operator==(const PoolKey&) const = default;
  std::string to_string() const;
};

struct PoolConfig {
  size_t streams_per_connection_max = 100;  // POOL_MAX_STREAMS_PER_CONNECTION
  Duration idle_release = std::chrono::minutes(5);  // POOL_UNUSED_RELEASE_TIMEOUT
  Duration connect_timeout = std::chrono::seconds(10);
  SocketOptions socket;
  h2::Settings h2 = h2::Settings::client();
};

struct PoolCounters {
  uint64_t connections_opened = 0;
  uint64_t connection_failures = 0;
  uint64_t tunnels_opened = 0;
  uint64_t tunnels_failed = 0;
  uint64_t retries = 0;  // streams refused and retried on a fresh connection
  uint64_t connections_released = 0;
};

class Pool {
 public:
  // The client TLS context for a key's source identity, expecting the key's
  // destination identities.
  using ContextFor = std::function<Result<std::shared_ptr<const tls::TlsContext>>(const PoolKey&)>;

  Pool(Env& env, PoolConfig config, ContextFor contexts);
  ~Pool();
  Pool(const Pool&) = delete;

  // Opens a tunnel: CONNECT `request` over a pooled connection for `key`.
  // With `early`, each CONNECT submitted hands its tunnel out at once (early
  // data, h2::Connection::open); the retry on a fresh connection hands out
  // a second one, which replaces the first.
  Task<Result<h2::Opened>> open(PoolKey key, h2::Request request, std::function<void(StreamPtr)> early = {});

  size_t connections() const;
  size_t connections_for(const PoolKey& key) const;
  const PoolCounters& counters() const { return counters_; }

 private:
  struct Conn;
  struct Waiter;

  Task<Result<Conn*>> acquire(const PoolKey& key, bool fresh);
  Task<void> establish(PoolKey key, Conn* conn);
  Conn* pick(const PoolKey& key);
  size_t capacity(const Conn& c) const;
  // Whether a connection has nothing to do: set up (or failed), no stream
  // promised, none open (or it is dead).
  static bool unused(const Conn& c);
  static bool broken(const Conn& c);
  // Called whenever a connection may have become unused: notes since when,
  // and makes sure a release is scheduled for it.
  void note_if_unused(Conn& c);
  void release_idle();
  void schedule_sweep(MonoTime at);

  Env& env_;
  PoolConfig config_;
  ContextFor contexts_;
  PoolCounters counters_;
  std::map<PoolKey, std::list<std::unique_ptr<Conn>>> conns_;
  TimerId sweep_ = kNoTimer;
  MonoTime sweep_at_{};  // when sweep_ fires
  Scope scope_;  // last: connection set-ups go first
};

}  // namespace zt::core::hbone
