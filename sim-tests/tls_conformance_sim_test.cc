// The TLS conformance suite on io/sim, IPv4 and IPv6.
#include "testing/sim_harness.h"
#include "tls/tls_conformance.h"

namespace zt::tls {

using SimHarnesses = ::testing::Types<testing::SimHarness<IpAddr::Family::v4>, testing::SimHarness<IpAddr::Family::v6>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Sim, TlsConformance, SimHarnesses);

}  // namespace zt::tls
