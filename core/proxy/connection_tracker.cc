#include "core/proxy/connection_tracker.h"

#include <vector>

#include "io/assert.h"

namespace zt::core::proxy {

ConnectionTracker::Handle::Handle(Handle&& other) noexcept : tracker_(other.tracker_), id_(other.id_) {
  other.tracker_ = nullptr;
}

ConnectionTracker::Handle& ConnectionTracker::Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    if (tracker_) tracker_->open_.erase(id_);
    tracker_ = other.tracker_;
    id_ = other.id_;
    other.tracker_ = nullptr;
  }
  return *this;
}

ConnectionTracker::Handle::~Handle() {
  if (!tracker_) return;
  const size_t erased = tracker_->open_.erase(id_);
  ZT_ASSERT(erased == 1);  // a handle stays registered until it goes
}

bool ConnectionTracker::Handle::revoked() const {
  if (!tracker_) return false;
  auto it = tracker_->open_.find(id_);
  return it != tracker_->open_.end() && it->second.revoked;
}

ConnectionTracker::~ConnectionTracker() { ZT_ASSERT(open_.empty()); }

ConnectionTracker::Handle ConnectionTracker::track(mesh::Connection conn, std::function<void()> abort) {
  const uint64_t id = next_id_++;
  const bool added = open_.emplace(id, Entry{std::move(conn), std::move(abort), false}).second;
  ZT_ASSERT(added);
  return Handle(this, id);
}

size_t ConnectionTracker::recheck(const mesh::StateSnapshot& snap) {
  // Decide first, abort after: an abort must never run while we iterate.
  std::vector<uint64_t> denied;
  for (const auto& [id, entry] : open_) {
    if (!entry.revoked && !entry.aborted && !still_allowed(snap, entry.conn)) denied.push_back(id);
  }
  for (uint64_t id : denied) {
    auto it = open_.find(id);
    if (it == open_.end()) continue;
    ZT_ASSERT(!it->second.revoked);  // revoked once: its abort runs once
    it->second.revoked = true;
    ++revoked_total_;
    if (it->second.abort) it->second.abort();
  }
  return denied.size();
}

void ConnectionTracker::abort_all() {
  for (auto& [id, entry] : open_) {
    if (entry.revoked || entry.aborted) continue;
    entry.aborted = true;
    if (entry.abort) entry.abort();  // must not destroy a Handle: the map stays as it is
  }
}

bool still_allowed(const mesh::StateSnapshot& snap, const mesh::Connection& conn) {
  const mesh::Workload* dst = snap.workload_by_address({conn.dst_network, conn.dst.ip});
  if (!dst) return false;  // upstream: a destination that is gone is no longer allowed
  return mesh::authorize(snap.policies_for(*dst), conn).allowed;
}

}  // namespace zt::core::proxy
