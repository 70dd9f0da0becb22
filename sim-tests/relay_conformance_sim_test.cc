// The relay conformance suite on io/sim, IPv4 and IPv6.
#include "testing/relay_conformance.h"
#include "testing/sim_harness.h"

namespace zt::sim_tests {

using namespace zt::testing;

using SimHarnesses = ::testing::Types<testing::SimHarness<IpAddr::Family::v4>, testing::SimHarness<IpAddr::Family::v6>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Sim, RelayConformance, SimHarnesses);

}  // namespace zt::sim_tests
