// The log from core code, on the simulator: events of the pool, outbound
// routing, inbound authorization and the access log reach the world's sink
// through Env, stamped with simulated time and the host's name, filtered by
// target as RUST_LOG filters them, and byte for byte the same when a seed
// runs again.
#include <gtest/gtest.h>

#include "sim-tests/mesh_fixture.h"

namespace zt::sim_tests {
namespace {

const IpAddr kA = IpAddr::v4(10, 0, 1, 1), kB = IpAddr::v4(10, 0, 2, 1);

std::vector<std::string> run_logged(uint64_t seed, std::string_view filter) {
  std::vector<std::string> lines;
  io::sim::WorldOptions o;
  o.log_filter = *LogFilter::parse(filter);
  o.log_sink = [&lines](std::string_view line) { lines.emplace_back(line); };
  MeshFixture m(seed, o);
  MeshNode& a = m.add_node("node-a", kA, "client");
  m.add_node("node-b", kB, "server");
  m.start();
  for (int i = 0; i < 3; ++i) {
    ClientConn& c = m.open(a, Endpoint{kB, MeshFixture::kAppPort}, 100);
    EXPECT_TRUE(m.world.run_until([&] { return c.done; }, std::chrono::seconds(30)));
    EXPECT_TRUE(c.intact);
  }
  m.world.run_for(std::chrono::seconds(1));
  return lines;
}

size_t count(const std::vector<std::string>& lines, std::string_view what) {
  size_t n = 0;
  for (const auto& l : lines) n += l.find(what) != std::string::npos;
  return n;
}

TEST(SimLogging, CoreEventsCarrySimulatedTimeAndReplayExactly) {
  const auto lines = run_logged(11, "debug");
  ASSERT_FALSE(lines.empty());
  // Upstream's plain format: time, level, target, message, then fields; the
  // simulator adds the host.
  EXPECT_EQ(lines.front().find("2026-01-01T00:00:"), 0u) << lines.front();
  EXPECT_EQ(count(lines, "\tdebug\thbone::pool\topening connection\thost=\"node-a\""), 1u);
  EXPECT_EQ(count(lines, "\tdebug\thbone::pool\treusing connection\thost=\"node-a\""), 2u);
  EXPECT_EQ(count(lines, "\tdebug\tproxy::outbound\trouted\thost=\"node-a\""), 3u);
  EXPECT_EQ(count(lines, "\tdebug\tproxy::inbound\tauthorization\thost=\"node-b\""), 3u);
  EXPECT_EQ(count(lines, "\tinfo\taccess\tconnection complete\thost=\"node-a\""), 3u);
  EXPECT_EQ(count(lines, "\tinfo\taccess\tconnection complete\thost=\"node-b\""), 3u);
  // The same seed logs the same bytes.
  EXPECT_EQ(run_logged(11, "debug"), lines);
}

TEST(SimLogging, TargetsAreFilteredAsRustLogFiltersThem) {
  const auto lines = run_logged(11, "warn,hbone=debug,access=off");
  EXPECT_GT(count(lines, "\thbone::pool\t"), 0u);
  EXPECT_EQ(count(lines, "\tproxy::outbound\t"), 0u);
  EXPECT_EQ(count(lines, "\taccess\t"), 0u);
  EXPECT_TRUE(run_logged(11, "off").empty());
}

}  // namespace
}  // namespace zt::sim_tests
