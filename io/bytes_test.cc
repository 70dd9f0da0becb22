#include "io/bytes.h"

#include <gtest/gtest.h>

namespace zt {
namespace {

TEST(Recycle, KeepsSmallOrWellUsedBuffersAndFreesABurstsLeftover) {
  int small = 0;
  ByteVector v(1000);
  recycle(v, small, 4096);  // under the keep size: kept
  EXPECT_TRUE(v.empty());
  EXPECT_GE(v.capacity(), 1000u);

  v.resize(100000);
  recycle(v, small, 4096);  // a full batch: kept for the next one
  EXPECT_GE(v.capacity(), 100000u);

  for (int i = 0; i < 7; ++i) {  // small batches in a big buffer...
    v.resize(100);
    recycle(v, small, 4096);
    EXPECT_GE(v.capacity(), 100000u);
  }
  v.resize(50000);  // ...broken by a large one
  recycle(v, small, 4096);
  for (int i = 0; i < 7; ++i) {
    v.resize(100);
    recycle(v, small, 4096);
  }
  EXPECT_GE(v.capacity(), 100000u);
  v.resize(100);  // the eighth in a row: the burst is over
  recycle(v, small, 4096);
  EXPECT_EQ(v.capacity(), 0u);
}

TEST(ByteVector, ResizeKeepsExistingBytes) {
  ByteVector v{1, 2, 3};
  v.resize(1000);
  EXPECT_EQ(v[0], 1);
  EXPECT_EQ(v[2], 3);
}

}  // namespace
}  // namespace zt
