#include "core/proxy/proxy_protocol.h"

#include <algorithm>
#include <array>

#include "core/hbone/headers.h"

namespace zt::core::proxy {
namespace {

std::array<uint8_t, 16> as_v6(const IpAddr& ip) {
  std::array<uint8_t, 16> out{};
  if (ip.is_v6()) {
    std::copy_n(ip.data(), 16, out.begin());
  } else {
    out[10] = 0xff;
    out[11] = 0xff;
    std::copy_n(ip.data(), 4, out.begin() + 12);
  }
  return out;
}

void put16(std::vector<uint8_t>& out, size_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v & 0xff));
}

uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

}  // namespace

std::vector<uint8_t> encode_proxy_v2(const Endpoint& src, const Endpoint& dst, std::string_view identity) {
  const bool v6 = src.ip.is_v6() || dst.ip.is_v6();
  const size_t addr_len = v6 ? 36 : 12;
  const size_t tlv_len = identity.empty() ? 0 : 3 + identity.size();
  std::vector<uint8_t> out(std::begin(kProxyV2Signature), std::end(kProxyV2Signature));
  out.reserve(kProxyV2FixedSize + addr_len + tlv_len);
  out.push_back(kProxyV2Proxy);
  out.push_back(v6 ? kProxyV2TcpV6 : kProxyV2TcpV4);
  put16(out, addr_len + tlv_len);
  if (v6) {
    for (const Endpoint* ep : {&src, &dst}) {
      const auto bytes = as_v6(ep->ip);
      out.insert(out.end(), bytes.begin(), bytes.end());
    }
  } else {
    out.insert(out.end(), src.ip.data(), src.ip.data() + 4);
    out.insert(out.end(), dst.ip.data(), dst.ip.data() + 4);
  }
  put16(out, src.port);
  put16(out, dst.port);
  if (!identity.empty()) {
    out.push_back(kProxyAuthorityTlv);
    put16(out, identity.size());
    out.insert(out.end(), identity.begin(), identity.end());
  }
  return out;
}

Result<ProxyHeader> parse_proxy_v2(ConstBytes bytes) {
  auto bad = [](std::string why) { return Error(Errc::invalid_argument, std::move(why)); };
  const size_t sig = sizeof(kProxyV2Signature);
  if (!std::equal(bytes.begin(), bytes.begin() + std::min(bytes.size(), sig), kProxyV2Signature)) {
    return bad("not a PROXY v2 signature");
  }
  if (bytes.size() < kProxyV2FixedSize) return bad("incomplete");
  if (bytes[12] != kProxyV2Proxy) return bad("not version 2 with the PROXY command");
  const uint8_t family = bytes[13];
  const size_t len = get16(&bytes[14]);
  if (bytes.size() < kProxyV2FixedSize + len) return bad("incomplete");
  const size_t addr_len = family == kProxyV2TcpV4 ? 12 : family == kProxyV2TcpV6 ? 36 : 0;
  if (addr_len == 0) return bad("not TCP over IPv4 or IPv6");
  if (len < addr_len) return bad("address block too short");
  const uint8_t* p = bytes.data() + kProxyV2FixedSize;
  ProxyHeader h;
  const size_t ip_len = family == kProxyV2TcpV4 ? 4 : 16;
  auto ip_at = [&](const uint8_t* q) { return ip_len == 4 ? IpAddr::v4_from_bytes(q) : IpAddr::v6_from_bytes(q); };
  h.src.ip = ip_at(p);
  h.dst.ip = ip_at(p + ip_len);
  h.src.port = get16(p + 2 * ip_len);
  h.dst.port = get16(p + 2 * ip_len + 2);
  for (size_t at = addr_len; at < len;) {
    if (len - at < 3) return bad("truncated TLV");
    const uint8_t type = p[at];
    const size_t tlv_len = get16(p + at + 1);
    if (len - at - 3 < tlv_len) return bad("TLV longer than the header");
    if (type == kProxyAuthorityTlv) h.identity = std::string(reinterpret_cast<const char*>(p + at + 3), tlv_len);
    at += 3 + tlv_len;
  }
  h.header_size = kProxyV2FixedSize + len;
  return h;
}

Endpoint inbound_upstream(const mesh::Workload& dst, const Endpoint& target) {
  if (dst.application_tunnel && dst.application_tunnel->port) return {target.ip, *dst.application_tunnel->port};
  return target;
}

Endpoint original_source(const hbone::InboundRequest& req) {
  if (auto fwd = hbone::forwarded_for(req.header("forwarded"))) return *fwd;
  return req.connection_peer;
}

}  // namespace zt::core::proxy
