// IP addresses and socket endpoints, IPv4 and IPv6, without OS headers.
//
//   auto ep = Endpoint::parse("[fd00::1]:15008");   // Result<Endpoint>
//   IpAddr ip = IpAddr::v4(10, 0, 0, 1);
//   std::string s = ep->to_string();                 // "[fd00::1]:15008"
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "io/result.h"

namespace zt {

class IpAddr {
 public:
  enum class Family : uint8_t { v4, v6 };

  IpAddr() = default;  // 0.0.0.0
  static IpAddr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d);
  static IpAddr v4_from_bytes(const uint8_t bytes[4]);
  static IpAddr v6_from_bytes(const uint8_t bytes[16]);
  static IpAddr loopback(Family f);
  static IpAddr unspecified(Family f);
  static Result<IpAddr> parse(std::string_view text);
  // Decodes the raw form used in xDS (4 or 16 bytes).
  static Result<IpAddr> from_raw(std::string_view bytes);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::v4; }
  bool is_v6() const { return family_ == Family::v6; }
  bool is_unspecified() const;
  bool is_loopback() const;
  // 4 significant bytes for v4, 16 for v6.
  const uint8_t* data() const { return bytes_.data(); }
  size_t size() const { return is_v4() ? 4 : 16; }

  std::string to_string() const;  // RFC 5952 for v6

  auto operator<=>(const IpAddr&) const = default;
  bool operator==(const IpAddr&) const = default;

 private:
  Family family_ = Family::v4;
  std::array<uint8_t, 16> bytes_{};
};

struct Endpoint {
  IpAddr ip;
  uint16_t port = 0;

  static Result<Endpoint> parse(std::string_view text);  // "1.2.3.4:80", "[::1]:80"
  std::string to_string() const;

  auto operator<=>(const Endpoint&) const = default;
  bool operator==(const Endpoint&) const = default;
};

// A stable 64-bit hash (same on every platform and run), for hashed containers.
uint64_t stable_hash(const IpAddr& ip);
uint64_t stable_hash(const Endpoint& ep);

}  // namespace zt
