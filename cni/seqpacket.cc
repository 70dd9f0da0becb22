#include "cni/seqpacket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace zt::cni {
namespace {

Error os_error(const std::string& what) { return Error(Errc::io_error, what + ": " + std::strerror(errno)); }

Result<sockaddr_un> address_of(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Error(Errc::invalid_argument, "socket path '" + path + "' is empty or longer than " +
                                             std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

}  // namespace

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<UniqueFd> listen_seqpacket(const std::string& path) {
  auto addr = address_of(path);
  if (!addr) return addr.error();
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return Error(Errc::io_error, "cannot create " + parent.string() + ": " + ec.message());
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return os_error("socket");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return os_error("cannot remove the old " + path);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) return os_error("bind " + path);
  if (::listen(fd.get(), 16) != 0) return os_error("listen " + path);
  return fd;
}

Result<UniqueFd> connect_seqpacket(const std::string& path) {
  auto addr = address_of(path);
  if (!addr) return addr.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return os_error("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    const Errc code = (errno == ENOENT || errno == ECONNREFUSED) ? Errc::connection_refused : Errc::io_error;
    return Error(code, "connect " + path + ": " + std::strerror(errno));
  }
  return fd;
}

Result<void> send_message(int fd, std::string_view bytes, int fd_to_pass) {
  ZT_ASSERT(bytes.size() <= kMessageBytesMax);
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd_to_pass >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
  }
  ssize_t n;
  do n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return os_error("send");
  if (size_t(n) != bytes.size()) return Error(Errc::io_error, "send: a short write on a SOCK_SEQPACKET socket");
  return ok();
}

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    const int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

Result<Message> recv_message(int fd, int timeout_ms) {
  if (!wait_readable(fd, timeout_ms)) return Error(Errc::timed_out, "no message in " + std::to_string(timeout_ms) + " ms");
  std::string buf(kMessageBytesMax, '\0');
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kDescriptorsPerMessageMax)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == ECONNRESET) return Message{{}, {}, true};
    return os_error("recv");
  }
  Message out;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int passed;
      std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      out.fds.emplace_back(passed);
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    return Error(Errc::invalid_argument, "a message larger than " + std::to_string(kMessageBytesMax) +
                                             " bytes or with more than " + std::to_string(kDescriptorsPerMessageMax) +
                                             " descriptors");
  }
  if (n == 0 && out.fds.empty()) {
    out.eof = true;  // SOCK_SEQPACKET: a zero-length read is the peer's close
    return out;
  }
  buf.resize(size_t(n));
  out.bytes = std::move(buf);
  return out;
}

}  // namespace zt::cni
