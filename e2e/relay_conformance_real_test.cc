// The relay conformance suite on real loopback sockets, 127.0.0.1 and ::1.
#include "testing/relay_conformance.h"
#include "testing/real_harness.h"

namespace zt::e2e {

using namespace zt::testing;

using RealHarnesses =
    ::testing::Types<testing::RealHarness<IpAddr::Family::v4>, testing::RealHarness<IpAddr::Family::v6>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Real, RelayConformance, RealHarnesses);

}  // namespace zt::e2e
