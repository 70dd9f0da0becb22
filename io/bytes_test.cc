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

TEST(ReadBuffer, QuietUntilAReadFillsItThenFullUntilEightSmallReads) {
  ReadBuffer rx(65536, 2048);
  EXPECT_EQ(rx.next().size(), 2048u);  // a new connection starts quiet
  rx.note_read(2000);                  // a small message: stays quiet
  EXPECT_EQ(rx.next().size(), 2048u);
  rx.note_read(2048);  // filled: bytes are flowing, full size at once
  EXPECT_FALSE(rx.quiet());
  EXPECT_EQ(rx.next().size(), 65536u);

  for (int i = 0; i < 7; ++i) {  // small reads in the full buffer...
    rx.note_read(100);
    EXPECT_EQ(rx.next().size(), 65536u);
  }
  rx.note_read(2048);  // ...broken by one the quiet buffer would not take
  for (int i = 0; i < 7; ++i) rx.note_read(2047);
  EXPECT_EQ(rx.next().size(), 65536u);
  rx.note_read(1);  // the eighth small read in a row: quiet again
  EXPECT_TRUE(rx.quiet());
  EXPECT_EQ(rx.next().size(), 2048u);
}

TEST(ReadBuffer, KeepsTheBytesOfTheLastReadUntilNextIsCalled) {
  ReadBuffer rx(4096, 16);
  std::span<uint8_t> s = rx.next();
  for (size_t i = 0; i < s.size(); ++i) s[i] = uint8_t(i);
  rx.note_read(s.size());  // switches to full size, but not yet
  EXPECT_EQ(rx.size(), 16u);
  EXPECT_EQ(rx.data()[15], 15);
  EXPECT_EQ(rx.next().size(), 4096u);
}

TEST(ByteVector, ResizeKeepsExistingBytes) {
  ByteVector v{1, 2, 3};
  v.resize(1000);
  EXPECT_EQ(v[0], 1);
  EXPECT_EQ(v[2], 3);
}

}  // namespace
}  // namespace zt
