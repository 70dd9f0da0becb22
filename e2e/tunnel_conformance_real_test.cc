// The HTTP/2 tunnel conformance suite on real loopback sockets.
#include "testing/tunnel_conformance.h"
#include "testing/real_harness.h"

namespace zt::e2e {

using namespace zt::testing;

using RealHarnesses =
    ::testing::Types<testing::RealHarness<IpAddr::Family::v4>, testing::RealHarness<IpAddr::Family::v6>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Real, TunnelConformance, RealHarnesses);

}  // namespace zt::e2e
