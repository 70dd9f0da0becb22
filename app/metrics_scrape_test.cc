// The scrape never blocks the control loop and never returns a registry
// that looks reset: a source that does not answer in time contributes its
// previous copy. Run on the simulator: each source's "thread" is a host's
// loop, and the control loop keeps running timers while a scrape waits.
#include "app/metrics_scrape.h"

#include <gtest/gtest.h>

#include "io/sim/world.h"
#include "testing/mesh_fixtures.h"

namespace zt::app {
namespace {

// A worker stand-in: its registry lives on `loop`; a stuck one never
// answers (its loop busy, or ended).
class FakeSource final : public MetricsSource {
 public:
  FakeSource(Loop& loop, uint64_t connections) : loop_(loop) {
    registry.counter("test_connections_total", {}).inc(connections);
  }
  void copy_metrics(std::function<void(core::metrics::Registry)> reply) override {
    ++asked;
    if (stuck && started) return;
    if (!started) return reply(registry);
    loop_.post([this, reply = std::move(reply)] { reply(registry); });
  }
  core::metrics::Registry registry;
  bool started = false, stuck = false;
  int asked = 0;

 private:
  Loop& loop_;
};

TEST(MetricsScrape, AStuckSourceCountsWithItsLastCopyAndNothingBlocks) {
  io::sim::World world(3);
  io::sim::Host& control = world.add_host("control", {testing::ip("10.0.0.1")});
  io::sim::Host& worker = world.add_host("worker", {testing::ip("10.0.0.2")});
  core::metrics::Registry control_registry;
  control_registry.counter("test_control_total", {}).inc(1);
  FakeSource a(worker.env().loop, 2), b(worker.env().loop, 3);
  MetricsScrape scrape(control.env(), {&a, &b}, control_registry, std::chrono::seconds(1));
  a.started = b.started = true;

  Scope scope;
  auto render = [&](std::string& out, bool& done) {
    scope.spawn([](MetricsScrape& s, std::string& out, bool& done) -> Task<void> {
      out = co_await s.render();
      done = true;
    }(scrape, out, done));
  };
  std::string text;
  bool done = false;
  render(text, done);
  world.run_until([&] { return done; }, std::chrono::seconds(5));
  ASSERT_TRUE(done);
  EXPECT_NE(text.find("test_connections_total 5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("test_control_total 1\n"), std::string::npos) << text;
  EXPECT_EQ(scrape.stale_scrapes(), 0u);

  // b gets stuck; a counts on. The scrape waits its second, then answers
  // with b's last copy, not with b missing; meanwhile the control loop runs.
  b.stuck = true;
  b.registry.counter("test_connections_total", {}).inc(100);  // never seen
  a.registry.counter("test_connections_total", {}).inc(10);
  int ticks = 0;
  std::function<void()> tick = [&] {
    ++ticks;
    control.env().loop.run_after(std::chrono::milliseconds(100), tick);
  };
  control.env().loop.post(tick);
  done = false;
  const MonoTime start = world.now();
  render(text, done);
  world.run_until([&] { return done; }, std::chrono::seconds(5));
  ASSERT_TRUE(done);
  EXPECT_EQ(world.now() - start, std::chrono::seconds(1));
  EXPECT_GE(ticks, 9) << "the control loop ran while the scrape waited";
  EXPECT_NE(text.find("test_connections_total 15\n"), std::string::npos) << text;  // 12 from a, 3 from b's last copy
  EXPECT_EQ(scrape.stale_scrapes(), 1u);
}

}  // namespace
}  // namespace zt::app
