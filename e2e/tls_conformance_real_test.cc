// The TLS conformance suite on real loopback sockets, 127.0.0.1 and ::1.
#include "testing/real_harness.h"
#include "testing/tls_conformance.h"

namespace zt::e2e {

using namespace zt::testing;

using RealHarnesses =
    ::testing::Types<testing::RealHarness<IpAddr::Family::v4>, testing::RealHarness<IpAddr::Family::v6>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Real, TlsConformance, RealHarnesses);

}  // namespace zt::e2e
