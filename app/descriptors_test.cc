// The data path's share of descriptors: its size, and acceptors that share
// it refusing (counted) once it is spent, on the simulator.
#include "app/descriptors.h"

#include <gtest/gtest.h>

#include "io/async.h"
#include "testing/sim_harness.h"

namespace zt::app {
namespace {

TEST(DescriptorBudget, LeavesTheReserveAndTheDialsOut) {
  // 20,000 descriptors, 2 workers with 1,024 dials each, 256 kept back:
  // two per connection for the rest.
  EXPECT_EQ(DescriptorBudget::connections_for(20000, 2, 1024), (20000u - 256u - 2048u) / 2);
  EXPECT_EQ(DescriptorBudget::connections_for(1024, 2, 1024), 64u) << "a floor for small limits";
  DescriptorBudget b(2);
  EXPECT_TRUE(b.try_acquire());
  EXPECT_TRUE(b.try_acquire());
  EXPECT_FALSE(b.try_acquire());
  EXPECT_EQ(b.refused(), 1u);
  b.release();
  EXPECT_TRUE(b.try_acquire());
}

// Two listeners (two workers' ports) draw from one budget of 2: the third
// connection is reset at once and counted; once one ends, a new one is served.
TEST(DescriptorBudget, AcceptorsSharingItRefuseOnceItIsSpent) {
  testing::SimHarness<IpAddr::Family::v4> h;
  DescriptorBudget budget(2);
  std::vector<std::unique_ptr<Acceptor>> acceptors;
  for (uint16_t port : {7001, 7002}) {
    auto l = h.server().net.listen(Endpoint{h.server_ip(), port}, {});
    ASSERT_TRUE(l.ok());
    acceptors.push_back(std::make_unique<Acceptor>(h.server(), std::move(*l), [](StreamPtr s) -> Task<void> {
      uint8_t b[1];
      StreamPtr mine = std::move(s);
      (void)co_await io::read(*mine, b);  // held until the client closes
    }));
    acceptors.back()->set_budget(&budget);
    acceptors.back()->start();
  }
  auto dial = [&](uint16_t port) -> StreamPtr {
    std::optional<Result<StreamPtr>> r;
    Scope s;
    s.spawn([](Env& env, Endpoint to, std::optional<Result<StreamPtr>>& r) -> Task<void> {
      r.emplace(co_await io::connect(env, to, {}, std::chrono::seconds(5)));
    }(h.client(), Endpoint{h.server_ip(), port}, r));
    h.world().run_until([&] { return r.has_value(); }, std::chrono::seconds(5));
    h.world().run_for(std::chrono::milliseconds(10));
    return r && *r ? std::move(**r) : nullptr;
  };
  StreamPtr a = dial(7001), b = dial(7002), c = dial(7001);
  ASSERT_TRUE(a && b && c);
  // The third was reset by the server: its read fails.
  std::optional<Result<size_t>> got;
  uint8_t buf[1];
  c->read(buf, [&got](Result<size_t> n) { got.emplace(n); });
  h.world().run_until([&] { return got.has_value(); }, std::chrono::seconds(2));
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(got->ok() && **got > 0);
  EXPECT_EQ(acceptors[0]->counters().refused_budget, 1u);
  EXPECT_EQ(budget.refused(), 1u);
  a->close();
  h.world().run_for(std::chrono::milliseconds(50));
  StreamPtr d = dial(7002);
  ASSERT_TRUE(d);
  h.world().run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(acceptors[1]->counters().refused_budget, 0u) << "a unit came back when a connection ended";
  EXPECT_EQ(acceptors[1]->serving(), 2u);
  b->close();
  d->close();
  c.reset();
  h.world().run_for(std::chrono::milliseconds(50));
  acceptors.clear();
}

}  // namespace
}  // namespace zt::app
