#include "tls/identity.h"

#include <gtest/gtest.h>

namespace zt::tls {
namespace {

TEST(Identity, ParsesAndFormats) {
  auto id = Identity::parse("spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
  ASSERT_TRUE(id) << id.error().message();
  EXPECT_EQ(id->trust_domain(), "cluster.local");
  EXPECT_EQ(id->ns(), "default");
  EXPECT_EQ(id->service_account(), "bookinfo-productpage");
  EXPECT_EQ(id->to_string(), "spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
  EXPECT_EQ(id->without_scheme(), "cluster.local/ns/default/sa/bookinfo-productpage");
}

TEST(Identity, RejectsMalformedWithAReason) {
  for (const char* bad : {"", "spiffe://", "http://cluster.local/ns/a/sa/b", "spiffe://cluster.local",
                          "spiffe://cluster.local/", "spiffe://cluster.local/ns/a", "spiffe://cluster.local/ns/a/sa",
                          "spiffe://cluster.local/ns/a/sa/", "spiffe://cluster.local/ns//sa/b",
                          "spiffe://cluster.local/ns/a/sa/b/extra", "spiffe://cluster.local/sa/a/ns/b",
                          "spiffe://Cluster.Local/ns/a/sa/b", "spiffe://cluster local/ns/a/sa/b",
                          "spiffe://cluster.local/ns/a b/sa/c", "spiffe://cluster.local/ns/../sa/c"}) {
    auto id = Identity::parse(bad);
    EXPECT_FALSE(id) << bad;
    if (!id) {
      EXPECT_EQ(id.code(), Errc::invalid_argument);
      EXPECT_NE(id.error().detail.find("malformed SPIFFE identity"), std::string::npos);
    }
  }
}

TEST(Identity, RejectsOversizedInput) {
  std::string huge = "spiffe://cluster.local/ns/" + std::string(5000, 'a') + "/sa/b";
  EXPECT_FALSE(Identity::parse(huge));
}

TEST(Identity, ComparesByValue) {
  EXPECT_EQ(*Identity::parse("spiffe://td/ns/a/sa/b"), Identity("td", "a", "b"));
  EXPECT_NE(*Identity::parse("spiffe://td/ns/a/sa/b"), Identity("td", "a", "c"));
}

}  // namespace
}  // namespace zt::tls
