#include "io/real/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include <linux/nsfs.h>

#include "io/real/sockopt.h"

namespace zt::io::real {

namespace {

// The calling thread's own namespace, to return to after each socket; held
// open for the thread's life (workers are long-lived).
struct HomeNamespace {
  int fd = -1;
  HomeNamespace() { fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC); }
  ~HomeNamespace() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<std::shared_ptr<NetNs>> NetNs::adopt(int fd) {
  if (fd < 0) return Error(Errc::invalid_argument, "no descriptor");
  // NS_GET_NSTYPE says what kind of namespace a descriptor is (Linux 4.11);
  // anything else (a file, a socket, a mount namespace) is refused.
  const int type = ::ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    const int err = errno;
    ::close(fd);
    if (type >= 0) return Error(Errc::invalid_argument, "the descriptor is a namespace, but not a network namespace");
    return Error(Errc::invalid_argument,
                 "the descriptor is not a network namespace: " + sockopt::error_from_errno(err, "ioctl(NS_GET_NSTYPE)").detail);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return sockopt::error_from_errno(err, "fstat(network namespace)");
  }
  return std::shared_ptr<NetNs>(
      new NetNs(fd, std::to_string(uint64_t(st.st_dev)) + ":" + std::to_string(uint64_t(st.st_ino))));
}

Result<std::shared_ptr<NetNs>> NetNs::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sockopt::error_from_errno(errno, "open " + path);
  return adopt(fd);
}

NetNs::~NetNs() { ::close(fd_); }

Result<int> NetNs::socket(int domain, int type) const {
  static thread_local HomeNamespace home;
  if (home.fd < 0) return Error(Errc::unsupported, "cannot open this thread's network namespace (/proc/thread-self/ns/net)");
  if (::setns(fd_, CLONE_NEWNET) != 0) return sockopt::error_from_errno(errno, "setns(pod network namespace)");
  const int fd = ::socket(domain, type, 0);
  const int socket_errno = errno;
  if (::setns(home.fd, CLONE_NEWNET) != 0) {
    // A data-path thread left in a pod's namespace would open every later
    // socket there: nothing safe remains to do.
    std::perror("ztunnel: setns back to the node's network namespace");
    std::abort();
  }
  if (fd < 0) return sockopt::error_from_errno(socket_errno, "socket (in a pod network namespace)");
  return fd;
}

}  // namespace zt::io::real
