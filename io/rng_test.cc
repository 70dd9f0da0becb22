#include "io/rng.h"

#include <gtest/gtest.h>

namespace zt {
namespace {

TEST(Rng, SameSeedSameSequence) {
  Rng a(42), b(42);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next(), b.next());
}

TEST(Rng, KnownFirstValuesArePinned) {
  // The generator is ours, so a seed means the same thing everywhere; a change
  // here silently changes every recorded simulation seed.
  Rng r(1);
  EXPECT_EQ(r.next(), 0xb3f2af6d0fc710c5ull);
}

TEST(Rng, StreamsDependOnNameNotOnDrawsSoFar) {
  Rng root(7);
  Rng before = root.stream("lb");
  for (int i = 0; i < 10; ++i) root.next();
  Rng after = root.stream("lb");
  EXPECT_EQ(before.next(), after.next());
  EXPECT_NE(root.stream("lb").next(), root.stream("rbac").next());
}

TEST(Rng, BelowStaysInRangeAndCoversIt) {
  Rng r(3);
  int seen[6] = {};
  for (int i = 0; i < 6000; ++i) {
    uint64_t v = r.below(6);
    ASSERT_LT(v, 6u);
    ++seen[v];
  }
  for (int count : seen) EXPECT_GT(count, 800);  // about 1000 each
}

TEST(Rng, ChanceExtremes) {
  Rng r(5);
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(r.chance(0));
    EXPECT_TRUE(r.chance(1));
  }
}

}  // namespace
}  // namespace zt
