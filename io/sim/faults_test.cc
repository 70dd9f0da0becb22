#include <gtest/gtest.h>

#include "io/sim/world.h"

namespace zt::io::sim {
namespace {

TEST(Buggify, InertOutsideSimulation) {
  NoFaults none;
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(none.fire("anything"));
}

std::vector<bool> firings(uint64_t seed, double enable) {
  WorldOptions opts;
  opts.faults.buggify_enable = enable;
  World world(seed, opts);
  std::vector<bool> out;
  for (int i = 0; i < 200; ++i) out.push_back(world.fault_points().fire(i % 2 ? "p.one" : "p.two"));
  return out;
}

TEST(Buggify, FiringsReplayFromTheSeed) {
  EXPECT_EQ(firings(99, 1.0), firings(99, 1.0));
  EXPECT_NE(firings(99, 1.0), firings(100, 1.0));
}

TEST(Buggify, OffUnlessSwitchedOnForTheSeed) {
  for (bool f : firings(99, 0.0)) EXPECT_FALSE(f);
  auto on = firings(99, 1.0);
  EXPECT_GT(std::count(on.begin(), on.end(), true), 20);  // ~25% of 200
}

TEST(Buggify, RecordsWhichPointsFired) {
  WorldOptions opts;
  opts.faults.buggify_enable = 1.0;
  opts.faults.buggify_fire = 1.0;
  World world(1, opts);
  EXPECT_TRUE(world.fault_points().fire("relay.tiny_buffer"));
  EXPECT_EQ(world.fault_points().points().at("relay.tiny_buffer").second, 1u);
}

}  // namespace
}  // namespace zt::io::sim
