// The HTTP/2 tunnel conformance suite on real loopback sockets.
#include "h2/tunnel_conformance.h"
#include "testing/real_harness.h"

namespace zt::h2 {

using RealHarnesses =
    ::testing::Types<testing::RealHarness<IpAddr::Family::v4>, testing::RealHarness<IpAddr::Family::v6>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Real, TunnelConformance, RealHarnesses);

}  // namespace zt::h2
