#include "core/copy.h"

#include <gtest/gtest.h>

namespace zt::core {
namespace {

// Fills the buffer through the idle bytes into its first heap size.
void leave_idle(CopyBuffer& b) { b.note_read(b.capacity(), b.capacity()); }

TEST(CopyBuffer, StartsWithTheBytesInsideAndLeavesThemWhenAReadFillsThem) {
  CopyBuffer b;
  EXPECT_FALSE(b.on_heap());
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_idle);
  EXPECT_EQ(b.space().size(), copy_buffer_bytes_idle);
  b.note_read(copy_buffer_bytes_idle - 1, 1000);  // small reads stay inside
  b.note_read(1, 1001);
  EXPECT_FALSE(b.on_heap());
  b.note_read(copy_buffer_bytes_idle, 1200);
  EXPECT_TRUE(b.on_heap());
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_min);
  EXPECT_EQ(b.space().size(), copy_buffer_bytes_min);
}

TEST(CopyBuffer, StartsSmallAndGrowsOnlyWhenReadsFillItPastTheThreshold) {
  CopyBuffer b;
  leave_idle(b);
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
  leave_idle(b);
  uint64_t total = copy_grow_after_bytes;
  while (b.capacity() < copy_buffer_bytes_max) b.note_read(b.capacity(), total += b.capacity());
  // Reads of at least an eighth keep the size, and break a run of small ones.
  for (int i = 0; i < 7; ++i) b.note_read(10, total);
  b.note_read(copy_buffer_bytes_max / 8, total);
  for (int i = 0; i < 7; ++i) b.note_read(10, total);
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_max);
  b.note_read(10, total);  // the eighth small read in a row
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_max / 2);
  for (int i = 0; i < 8 * 7; ++i) b.note_read(10, total);
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_min);
  EXPECT_TRUE(b.on_heap());
}

TEST(CopyBuffer, AQuietConnectionGivesItsBufferBackAndReadsIntoTheBytesInside) {
  CopyBuffer b;
  leave_idle(b);
  for (int i = 0; i < copy_shrink_after_small_reads - 1; ++i) b.note_read(copy_buffer_bytes_idle - 1, 5000);
  b.note_read(copy_buffer_bytes_idle, 5000);  // an eighth of 1 KiB is not small
  for (int i = 0; i < copy_shrink_after_small_reads - 1; ++i) b.note_read(1, 5000);
  EXPECT_TRUE(b.on_heap());
  b.note_read(1, 5000);
  EXPECT_FALSE(b.on_heap());
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_idle);
  // Any small read fits inside; the next burst moves out again.
  for (int i = 0; i < 100; ++i) b.note_read(copy_buffer_bytes_idle - 1, 5000);
  EXPECT_FALSE(b.on_heap());
  b.note_read(copy_buffer_bytes_idle, 6000);
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_min);
}

TEST(CopyBuffer, SpaceIsTheBytesInsideOrTheHeapBuffer) {
  CopyBuffer b;
  const MutableBytes inside = b.space();
  inside[0] = 7;
  EXPECT_EQ(b.space().data(), inside.data());
  leave_idle(b);
  EXPECT_NE(b.space().data(), inside.data());
  EXPECT_EQ(b.space().size(), copy_buffer_bytes_min);
}

TEST(CopyBuffer, LimitNeverGoesBelowOneByte) {
  CopyBuffer b;
  b.limit(0);
  EXPECT_EQ(b.space().size(), 1u);
}

TEST(CopyBuffer, ALimitLastsOneReadAndSaysNothingOfTheTraffic) {
  CopyBuffer b;
  leave_idle(b);
  b.limit(3);
  EXPECT_EQ(b.space().size(), 3u);
  b.note_read(3, 3);  // filled the limited space: no growth from that
  EXPECT_EQ(b.capacity(), copy_buffer_bytes_min);
  EXPECT_EQ(b.space().size(), copy_buffer_bytes_min);
  CopyBuffer idle;
  idle.limit(5);
  idle.note_read(5, 5);
  EXPECT_FALSE(idle.on_heap());
}

}  // namespace
}  // namespace zt::core
