#include "core/copy.h"

#include <gtest/gtest.h>

namespace zt::core {
namespace {

TEST(CopyBuffer, StartsSmallAndGrowsWithTraffic) {
  CopyBuffer b;
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_min);
  b.note_copied(copy_grow_mid_after_bytes - 1);
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_min);
  b.note_copied(copy_grow_mid_after_bytes);
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_mid);
  b.note_copied(copy_grow_max_after_bytes);
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_max);
  b.note_copied(copy_grow_max_after_bytes * 100);
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_max);  // bounded
}

TEST(CopyBuffer, LimitNeverGoesBelowOneByte) {
  CopyBuffer b;
  b.limit(0);
  EXPECT_EQ(b.capacity(), 1u);
}

}  // namespace
}  // namespace zt::core
