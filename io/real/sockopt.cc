#include "io/real/sockopt.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

namespace zt::io::real::sockopt {

namespace {

Result<void> set_int(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return error_from_errno(errno, std::string("setsockopt(") + what + ")");
  }
  return ok();
}

int whole_seconds(Duration d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 1) return 1;
  if (s > 32767) return 32767;  // the kernel's limit for TCP_KEEPIDLE/INTVL
  return static_cast<int>(s);
}

Result<void> set_transparent(int fd, bool v6) {
  return v6 ? set_int(fd, SOL_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT")
            : set_int(fd, SOL_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT");
}

}  // namespace

Errc errc_from_errno(int err) {
  switch (err) {
    case ECANCELED:
      return Errc::cancelled;
    case ECONNREFUSED:
      return Errc::connection_refused;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
      return Errc::connection_reset;
    case ETIMEDOUT:
      return Errc::timed_out;
    case EHOSTUNREACH:
    case ENETUNREACH:
      return Errc::host_unreachable;
    case EADDRINUSE:
      return Errc::address_in_use;
    case EADDRNOTAVAIL:
      return Errc::address_not_available;
    case ENOTCONN:
      return Errc::not_connected;
    default:
      return Errc::io_error;
  }
}

Error error_from_errno(int err, std::string_view what) {
  std::string detail(what);
  detail += ": ";
  detail += std::system_category().message(err);
  return Error(errc_from_errno(err), std::move(detail));
}

Result<void> set_nodelay(int fd, bool on) { return set_int(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, "TCP_NODELAY"); }

Result<void> set_v6_only(int fd) { return set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY"); }

void set_bind_address_no_port(int fd) {
  int one = 1;
  (void)::setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
}

Result<void> set_linger_zero(int fd) {
  struct linger lg {};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0) {
    return error_from_errno(errno, "setsockopt(SO_LINGER)");
  }
  return ok();
}

Result<void> apply(int fd, bool v6, const SocketOptions& opts) {
  if (auto r = set_nodelay(fd, opts.nodelay); !r) return r;
  if (opts.keepalive) {
    if (auto r = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"); !r) return r;
    if (auto r = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, whole_seconds(opts.keepalive->idle), "TCP_KEEPIDLE"); !r)
      return r;
    if (auto r = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, whole_seconds(opts.keepalive->interval), "TCP_KEEPINTVL");
        !r)
      return r;
    int probes = opts.keepalive->probes < 1 ? 1 : (opts.keepalive->probes > 127 ? 127 : opts.keepalive->probes);
    if (auto r = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, probes, "TCP_KEEPCNT"); !r) return r;
  }
  if (opts.mark) {
    if (auto r = set_int(fd, SOL_SOCKET, SO_MARK, static_cast<int>(*opts.mark), "SO_MARK"); !r) return r;
  }
  if (opts.transparent) {
    if (auto r = set_transparent(fd, v6); !r) return r;
  }
  return ok();
}

bool can_set_transparent() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = bool(set_transparent(fd, false));
  ::close(fd);
  return ok;
}

Result<void> set_mark(int fd, uint32_t mark) {
  return set_int(fd, SOL_SOCKET, SO_MARK, static_cast<int>(mark), "SO_MARK");
}

Result<void> apply(int fd, bool v6, const ListenOptions& opts) {
  if (v6) {
    if (auto r = set_v6_only(fd); !r) return r;
  }
  if (auto r = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"); !r) return r;
  if (opts.reuse_port) {
    if (auto r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT"); !r) return r;
  }
  if (opts.transparent) {
    if (auto r = set_transparent(fd, v6); !r) return r;
  }
  if (opts.mark) {
    if (auto r = set_int(fd, SOL_SOCKET, SO_MARK, static_cast<int>(*opts.mark), "SO_MARK"); !r) return r;
  }
  return ok();
}

Result<Endpoint> original_dst(int fd, bool v6) {
  if (v6) {
    sockaddr_in6 addr{};
    socklen_t len = sizeof(addr);
    if (::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &addr, &len) != 0) {
      int err = errno;
      return Error(Errc::unsupported, std::string("getsockopt(IP6T_SO_ORIGINAL_DST): ") + std::system_category().message(err));
    }
    if (addr.sin6_family != AF_INET6) return Error(Errc::unsupported, "IP6T_SO_ORIGINAL_DST: not an IPv6 address");
    IpAddr ip = IpAddr::v6_from_bytes(addr.sin6_addr.s6_addr);
    return Endpoint{ip, ntohs(addr.sin6_port)};
  }
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &addr, &len) != 0) {
    int err = errno;
    return Error(Errc::unsupported, std::string("getsockopt(SO_ORIGINAL_DST): ") + std::system_category().message(err));
  }
  if (addr.sin_family != AF_INET) return Error(Errc::unsupported, "SO_ORIGINAL_DST: not an IPv4 address");
  uint8_t bytes[4];
  std::memcpy(bytes, &addr.sin_addr.s_addr, 4);  // network order: a.b.c.d
  return Endpoint{IpAddr::v4_from_bytes(bytes), ntohs(addr.sin_port)};
}

}  // namespace zt::io::real::sockopt
