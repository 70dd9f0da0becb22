#include "io/address.h"

#include <gtest/gtest.h>

namespace zt {
namespace {

TEST(IpAddr, ParsesAndFormatsV4) {
  auto ip = IpAddr::parse("10.1.2.3");
  ASSERT_TRUE(ip);
  EXPECT_TRUE(ip->is_v4());
  EXPECT_EQ(ip->to_string(), "10.1.2.3");
  EXPECT_EQ(*ip, IpAddr::v4(10, 1, 2, 3));
}

TEST(IpAddr, RejectsMalformedV4) {
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.1.1.1", "1..2.3", "a.b.c.d", "1.2.3.4 "})
    EXPECT_FALSE(IpAddr::parse(bad)) << bad;
}

TEST(IpAddr, ParsesAndFormatsV6Rfc5952) {
  struct Case { const char* in; const char* out; };
  for (auto [in, out] : {Case{"::1", "::1"}, Case{"::", "::"}, Case{"fd00:0:0:0:0:0:0:1", "fd00::1"},
                         Case{"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"}, Case{"FE80::ABCD", "fe80::abcd"},
                         Case{"1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"}, Case{"::ffff:10.0.0.1", "::ffff:a00:1"}}) {
    auto ip = IpAddr::parse(in);
    ASSERT_TRUE(ip) << in;
    EXPECT_TRUE(ip->is_v6());
    EXPECT_EQ(ip->to_string(), out) << in;
  }
}

TEST(IpAddr, RejectsMalformedV6) {
  for (const char* bad : {":::", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", "1:2:3:4:5:6:7", ":1"})
    EXPECT_FALSE(IpAddr::parse(bad)) << bad;
}

TEST(IpAddr, FromRawBytes) {
  EXPECT_EQ(IpAddr::from_raw(std::string("\x0a\x00\x00\x01", 4))->to_string(), "10.0.0.1");
  EXPECT_TRUE(IpAddr::from_raw(std::string(16, '\0'))->is_v6());
  auto bad = IpAddr::from_raw("abc");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.code(), Errc::invalid_argument);
}

TEST(Endpoint, ParsesBothFamilies) {
  auto v4 = Endpoint::parse("127.0.0.1:15008");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->port, 15008);
  EXPECT_EQ(v4->to_string(), "127.0.0.1:15008");
  auto v6 = Endpoint::parse("[::1]:80");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->to_string(), "[::1]:80");
  for (const char* bad : {"1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "::1:80", "[::1]80", "[::1]:x"})
    EXPECT_FALSE(Endpoint::parse(bad)) << bad;
}

}  // namespace
}  // namespace zt
