// The admin endpoints' conformance suite on real loopback sockets.
#include "testing/admin_conformance.h"
#include "testing/real_harness.h"

namespace zt::core::admin {

using namespace zt::testing;

using RealHarnesses =
    ::testing::Types<testing::RealHarness<IpAddr::Family::v4>, testing::RealHarness<IpAddr::Family::v6>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Real, AdminConformance, RealHarnesses);

}  // namespace zt::core::admin
