// gRPC's wire pieces: message framing (any split), limits, grpc-timeout,
// grpc-message escaping, status names and HTTP mapping.
#include "xds/grpc/codec.h"

#include <gtest/gtest.h>

namespace zt::xds::grpc {
namespace {

ConstBytes bytes(const std::string& s) { return ConstBytes(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

TEST(GrpcCodec, FramesReassembleFromAnySplit) {
  const std::string wire = frame_message("hello") + frame_message("") + frame_message(std::string(70000, 'x'));
  EXPECT_EQ(wire.substr(0, 5), std::string("\0\0\0\0\5", 5));
  for (size_t step : {size_t(1), size_t(3), size_t(5), size_t(4096), wire.size()}) {
    MessageReader r;
    std::vector<std::string> got;
    for (size_t at = 0; at < wire.size(); at += step) {
      ASSERT_TRUE(r.feed(bytes(wire.substr(at, step))).ok());
      while (auto m = r.next()) got.push_back(*m);
    }
    ASSERT_EQ(got.size(), 3u) << "step " << step;
    EXPECT_EQ(got[0], "hello");
    EXPECT_EQ(got[1], "");
    EXPECT_EQ(got[2], std::string(70000, 'x'));
    EXPECT_FALSE(r.partial());
  }
  MessageReader half;
  ASSERT_TRUE(half.feed(bytes(frame_message("abc").substr(0, 6))).ok());
  EXPECT_TRUE(half.partial());
  EXPECT_FALSE(half.next());
}

TEST(GrpcCodec, OversizedAndCompressedMessagesAreRefused) {
  MessageReader small(10);
  EXPECT_TRUE(small.feed(bytes(frame_message(std::string(10, 'a')))).ok());
  auto over = small.feed(bytes(frame_message(std::string(11, 'a'))));
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.error().detail.find("11 bytes, over the limit of 10"), std::string::npos);
  // A claim of 4 GiB is refused from its header alone, before any body.
  MessageReader r;
  EXPECT_FALSE(r.feed(bytes(std::string("\0\xff\xff\xff\xff", 5))).ok());
  MessageReader c;
  EXPECT_FALSE(c.feed(bytes(std::string("\1\0\0\0\0", 5))).ok());
  EXPECT_EQ(kMessageBytesMax, 200u * 1024 * 1024);
}

TEST(GrpcCodec, Timeouts) {
  EXPECT_EQ(encode_timeout(std::chrono::seconds(10)), "10000000u");
  EXPECT_EQ(encode_timeout(std::chrono::milliseconds(1500)), "1500000u");
  EXPECT_EQ(encode_timeout(std::chrono::hours(100)), "360000S");
  EXPECT_EQ(encode_timeout(std::chrono::nanoseconds(5)), "5n");
  EXPECT_EQ(encode_timeout(Duration(0)), "0n");
  EXPECT_EQ(parse_timeout("1500m"), std::chrono::milliseconds(1500));
  EXPECT_EQ(parse_timeout("2H"), std::chrono::hours(2));
  for (const char* bad : {"", "S", "10", "10x", "-1S", "123456789S", "1.5S"}) EXPECT_FALSE(parse_timeout(bad)) << bad;
  // Never shorter than asked: rounded up.
  EXPECT_GE(*parse_timeout(encode_timeout(std::chrono::nanoseconds(123'456'789'012))),
            std::chrono::nanoseconds(123'456'789'012));
}

TEST(GrpcCodec, MessagesArePercentEncoded) {
  EXPECT_EQ(encode_message("plain text"), "plain text");
  EXPECT_EQ(encode_message("100%\nnew"), "100%25%0Anew");
  EXPECT_EQ(encode_message("é"), "%C3%A9");
  EXPECT_EQ(decode_message("100%25%0Anew"), "100%\nnew");
  EXPECT_EQ(decode_message("%C3%A9"), "é");
  EXPECT_EQ(decode_message("50% off %zz"), "50% off %zz");  // stray percents survive
}

TEST(GrpcCodec, StatusNamesAndHttpMapping) {
  EXPECT_EQ(to_string(Code::unavailable), "UNAVAILABLE");
  EXPECT_EQ(to_string(Code::unauthenticated), "UNAUTHENTICATED");
  EXPECT_EQ((Status{Code::not_found, "no such thing"}.to_string()), "NOT_FOUND: no such thing");
  EXPECT_EQ(status_from_http(503).code, Code::unavailable);
  EXPECT_EQ(status_from_http(401).code, Code::unauthenticated);
  EXPECT_EQ(status_from_http(404).code, Code::unimplemented);
  EXPECT_EQ(status_from_http(500).code, Code::unknown);
}

}  // namespace
}  // namespace zt::xds::grpc
