// HTTP/2 tunnels on io/sim: the conformance suite (IPv4 and IPv6), and what
// only the simulator can do: a peer that goes silent.
#include <gtest/gtest.h>

#include "h2/tunnel_conformance.h"
#include "testing/sim_harness.h"

namespace zt::h2 {

using SimHarnesses = ::testing::Types<testing::SimHarness<IpAddr::Family::v4>, testing::SimHarness<IpAddr::Family::v6>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Sim, TunnelConformance, SimHarnesses);

namespace {

class H2Sim : public TunnelConformance<testing::SimHarness<IpAddr::Family::v4>> {};

TEST_F(H2Sim, ABlackHoledPeerIsDroppedAfterThePingTimeout) {
  H2Pair p;
  ASSERT_TRUE(h.run(connect_h2(h, p), kLimit));
  auto [c, s] = tunnel(p);
  ASSERT_TRUE(c && s);
  h.world().partition(h.client_host().id(), h.server_host().id());
  testing::ReadAll got;
  const MonoTime start = h.world().now();
  ASSERT_TRUE(h.run(receive(*c, got), kLimit));
  EXPECT_TRUE(p.client->dead());
  EXPECT_EQ(got.end.code(), Errc::connection_reset);
  const Duration took = h.world().now() - start;
  EXPECT_GE(took, std::chrono::seconds(20));  // idle 10 s, then 20 s without an answer
  EXPECT_LE(took, std::chrono::seconds(41));
  EXPECT_FALSE(p.client->accepting_streams());
}

}  // namespace
}  // namespace zt::h2
