// The inbound dial budget: its three bounds, the heavy-peer rule, release on
// ticket end and on connection close; and a rapidcheck property over random
// interleavings of peers, connections, dials and closes checked against a
// plain model: no bound is ever exceeded, a peer under its fair share is
// never refused while the listener and its own bounds have room, and a lone
// heavy peer never holds more than the near-full mark.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <deque>
#include <string>
#include <vector>

#include "core/proxy/dial_budget.h"

namespace zt::core::proxy {
namespace {

DialLimits small() {
  DialLimits l;
  l.per_connection = 4;
  l.per_peer = 6;
  l.per_listener = 16;
  l.near_full_percent = 75;  // 12
  return l;
}

TEST(DialBudget, DefaultsAreNamed) {
  DialLimits l;
  EXPECT_EQ(l.per_connection, 128u);
  EXPECT_EQ(l.per_peer, 256u);
  EXPECT_EQ(l.per_listener, 1024u);
  DialBudget b;
  EXPECT_EQ(b.near_full_mark(), 768u);
  EXPECT_EQ(reason_label(DialRefusal::connection), "connection_dials_in_flight");
  EXPECT_EQ(reason_label(DialRefusal::peer), "peer_dials_in_flight");
  EXPECT_EQ(reason_label(DialRefusal::listener), "dials_in_flight");
  EXPECT_EQ(dial_peer_key("spiffe://td/ns/a/sa/b", "10.0.0.1"), "spiffe://td/ns/a/sa/b");
  EXPECT_EQ(dial_peer_key("", "10.0.0.1"), "address/10.0.0.1");
}

// Listeners sharing a budget (a worker's node listeners and pods): one
// bound over all of them, and their servers' connection ids kept apart.
TEST(DialBudget, SharedByListenersBoundsThemOnceAndKeepsTheirConnectionsApart) {
  DialBudget b(small());
  const uint32_t first = b.add_listener(), second = b.add_listener();
  EXPECT_NE(first, second);
  EXPECT_NE(DialBudget::connection_key(first, 1), DialBudget::connection_key(second, 1));
  std::vector<DialBudget::Ticket> held(20);
  // Connection 1 of each listener has its own per-connection bound (4).
  for (size_t i = 0; i < 4; ++i) EXPECT_FALSE(b.try_acquire(DialBudget::connection_key(first, 1), "p" + std::to_string(i), held[i]));
  for (size_t i = 4; i < 8; ++i) EXPECT_FALSE(b.try_acquire(DialBudget::connection_key(second, 1), "q" + std::to_string(i), held[i]));
  EXPECT_EQ(b.in_flight_of_connection(DialBudget::connection_key(first, 1)), 4u);
  EXPECT_EQ(b.in_flight_of_connection(DialBudget::connection_key(second, 1)), 4u);
  // The listener bound (16) counts both listeners' dials.
  for (size_t i = 8; i < 16; ++i) {
    EXPECT_FALSE(b.try_acquire(DialBudget::connection_key(i % 2 ? first : second, i), "r" + std::to_string(i), held[i]));
  }
  EXPECT_EQ(b.in_flight(), 16u);
  EXPECT_EQ(b.try_acquire(DialBudget::connection_key(second, 99), "s", held[16]), DialRefusal::listener);
  // Closing one listener's connection 1 leaves the other's alone.
  b.connection_closed(DialBudget::connection_key(first, 1));
  EXPECT_EQ(b.in_flight_of_connection(DialBudget::connection_key(second, 1)), 4u);
}

TEST(DialBudget, ConnectionBoundThenPeerBound) {
  DialBudget b(small());
  std::vector<DialBudget::Ticket> held(10);
  for (size_t i = 0; i < 4; ++i) EXPECT_FALSE(b.try_acquire(1, "p", held[i]));
  EXPECT_EQ(b.try_acquire(1, "p", held[4]), DialRefusal::connection);
  EXPECT_FALSE(held[4].held());
  // The same peer on another connection: up to its own bound.
  EXPECT_FALSE(b.try_acquire(2, "p", held[4]));
  EXPECT_FALSE(b.try_acquire(2, "p", held[5]));
  EXPECT_EQ(b.try_acquire(2, "p", held[6]), DialRefusal::peer);
  EXPECT_EQ(b.in_flight_of_peer("p"), 6u);
  EXPECT_EQ(b.refused(DialRefusal::connection), 1u);
  EXPECT_EQ(b.refused(DialRefusal::peer), 1u);
  held[0].release();
  EXPECT_FALSE(b.try_acquire(2, "p", held[6]));  // room again
  held.clear();
  EXPECT_EQ(b.in_flight(), 0u);
  EXPECT_EQ(b.peers(), 0u);
  EXPECT_EQ(b.connections(), 0u);
}

TEST(DialBudget, HeavyPeersAreRefusedFirstWhenNearFull) {
  DialLimits l = small();
  l.per_peer = 16;
  l.per_connection = 16;
  DialBudget b(l);
  std::deque<DialBudget::Ticket> held;
  // One peer alone takes up to the near-full mark (12), then is refused.
  for (int i = 0; i < 12; ++i) EXPECT_FALSE(b.try_acquire(1, "heavy", held.emplace_back()));
  EXPECT_EQ(b.try_acquire(1, "heavy", held.emplace_back()), DialRefusal::peer);
  // Another peer gets in: its share is 12 / 2.
  EXPECT_EQ(b.fair_share("light"), 6u);
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(b.try_acquire(2, "light", held.emplace_back())) << i;
  EXPECT_EQ(b.in_flight(), 16u);
  // Full: a third peer is refused by the listener bound.
  EXPECT_EQ(b.try_acquire(3, "third", held.emplace_back()), DialRefusal::listener);
  EXPECT_EQ(b.try_acquire(1, "heavy", held.emplace_back()), DialRefusal::peer);
}

TEST(DialBudget, AClosedConnectionForgetsItsBoundButNotItsPeers) {
  DialBudget b(small());
  std::vector<DialBudget::Ticket> held(5);
  for (size_t i = 0; i < 4; ++i) EXPECT_FALSE(b.try_acquire(7, "p", held[i]));
  b.connection_closed(7);
  EXPECT_EQ(b.connections(), 0u);
  EXPECT_EQ(b.in_flight_of_peer("p"), 4u);
  EXPECT_FALSE(b.try_acquire(8, "p", held[4]));
  held.clear();  // releases for a forgotten connection are harmless
  EXPECT_EQ(b.in_flight(), 0u);
  EXPECT_EQ(b.peers(), 0u);
}

TEST(DialBudget, TicketsMoveAndReleaseOnce) {
  DialBudget b(small());
  DialBudget::Ticket a;
  ASSERT_FALSE(b.try_acquire(1, "p", a));
  DialBudget::Ticket c(std::move(a));
  EXPECT_FALSE(a.held());
  EXPECT_TRUE(c.held());
  DialBudget::Ticket d;
  d = std::move(c);
  EXPECT_EQ(b.in_flight(), 1u);
  d.release();
  d.release();
  EXPECT_EQ(b.in_flight(), 0u);
}

// --- the property ------------------------------------------------------------

struct Op {
  enum Kind : uint8_t { acquire, release, close } kind = acquire;
  size_t peer = 0, connection = 0, pick = 0;
};

RC_GTEST_PROP(DialBudgetProperty, BoundsHoldAndAPeerUnderItsShareIsNeverRefusedWhileThereIsRoom, ()) {
  DialLimits limits;
  limits.per_connection = *rc::gen::inRange<size_t>(1, 12);
  limits.per_peer = *rc::gen::inRange<size_t>(1, 24);
  limits.per_listener = *rc::gen::inRange<size_t>(1, 40);
  limits.near_full_percent = *rc::gen::inRange<size_t>(1, 101);
  const size_t peers = *rc::gen::inRange<size_t>(1, 6);
  const size_t conns_per_peer = *rc::gen::inRange<size_t>(1, 4);
  const auto ops = *rc::gen::container<std::vector<Op>>(rc::gen::exec([&] {
    Op op;
    op.kind = *rc::gen::weightedElement<Op::Kind>({{6, Op::acquire}, {3, Op::release}, {1, Op::close}});
    op.peer = *rc::gen::inRange<size_t>(0, peers);
    op.connection = *rc::gen::inRange<size_t>(0, conns_per_peer);
    op.pick = *rc::gen::inRange<size_t>(0, 1000);
    return op;
  }));
  DialBudget b(limits);
  const size_t mark = b.near_full_mark();
  // The model: dials held per connection (open ones only) and per peer.
  struct Held {
    DialBudget::Ticket ticket;
    uint64_t connection;
    size_t peer;
  };
  std::deque<Held> held;
  std::vector<size_t> of_peer(peers, 0);
  std::map<uint64_t, size_t> of_conn;
  std::vector<uint64_t> generation(peers * conns_per_peer, 0);  // a closed connection comes back as a new id
  auto conn_id = [&](size_t peer, size_t c) { return uint64_t(peer * conns_per_peer + c) * 1000 + generation[peer * conns_per_peer + c]; };
  auto peer_key = [](size_t p) { return "peer-" + std::to_string(p); };
  for (const Op& op : ops) {
    const uint64_t id = conn_id(op.peer, op.connection);
    if (op.kind == Op::acquire) {
      size_t total = 0, active = 0;
      for (size_t n : of_peer) {
        total += n;
        if (n > 0) ++active;
      }
      if (of_peer[op.peer] == 0) ++active;
      const size_t share = std::max<size_t>(1, mark / active);
      RC_ASSERT(b.fair_share(peer_key(op.peer)) == share);
      const bool room = of_conn[id] < limits.per_connection && of_peer[op.peer] < limits.per_peer &&
                        total < limits.per_listener;
      const bool under_share = of_peer[op.peer] < share;
      Held h{{}, id, op.peer};
      const std::optional<DialRefusal> refused = b.try_acquire(id, peer_key(op.peer), h.ticket);
      if (room && under_share) RC_ASSERT(!refused);
      if (!room) RC_ASSERT(refused.has_value());
      // Near full, only a peer under its share gets in.
      if (!refused && total >= mark) RC_ASSERT(under_share);
      if (refused) {
        RC_ASSERT(!h.ticket.held());
        continue;
      }
      ++of_peer[op.peer];
      ++of_conn[id];
      held.push_back(std::move(h));
    } else if (op.kind == Op::release) {
      if (held.empty()) continue;
      const size_t i = op.pick % held.size();
      Held& h = held[i];
      --of_peer[h.peer];
      if (auto it = of_conn.find(h.connection); it != of_conn.end() && it->second > 0) --it->second;
      h.ticket.release();
      held.erase(held.begin() + std::ptrdiff_t(i));
    } else {
      b.connection_closed(id);
      of_conn.erase(id);
      ++generation[op.peer * conns_per_peer + op.connection];
    }
    // The bounds, every step.
    size_t total = 0;
    for (size_t p = 0; p < peers; ++p) {
      RC_ASSERT(of_peer[p] <= limits.per_peer);
      RC_ASSERT(b.in_flight_of_peer(peer_key(p)) == of_peer[p]);
      total += of_peer[p];
    }
    RC_ASSERT(total <= limits.per_listener);
    RC_ASSERT(b.in_flight() == total);
    for (const auto& [c, n] : of_conn) {
      RC_ASSERT(n <= limits.per_connection);
      RC_ASSERT(b.in_flight_of_connection(c) == n);
    }
  }
  held.clear();
  RC_ASSERT(b.in_flight() == 0u);
  RC_ASSERT(b.peers() == 0u);
}

// One peer, any number of connections, any order: it never holds more
// than the near-full mark, so the rest of the listener stays for others.
RC_GTEST_PROP(DialBudgetProperty, ALoneHeavyPeerLeavesTheRestOfTheListener, ()) {
  DialLimits limits;
  limits.per_connection = *rc::gen::inRange<size_t>(1, 50);
  limits.per_peer = *rc::gen::inRange<size_t>(1, 200);
  limits.per_listener = *rc::gen::inRange<size_t>(1, 100);
  limits.near_full_percent = *rc::gen::inRange<size_t>(1, 101);
  DialBudget b(limits);
  const auto steps = *rc::gen::container<std::vector<std::pair<bool, size_t>>>(
      rc::gen::pair(rc::gen::weightedElement<bool>({{3, true}, {1, false}}), rc::gen::inRange<size_t>(0, 20)));
  std::deque<DialBudget::Ticket> held;
  size_t most = 0;
  for (auto [acquire, k] : steps) {
    if (acquire) {
      DialBudget::Ticket t;
      if (!b.try_acquire(k, "attacker", t)) held.push_back(std::move(t));
    } else if (!held.empty()) {
      held.erase(held.begin() + std::ptrdiff_t(k % held.size()));
    }
    most = std::max(most, b.in_flight());
  }
  RC_ASSERT(most <= std::min(limits.per_peer, b.near_full_mark()));
  // Whatever it holds, a newcomer gets in while the listener has room.
  DialBudget::Ticket t;
  if (b.in_flight() < limits.per_listener) RC_ASSERT(!b.try_acquire(999, "newcomer", t));
}

}  // namespace
}  // namespace zt::core::proxy
