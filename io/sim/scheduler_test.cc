#include "io/sim/scheduler.h"

#include <gtest/gtest.h>

#include <vector>

#include "io/sim/world.h"

namespace zt::io::sim {
namespace {

TEST(Scheduler, OrdersByTimeThenBySchedulingOrder) {
  Trace trace;
  Scheduler s(trace);
  std::vector<int> order;
  s.after(2ms, kNetwork, "c", [&] { order.push_back(3); });
  s.after(1ms, kNetwork, "a", [&] { order.push_back(1); });
  s.after(1ms, kNetwork, "b", [&] { order.push_back(2); });
  s.after(0ms, kNetwork, "z", [&] { order.push_back(0); });
  while (s.step()) {}
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
}

TEST(Scheduler, VirtualTimeJumpsToTheNextEvent) {
  Trace trace;
  Scheduler s(trace);
  bool fired = false;
  s.after(std::chrono::hours(24), kNetwork, "day", [&] { fired = true; });
  ASSERT_TRUE(s.step());
  EXPECT_TRUE(fired);
  EXPECT_EQ(s.now().time_since_epoch(), std::chrono::hours(24));
}

TEST(Scheduler, CancelledEventsNeverRun) {
  Trace trace;
  Scheduler s(trace);
  bool fired = false;
  auto id = s.after(1ms, kNetwork, "x", [&] { fired = true; });
  EXPECT_TRUE(s.cancel(id));
  EXPECT_FALSE(s.cancel(id));
  s.run_until(s.now() + 1s);
  EXPECT_FALSE(fired);
  auto ran = s.after(1ms, kNetwork, "y", [] {});
  s.run_until(s.now() + 1s);
  EXPECT_FALSE(s.cancel(ran));  // already ran
}

TEST(Scheduler, EventsScheduledFromEventsRunInOrder) {
  Trace trace;
  Scheduler s(trace);
  std::vector<int> order;
  s.after(1ms, kNetwork, "outer", [&] {
    order.push_back(1);
    s.after(0ms, kNetwork, "inner", [&] { order.push_back(3); });
  });
  s.after(1ms, kNetwork, "sibling", [&] { order.push_back(2); });
  s.run_until(s.now() + 1s);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(Scheduler, DropOwnerRemovesOnlyThatOwnersEvents) {
  Trace trace;
  Scheduler s(trace);
  int fired = 0;
  s.after(1ms, 1, "h1", [&] { fired += 1; });
  s.after(1ms, 2, "h2", [&] { fired += 10; });
  EXPECT_EQ(s.pending_for(1), 1u);
  EXPECT_EQ(s.drop_owner(1), 1u);
  s.run_until(s.now() + 1s);
  EXPECT_EQ(fired, 10);
}

TEST(Scheduler, RunUntilStopsAtThePredicateOrTheLimit) {
  Trace trace;
  Scheduler s(trace);
  int count = 0;
  for (int i = 1; i <= 10; ++i) s.after(std::chrono::seconds(i), kNetwork, "tick", [&] { ++count; });
  EXPECT_TRUE(s.run_until([&] { return count == 3; }, s.now() + 1h));
  EXPECT_EQ(s.now().time_since_epoch(), 3s);
  EXPECT_FALSE(s.run_until([&] { return count == 100; }, s.now() + 4s));
  EXPECT_EQ(count, 7);
  EXPECT_EQ(s.now().time_since_epoch(), 7s);
}

uint64_t trace_of(int variant) {
  Trace trace;
  Scheduler s(trace);
  s.after(1ms, kNetwork, "a", [] {});
  s.after(variant == 0 ? 2ms : 3ms, kNetwork, "b", [] {});
  while (s.step()) {}
  return trace.hash();
}

TEST(Trace, SameRunSameHashDifferentRunDifferentHash) {
  EXPECT_EQ(trace_of(0), trace_of(0));
  EXPECT_NE(trace_of(0), trace_of(1));
}

TEST(SimLoop, PostNeverRunsInline) {
  World world(1);
  Host& h = world.add_host("h", {IpAddr::v4(10, 0, 0, 1)});
  bool ran = false;
  h.env().loop.post([&] { ran = true; });
  EXPECT_FALSE(ran);
  world.run_for(1ms);
  EXPECT_TRUE(ran);
}

TEST(SimLoop, TimersFireAfterTheirDelayAndCancelWorks) {
  World world(1);
  Host& h = world.add_host("h", {IpAddr::v4(10, 0, 0, 1)});
  MonoTime fired_at{};
  MonoTime start = h.env().clock.now();
  h.env().loop.run_after(250ms, [&] { fired_at = h.env().clock.now(); });
  bool cancelled_ran = false;
  TimerId t = h.env().loop.run_after(100ms, [&] { cancelled_ran = true; });
  EXPECT_TRUE(h.env().loop.cancel(t));
  world.run_for(1s);
  EXPECT_EQ(fired_at - start, 250ms);
  EXPECT_FALSE(cancelled_ran);
  EXPECT_EQ(world.scheduler().pending_for(h.id()), 0u);
}

TEST(SimClock, WallClockJumpsBothWaysMonotonicDoesNot) {
  World world(1);
  Host& h = world.add_host("h", {IpAddr::v4(10, 0, 0, 1)});
  Host& other = world.add_host("o", {IpAddr::v4(10, 0, 0, 2)});
  const WallTime wall0 = h.env().clock.wall_now();
  const MonoTime mono0 = h.env().clock.now();
  world.jump_wall(h.id(), std::chrono::hours(-48));
  EXPECT_EQ(h.env().clock.wall_now() - wall0, std::chrono::hours(-48));
  EXPECT_EQ(other.env().clock.wall_now(), wall0);  // skew is per host
  world.jump_wall(h.id(), std::chrono::hours(72));
  EXPECT_EQ(h.env().clock.wall_now() - wall0, std::chrono::hours(24));
  EXPECT_EQ(h.env().clock.now(), mono0);
}

}  // namespace
}  // namespace zt::io::sim
