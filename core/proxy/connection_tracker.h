// Open inbound connections as authorization saw them, so that a policy
// change can re-check each one and close those now denied (upstream's
// connection manager and policy watcher).
//
//   ConnectionTracker tracker;
//   StreamPtr tunnel, upstream;            // declared before the handle
//   auto handle = tracker.track(conn, [&] { if (tunnel) tunnel->abort(); if (upstream) upstream->abort(); });
//   ... copy ...
//   if (handle.revoked()) report.closed(sent, recv, kPolicyChangeError, kFlagDenied);
//
//   // after publishing a new snapshot:
//   size_t closed = tracker.recheck(*snapshot);
//
// Single-threaded like the rest of core. Connections are kept in id order,
// so re-checks close them in a replayable order.
#pragma once

#include <functional>
#include <map>

#include "core/mesh/rbac.h"
#include "core/mesh/snapshot.h"

namespace zt::core::proxy {

// The error a connection closed by a re-check ends with (upstream's text).
inline constexpr std::string_view kPolicyChangeError = "connection closed due to policy change";

class ConnectionTracker {
 public:
  // Keeps one connection registered for as long as it lives.
  class Handle {
   public:
    Handle() = default;
    Handle(Handle&& other) noexcept;
    Handle& operator=(Handle&& other) noexcept;
    Handle(const Handle&) = delete;
    ~Handle();
    // True once a re-check denied the connection (its abort was called).
    bool revoked() const;

   private:
    friend class ConnectionTracker;
    Handle(ConnectionTracker* tracker, uint64_t id) : tracker_(tracker), id_(id) {}
    ConnectionTracker* tracker_ = nullptr;
    uint64_t id_ = 0;
  };

  ConnectionTracker() = default;
  ConnectionTracker(const ConnectionTracker&) = delete;
  ~ConnectionTracker();  // every Handle must be gone by now

  // `abort` resets the connection's streams; it is called at most once, from
  // recheck(), and must not destroy the Handle (io completions never fire
  // inside abort(), so aborting streams is fine).
  Handle track(mesh::Connection conn, std::function<void()> abort);

  // Re-runs authorize() for every open connection against `snap`: a
  // connection whose destination workload is gone, or that its policies now
  // deny, is aborted and marked revoked. Returns how many were closed.
  size_t recheck(const mesh::StateSnapshot& snap);
  // Aborts every open connection (its server cuts them all: a pod's
  // proxies at their drain deadline). Not a revocation: no re-check or
  // later call aborts them again.
  void abort_all();

  size_t open() const { return open_.size(); }
  uint64_t revoked_total() const { return revoked_total_; }

 private:
  struct Entry {
    mesh::Connection conn;
    std::function<void()> abort;
    bool revoked = false;
    bool aborted = false;  // by abort_all
  };
  std::map<uint64_t, Entry> open_;
  uint64_t next_id_ = 1;
  uint64_t revoked_total_ = 0;
};

// Whether `conn` is allowed by `snap` as it stands: its destination is a
// known workload and that workload's policies allow it.
bool still_allowed(const mesh::StateSnapshot& snap, const mesh::Connection& conn);

}  // namespace zt::core::proxy
