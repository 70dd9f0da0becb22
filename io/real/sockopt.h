// Socket options and errno mapping for io/real, on raw file descriptors.
//
// Internal to io/real. Kept free of Asio so the Linux headers it needs
// (netfilter, for SO_ORIGINAL_DST) stay in one small translation unit.
//
//   Result<void> r = sockopt::apply(fd, /*v6=*/false, opts);
//   if (!r) return r.error();  // e.g. "setsockopt(SO_MARK): Operation not permitted"
#pragma once

#include <string_view>

#include "io/address.h"
#include "io/network.h"
#include "io/result.h"

namespace zt::io::real::sockopt {

// errno -> Errc (ECONNREFUSED -> connection_refused, ECONNRESET/EPIPE/
// ECONNABORTED -> connection_reset, ...; anything unlisted -> io_error).
Errc errc_from_errno(int err);
// An Error for errno `err` while doing `what`, with the OS message in detail.
Error error_from_errno(int err, std::string_view what);

// Options on a stream socket before connect: TCP_NODELAY, keepalive,
// SO_MARK and IP(V6)_TRANSPARENT.
Result<void> apply(int fd, bool v6, const SocketOptions& opts);
// Options on a listening socket before bind: SO_REUSEADDR, SO_REUSEPORT,
// IP(V6)_TRANSPARENT, SO_MARK and, for IPv6, IPV6_V6ONLY.
Result<void> apply(int fd, bool v6, const ListenOptions& opts);

Result<void> set_nodelay(int fd, bool on);
Result<void> set_mark(int fd, uint32_t mark);
// Whether this process may set IP_TRANSPARENT (CAP_NET_ADMIN), tried on a
// socket of its own.
bool can_set_transparent();
Result<void> set_v6_only(int fd);
// Best effort: lets a bind to port 0 before connect defer the port choice to
// connect, so source-bound connects are not limited by the bind port range.
void set_bind_address_no_port(int fd);
// SO_LINGER {on, 0}: the next close() sends RST and drops unsent bytes.
Result<void> set_linger_zero(int fd);

// SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST on an accepted socket;
// Errc::unsupported (with the reason in detail) when the kernel has none.
Result<Endpoint> original_dst(int fd, bool v6);

}  // namespace zt::io::real::sockopt
