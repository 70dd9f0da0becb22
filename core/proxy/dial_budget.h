// Dials to local workloads in flight on one inbound HBONE listener, bounded
// three ways so that one peer cannot starve the others (HTTP/2 rapid reset,
// CVE-2023-44487: a peer opens streams faster than our dials end):
//
//   per HBONE connection  DialLimits::per_connection  (128)
//   per peer              DialLimits::per_peer        (256; the peer is its
//                         verified identity, else its address)
//   per listener          DialLimits::per_listener    (1024)
//
// and a heavy-peer rule: once the listener holds near_full_percent of its
// bound (75%), a peer already holding its fair share (that mark divided by
// the peers with dials in flight, itself included) is refused first. So a
// peer with few dials in flight still gets through while the listener has
// room, and a peer that fills the listener is the one refused.
//
//   DialBudget budget(limits);
//   DialBudget::Ticket t;
//   if (auto refused = budget.try_acquire(conn_id, peer_key, t)) return answer_503(*refused);
//   ... dial ...; t.release();   // or let it go out of scope
//   budget.connection_closed(conn_id);  // when the HBONE connection ends
//
// One budget may be shared by several listeners of a loop (a worker's
// node-level listeners and the listeners of every pod it runs), so that
// the descriptors a worker's dials may hold are bounded once, not once per
// listener: each listener keys its connections with `connection_key`.
//
// Single-threaded like the rest of core; ordered maps only, so refusals
// depend on nothing but the sequence of calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace zt::core::proxy {

struct DialLimits {
  size_t per_connection = 128;  // dials one HBONE connection may have in flight
  size_t per_peer = 256;        // dials one peer may have in flight, over all its connections
  size_t per_listener = 1024;   // dials in flight on the listeners sharing the budget (in the binary: a worker's)
  // From this share of per_listener on, a peer at or above its fair share is
  // refused (the rest is kept for peers below theirs).
  size_t near_full_percent = 75;
};

// Which bound refused a dial; each is a reason label of
// ztunnel_hbone_requests_refused_total.
enum class DialRefusal : uint8_t { connection, peer, listener };
std::string_view reason_label(DialRefusal r);  // connection_dials_in_flight, peer_dials_in_flight, dials_in_flight

// The peer a request counts against: its verified identity (SPIFFE id),
// else its address.
std::string dial_peer_key(std::string_view identity, std::string_view address);

class DialBudget {
 public:
  explicit DialBudget(DialLimits limits = {});
  DialBudget(const DialBudget&) = delete;
  DialBudget& operator=(const DialBudget&) = delete;

  // One dial counted against the budget until released (or destroyed).
  // Must not outlive the budget.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept;
    Ticket& operator=(Ticket&& other) noexcept;
    Ticket(const Ticket&) = delete;
    ~Ticket() { release(); }
    void release();
    bool held() const { return budget_ != nullptr; }

   private:
    friend class DialBudget;
    DialBudget* budget_ = nullptr;
    uint64_t connection_ = 0;
    std::string peer_;
  };

  // A listener sharing this budget: its number, for connection_key.
  uint32_t add_listener() { return ++listeners_; }
  // A connection id unique across the listeners sharing the budget, from
  // the listener's number and its server's own connection id.
  static uint64_t connection_key(uint32_t listener, uint64_t connection) {
    return (uint64_t(listener) << 40) | (connection & ((uint64_t(1) << 40) - 1));
  }

  // Counts one dial for `connection` of `peer` into `ticket` (which must be
  // empty), or says which bound refuses it.
  std::optional<DialRefusal> try_acquire(uint64_t connection, std::string_view peer, Ticket& ticket);
  // The HBONE connection ended: its own bound is forgotten (a dial of it
  // still in flight goes on counting for its peer and the listener).
  void connection_closed(uint64_t connection);

  // What a peer holding no dials may hold now before the heavy-peer rule
  // refuses it, once the listener is near full.
  size_t fair_share(std::string_view peer) const;
  size_t near_full_mark() const { return near_full_; }
  const DialLimits& limits() const { return limits_; }
  size_t in_flight() const { return total_; }
  size_t in_flight_of_peer(std::string_view peer) const;
  size_t in_flight_of_connection(uint64_t connection) const;
  size_t peers() const { return peers_.size(); }
  size_t connections() const { return connections_.size(); }
  // Refusals so far, by bound.
  uint64_t refused(DialRefusal r) const { return refused_[static_cast<size_t>(r)]; }

 private:
  void release(uint64_t connection, const std::string& peer);

  DialLimits limits_;
  size_t near_full_;
  size_t total_ = 0;
  uint32_t listeners_ = 0;
  std::map<uint64_t, size_t> connections_;               // only those with dials in flight
  std::map<std::string, size_t, std::less<>> peers_;     // only those with dials in flight
  uint64_t refused_[3] = {0, 0, 0};
};

}  // namespace zt::core::proxy
