// Conversions between zt addresses/errors and their Asio forms.
//
// Internal to io/real: only io/real may include Asio.
//
//   asio::ip::tcp::endpoint e = to_tcp(*Endpoint::parse("127.0.0.1:80"));
//   Endpoint back = from_asio(e);
//   Error err = to_error(ec, "connect to 10.0.0.1:80");
#pragma once

#include <string>
#include <string_view>
#include <system_error>

#include <asio/error.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>

#include "io/address.h"
#include "io/real/sockopt.h"
#include "io/result.h"

namespace zt::io::real {

inline asio::ip::address to_asio(const IpAddr& ip) {
  if (ip.is_v4()) {
    asio::ip::address_v4::bytes_type b{};
    for (size_t i = 0; i < b.size(); ++i) b[i] = ip.data()[i];
    return asio::ip::address(asio::ip::address_v4(b));
  }
  asio::ip::address_v6::bytes_type b{};
  for (size_t i = 0; i < b.size(); ++i) b[i] = ip.data()[i];
  return asio::ip::address(asio::ip::address_v6(b));
}

// A v4-mapped IPv6 address ([::ffff:a.b.c.d]) comes back as IPv4.
inline IpAddr from_asio(const asio::ip::address& a) {
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    return IpAddr::v4_from_bytes(b.data());
  }
  asio::ip::address_v6 v6 = a.to_v6();
  if (v6.is_v4_mapped()) {
    auto b = asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_bytes();
    return IpAddr::v4_from_bytes(b.data());
  }
  auto b = v6.to_bytes();
  return IpAddr::v6_from_bytes(b.data());
}

inline asio::ip::tcp::endpoint to_tcp(const Endpoint& ep) { return {to_asio(ep.ip), ep.port}; }
inline asio::ip::udp::endpoint to_udp(const Endpoint& ep) { return {to_asio(ep.ip), ep.port}; }

template <class Protocol>
Endpoint from_asio(const asio::ip::basic_endpoint<Protocol>& ep) {
  return Endpoint{from_asio(ep.address()), ep.port()};
}

inline Errc errc_from(const std::error_code& ec) {
  if (ec == asio::error::operation_aborted) return Errc::cancelled;
  if (ec.category() == asio::system_category()) return sockopt::errc_from_errno(ec.value());
  return Errc::io_error;
}

// An Error for an Asio failure while doing `what`. Cancellation carries no
// detail (it is routine); everything else says what failed and why.
inline Error to_error(const std::error_code& ec, std::string_view what) {
  Errc code = errc_from(ec);
  if (code == Errc::cancelled) return Error(code);
  std::string detail(what);
  detail += ": ";
  detail += ec.message();
  return Error(code, std::move(detail));
}

}  // namespace zt::io::real
