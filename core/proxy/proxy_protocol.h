// PROXY protocol v2 (haproxy's proxy-protocol.txt, section 2.2), the header
// inbound writes first to a workload whose application tunnel asks for it:
// the original client and target addresses, and the client's SPIFFE
// identity in TLV 0xD0 (upstream's PROXY_PROTOCOL_AUTHORITY_TLV).
//
//   std::vector<uint8_t> h = encode_proxy_v2(client, target, "spiffe://td/ns/a/sa/b");
//   co_await io::write_all(*upstream, h);          // then the tunnel's bytes
//
//   Result<ProxyHeader> got = parse_proxy_v2(bytes);  // got->header_size bytes were the header
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/hbone/server.h"
#include "core/mesh/model.h"
#include "io/address.h"
#include "io/network.h"
#include "io/result.h"

namespace zt::core::proxy {

inline constexpr uint8_t kProxyV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
inline constexpr uint8_t kProxyV2Proxy = 0x21;        // version 2, command PROXY
inline constexpr uint8_t kProxyV2TcpV4 = 0x11;        // AF_INET, STREAM
inline constexpr uint8_t kProxyV2TcpV6 = 0x21;        // AF_INET6, STREAM
inline constexpr uint8_t kProxyAuthorityTlv = 0xD0;   // the source's SPIFFE identity
inline constexpr size_t kProxyV2FixedSize = 16;       // signature, ver/cmd, family, length

// Source and destination are written in one family: IPv6 when either is
// IPv6 (an IPv4 address then becomes ::ffff:a.b.c.d), else IPv4. The TLV is
// left out when `identity` is empty.
std::vector<uint8_t> encode_proxy_v2(const Endpoint& src, const Endpoint& dst, std::string_view identity);

// What a receiver reads back (for tests and, later, for listeners that
// accept the protocol).
struct ProxyHeader {
  Endpoint src;
  Endpoint dst;
  std::optional<std::string> identity;  // TLV 0xD0
  size_t header_size = 0;               // bytes the header took from the input
};

// Parses a PROXY command header over TCP from the front of `bytes`. Too
// few bytes yet is Errc::invalid_argument with detail "incomplete"; anything
// malformed is the same code with a detail naming what was wrong.
Result<ProxyHeader> parse_proxy_v2(ConstBytes bytes);

// Where inbound connects for a tunnel to `target` on workload `dst`: the
// application tunnel's port when it has one, else the target itself.
Endpoint inbound_upstream(const mesh::Workload& dst, const Endpoint& target);

// The original client of an HBONE request: the `forwarded: for=` address the
// source node sent, else the connection's peer.
Endpoint original_source(const hbone::InboundRequest& req);

}  // namespace zt::core::proxy
