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
// - a burst of tunnels to a new key waits for one connection being set up
//   (up to streams_per_connection_max callers on it), not one connection
//   each;
// - a new connection carries no more streams than its peer allows before
//   the peer's SETTINGS are known: one, or, once a connection of the same
//   key has learned the peer's limit, that limit. Callers beyond it wait for
//   the connection's first answer (the peer's SETTINGS come before any
//   answer), then join it up to the limit or open more connections; so a
//   burst of N to a peer that allows L streams takes about ceil(N/L)
//   connections and none is refused;
// - at most min(streams_per_connection_max, peer's limit) streams share a
//   connection, with the limit as the peer last set it; a connection that
//   received GOAWAY, lost its transport or left a PING unanswered takes no
//   new streams;
// - a stream the peer never accepted (REFUSED_STREAM, GOAWAY past it, the
//   connection gone before the response while none of its early data had
//   left) is retried invisibly, each time on
//   a connection that has not refused it: up to refused_retries_max times
//   when a live connection refused it (or one that went away before
//   answering anything), and without counting when a connection that was
//   serving went away (up to kAttemptsMax attempts in all);
// - a stream that may have reached the peer's application (reset by the
//   peer before its answer, or its connection gone after its early data
//   left) is never retried: open() fails with h2::kLost (connection_reset),
//   which it returns for nothing else, and the caller must not send those
//   bytes elsewhere either;
// - a connection that refused a stream takes no new ones until another of
//   its streams is answered, and is dropped once it has none;
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
#include <optional>
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
  // Retries of a stream that a live connection refused (REFUSED_STREAM), or
  // that a connection lost before it had answered anything.
  size_t refused_retries_max = 3;
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
  uint64_t retries = 0;  // streams refused and retried on another connection
  uint64_t settings_waits = 0;  // callers that waited for a new connection's first answer
  uint64_t connections_released = 0;
};

class Pool {
 public:
  // The client TLS context for a key's source identity, expecting the key's
  // destination identities.
  using ContextFor = std::function<Result<std::shared_ptr<const tls::TlsContext>>(const PoolKey&)>;

  // Attempts per tunnel in all, retries that do not count included: the
  // bound for a peer that keeps going away after answering some streams.
  static constexpr size_t kAttemptsMax = 16;

  Pool(Env& env, PoolConfig config, ContextFor contexts);
  ~Pool();
  Pool(const Pool&) = delete;

  // Opens a tunnel: CONNECT `request` over a pooled connection for `key`.
  // With `early`, each CONNECT submitted hands its tunnel out at once (early
  // data, h2::Connection::open); each retry hands out another one, which
  // replaces the one before.
  Task<Result<h2::Opened>> open(PoolKey key, h2::Request request, std::function<void(StreamPtr)> early = {});

  size_t connections() const;
  size_t connections_for(const PoolKey& key) const;
  const PoolCounters& counters() const { return counters_; }

  // What the pool holds, for checks and debugging: each connection with
  // its peer, in key order. Ids grow with each connection opened (never
  // reused), so "opened before id N" is "opened before that moment".
  struct ConnectionInfo {
    uint64_t id = 0;
    Endpoint peer;             // the key's HBONE endpoint
    bool established = false;  // TLS and HTTP/2 up (it may have died since)
    bool dead = false;         // established and known dead, not dropped yet
    h2::Connection::Unread unread;  // what its tunnels received and have not read
  };
  std::vector<ConnectionInfo> inspect() const;
  uint64_t next_connection_id() const { return next_conn_id_; }

 private:
  struct Conn;
  // A key's connections, and the stream limit its peer last announced on any
  // of them (what a new connection to it may carry before its own SETTINGS).
  struct Keyed {
    std::list<std::unique_ptr<Conn>> conns;
    std::optional<size_t> peer_limit;
  };
  using ConnIds = std::vector<uint64_t>;  // connections that refused a stream

  Task<Result<Conn*>> acquire(const PoolKey& key, const ConnIds& refused_by);
  Conn* open_connection(const PoolKey& key, Keyed& keyed);
  Task<void> establish(PoolKey key, Conn* conn);
  Conn* pick(const Keyed& keyed, const ConnIds& refused_by) const;
  Conn* settling(const Keyed& keyed, const ConnIds& refused_by) const;
  size_t capacity(const Conn& c) const;
  size_t budget(const Keyed& keyed) const;
  size_t expected(const Keyed& keyed) const;
  static size_t load(const Conn& c);
  // What a stream's outcome tells of its connection; returns whether a
  // refusal counts against refused_retries_max.
  bool learn(const PoolKey& key, Conn& c, const Result<h2::Opened>& r);
  // Whether a connection has nothing to do: set up (or failed), held by no
  // caller, no stream open (or it is dead).
  static bool unused(const Conn& c);
  // Dropped as soon as it is unused: failed, dead, or refused a stream.
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
  std::map<PoolKey, Keyed> conns_;
  uint64_t next_conn_id_ = 1;
  TimerId sweep_ = kNoTimer;
  MonoTime sweep_at_{};  // when sweep_ fires
  Scope scope_;  // last: connection set-ups go first
};

}  // namespace zt::core::hbone
