#include <gtest/gtest.h>

#include "tls/context.h"

namespace zt::tls {
namespace {

TEST(Fips, DefaultBuildIsNotFipsAndSaysSo) {
  if (fips_build()) GTEST_SKIP() << "a FIPS build";
  EXPECT_FALSE(fips_mode());  // Debian's BoringSSL is not the validated module
  EXPECT_TRUE(check_fips_build());
}

TEST(Fips, AFipsBuildRefusesToRunWithoutFipsMode) {
  if (!fips_build()) GTEST_SKIP() << "not a FIPS build";
  EXPECT_EQ(check_fips_build().ok(), fips_mode());
}

}  // namespace
}  // namespace zt::tls
