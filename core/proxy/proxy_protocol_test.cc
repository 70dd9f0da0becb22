// PROXY protocol v2 bytes, exactly, and the parser reading them back.
#include "core/proxy/proxy_protocol.h"

#include <gtest/gtest.h>

namespace zt::core::proxy {
namespace {

const std::vector<uint8_t> kSignature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

std::vector<uint8_t> cat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(ProxyProtocol, Ipv4WithIdentityTlv) {
  const std::string id = "spiffe://cluster.local/ns/default/sa/client";  // 43 bytes
  ASSERT_EQ(id.size(), 43u);
  auto got = encode_proxy_v2(Endpoint{IpAddr::v4(10, 0, 1, 1), 40000}, Endpoint{IpAddr::v4(10, 0, 2, 1), 8080}, id);
  std::vector<uint8_t> want = cat(kSignature, {0x21, 0x11, 0x00, 12 + 3 + 43,  // ver/cmd, family, length
                                               10, 0, 1, 1, 10, 0, 2, 1,        // src, dst addresses
                                               0x9C, 0x40, 0x1F, 0x90,          // ports 40000, 8080
                                               0xD0, 0x00, 43});                // TLV type, length
  want.insert(want.end(), id.begin(), id.end());
  EXPECT_EQ(got, want);
}

TEST(ProxyProtocol, Ipv4WithoutIdentityHasNoTlv) {
  auto got = encode_proxy_v2(Endpoint{IpAddr::v4(1, 2, 3, 4), 1}, Endpoint{IpAddr::v4(5, 6, 7, 8), 0x1234}, "");
  EXPECT_EQ(got, cat(kSignature, {0x21, 0x11, 0x00, 0x0C, 1, 2, 3, 4, 5, 6, 7, 8, 0x00, 0x01, 0x12, 0x34}));
}

TEST(ProxyProtocol, Ipv6AndMixedFamilies) {
  const IpAddr a = *IpAddr::parse("fd00::1"), b = *IpAddr::parse("fd00::2");
  auto got = encode_proxy_v2(Endpoint{a, 443}, Endpoint{b, 80}, "x");
  std::vector<uint8_t> want = cat(kSignature, {0x21, 0x21, 0x00, 36 + 3 + 1});
  want.insert(want.end(), a.data(), a.data() + 16);
  want.insert(want.end(), b.data(), b.data() + 16);
  want = cat(want, {0x01, 0xBB, 0x00, 0x50, 0xD0, 0x00, 0x01, 'x'});
  EXPECT_EQ(got, want);
  // An IPv4 source next to an IPv6 target is written as ::ffff:a.b.c.d.
  auto mixed = encode_proxy_v2(Endpoint{IpAddr::v4(10, 0, 0, 1), 1}, Endpoint{b, 2}, "");
  ASSERT_EQ(mixed.size(), 16u + 36u);
  EXPECT_EQ(mixed[13], 0x21);
  const std::vector<uint8_t> mapped(mixed.begin() + 16, mixed.begin() + 32);
  EXPECT_EQ(mapped, (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1}));
}

TEST(ProxyProtocol, ParsesWhatItWritesAndStopsAtTheHeader) {
  const Endpoint src{IpAddr::v4(10, 0, 1, 1), 40000}, dst{IpAddr::v4(10, 0, 2, 1), 8080};
  auto bytes = encode_proxy_v2(src, dst, "spiffe://td/ns/a/sa/b");
  const size_t header = bytes.size();
  bytes.push_back('h');
  auto got = parse_proxy_v2(bytes);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->src, src);
  EXPECT_EQ(got->dst, dst);
  EXPECT_EQ(got->identity, "spiffe://td/ns/a/sa/b");
  EXPECT_EQ(got->header_size, header);
  auto short_read = parse_proxy_v2(ConstBytes(bytes).first(header - 1));
  ASSERT_FALSE(short_read);
  EXPECT_EQ(short_read.error().detail, "incomplete");
  bytes[0] = 'G';
  EXPECT_FALSE(parse_proxy_v2(bytes));
}

TEST(ProxyProtocol, InboundConnectsToTheTunnelPortWhenSet) {
  mesh::Workload w;
  const Endpoint target{IpAddr::v4(10, 0, 2, 1), 8080};
  EXPECT_EQ(inbound_upstream(w, target), target);
  w.application_tunnel = mesh::ApplicationTunnel{mesh::ApplicationTunnel::Protocol::proxy, std::nullopt};
  EXPECT_EQ(inbound_upstream(w, target), target);
  w.application_tunnel->port = 15088;
  EXPECT_EQ(inbound_upstream(w, target), (Endpoint{target.ip, 15088}));
}

}  // namespace
}  // namespace zt::core::proxy
