// Unix SOCK_SEQPACKET sockets, as ZDS uses them: one message per packet, an
// open descriptor passed beside a message with SCM_RIGHTS. Blocking calls
// with timeouts: the agent does one thing at a time.
//
//   auto listener = listen_seqpacket("/var/run/ztunnel/ztunnel.sock");
//   UniqueFd conn(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
//   auto hello = recv_message(conn.get(), 5000);
//   send_message(conn.get(), bytes, netns_fd);   // the add and its netns
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/result.h"

namespace zt::cni {

// ZDS messages are small; anything larger is not one.
inline constexpr size_t kMessageBytesMax = 64 * 1024;
inline constexpr size_t kDescriptorsPerMessageMax = 8;

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Binds (replacing a stale socket file) and listens; creates the parent
// folder if needed.
Result<UniqueFd> listen_seqpacket(const std::string& path);
Result<UniqueFd> connect_seqpacket(const std::string& path);

// Sends one message, with `fd_to_pass` as SCM_RIGHTS when it is >= 0.
Result<void> send_message(int fd, std::string_view bytes, int fd_to_pass = -1);

struct Message {
  std::string bytes;
  std::vector<UniqueFd> fds;  // descriptors that came with it (owned)
  bool eof = false;           // the peer closed: no message
};
// Waits up to timeout_ms (negative: forever) for one message; timed_out when
// none came. A message larger than kMessageBytesMax is an error.
Result<Message> recv_message(int fd, int timeout_ms);

// Waits until fd is readable (or hung up): false on timeout.
bool wait_readable(int fd, int timeout_ms);

}  // namespace zt::cni
