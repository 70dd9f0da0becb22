#include "core/copy.h"

#include <gtest/gtest.h>

namespace zt::core {
namespace {

TEST(CopyBuffer, StartsSmallAndGrowsOnlyWhenReadsFillItPastTheThreshold) {
  CopyBuffer b;
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_min);
  b.note_read(copy_buffer_bytes_min, copy_grow_after_bytes - 1);  // full, but too early
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_min);
  b.note_read(copy_buffer_bytes_min / 2, copy_grow_after_bytes);  // late enough, not full
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_min);
  uint64_t total = copy_grow_after_bytes;
  size_t reads = 0;
  while (b.capacity() < copy_buffer_bytes_max) {
    total += b.capacity();
    b.note_read(b.capacity(), total);
    ++reads;
  }
  EXPECT_EQ(reads, 8u);  // 1 KiB doubled eight times
  b.note_read(b.capacity(), total * 100);
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_max);  // bounded
}

TEST(CopyBuffer, ShrinksWhenTheConnectionGoesQuiet) {
  CopyBuffer b;
  uint64_t total = copy_grow_after_bytes;
  while (b.capacity() < copy_buffer_bytes_max) b.note_read(b.capacity(), total += b.capacity());
  // Reads of at least an eighth keep the size, and break a run of small ones.
  for (int i = 0; i < 7; ++i) b.note_read(10, total);
  b.note_read(copy_buffer_bytes_max / 8, total);
  for (int i = 0; i < 7; ++i) b.note_read(10, total);
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_max);
  b.note_read(10, total);  // the eighth small read in a row
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_max / 2);
  for (int i = 0; i < 8 * 20; ++i) b.note_read(10, total);
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_min);  // never below the minimum
}

TEST(CopyBuffer, LimitNeverGoesBelowOneByte) {
  CopyBuffer b;
  b.limit(0);
  EXPECT_EQ(b.capacity(), 1u);
}

TEST(CopyBuffer, ALimitLastsOneRead) {
  CopyBuffer b;
  b.limit(3);
  b.note_read(3, 3);
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_min);
}

}  // namespace
}  // namespace zt::core
