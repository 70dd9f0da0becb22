#include "core/proxy/dial_budget.h"

#include <algorithm>
#include <utility>

namespace zt::core::proxy {

std::string_view reason_label(DialRefusal r) {
  switch (r) {
    case DialRefusal::connection: return "connection_dials_in_flight";
    case DialRefusal::peer: return "peer_dials_in_flight";
    case DialRefusal::listener: return "dials_in_flight";
  }
  return "dials_in_flight";
}

std::string dial_peer_key(std::string_view identity, std::string_view address) {
  if (!identity.empty()) return std::string(identity);
  return "address/" + std::string(address);
}

DialBudget::DialBudget(DialLimits limits)
    : limits_(limits), near_full_(std::max<size_t>(1, limits.per_listener * std::min<size_t>(limits.near_full_percent, 100) / 100)) {}

DialBudget::Ticket::Ticket(Ticket&& other) noexcept
    : budget_(std::exchange(other.budget_, nullptr)), connection_(other.connection_), peer_(std::move(other.peer_)) {}

DialBudget::Ticket& DialBudget::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    release();
    budget_ = std::exchange(other.budget_, nullptr);
    connection_ = other.connection_;
    peer_ = std::move(other.peer_);
  }
  return *this;
}

void DialBudget::Ticket::release() {
  if (DialBudget* b = std::exchange(budget_, nullptr)) b->release(connection_, peer_);
}

size_t DialBudget::fair_share(std::string_view peer) const {
  const size_t active = peers_.size() + (peers_.find(peer) == peers_.end() ? 1 : 0);
  return std::max<size_t>(1, near_full_ / active);
}

size_t DialBudget::in_flight_of_peer(std::string_view peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? 0 : it->second;
}

size_t DialBudget::in_flight_of_connection(uint64_t connection) const {
  auto it = connections_.find(connection);
  return it == connections_.end() ? 0 : it->second;
}

std::optional<DialRefusal> DialBudget::try_acquire(uint64_t connection, std::string_view peer, Ticket& ticket) {
  ticket.release();
  auto refuse = [this](DialRefusal r) {
    ++refused_[static_cast<size_t>(r)];
    return std::optional<DialRefusal>(r);
  };
  const size_t of_connection = in_flight_of_connection(connection);
  const size_t of_peer = in_flight_of_peer(peer);
  if (of_connection >= limits_.per_connection) return refuse(DialRefusal::connection);
  if (of_peer >= limits_.per_peer) return refuse(DialRefusal::peer);
  // Near full, the heavy peers go first: a peer below its share still gets
  // in while the listener has room.
  if (total_ >= near_full_ && of_peer >= fair_share(peer)) return refuse(DialRefusal::peer);
  if (total_ >= limits_.per_listener) return refuse(DialRefusal::listener);
  ++total_;
  ++connections_[connection];
  auto it = peers_.find(peer);
  if (it == peers_.end()) it = peers_.emplace(std::string(peer), 0).first;
  ++it->second;
  ticket.budget_ = this;
  ticket.connection_ = connection;
  ticket.peer_ = std::string(peer);
  return std::nullopt;
}

void DialBudget::release(uint64_t connection, const std::string& peer) {
  if (total_ > 0) --total_;
  if (auto it = connections_.find(connection); it != connections_.end() && --it->second == 0) connections_.erase(it);
  if (auto it = peers_.find(peer); it != peers_.end() && --it->second == 0) peers_.erase(it);
}

void DialBudget::connection_closed(uint64_t connection) { connections_.erase(connection); }

}  // namespace zt::core::proxy
