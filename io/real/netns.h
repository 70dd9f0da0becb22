// Network namespaces in io/real: one held open by its descriptor, and
// sockets made inside it (in-pod mode: each pod's listeners and ztunnel's
// own connections for that pod live in the pod's namespace).
//
// Internal to io/real. A socket belongs to the namespace it was created in
// for its whole life, so only socket(2) needs to run inside: the calling
// thread enters the namespace (setns), makes the socket and returns to its
// own at once. Bind, listen, connect and I/O then work from any thread.
//
//   auto ns = NetNs::open("/var/run/netns/pod-a");      // or adopt(fd from SCM_RIGHTS)
//   Result<int> fd = (*ns)->socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC);
#pragma once

#include <memory>
#include <string>

#include "io/network.h"
#include "io/result.h"

namespace zt::io::real {

class NetNs final : public NetNamespace {
 public:
  // Takes `fd` (closed on failure too); an error if it is not a network
  // namespace.
  static Result<std::shared_ptr<NetNs>> adopt(int fd);
  static Result<std::shared_ptr<NetNs>> open(const std::string& path);
  ~NetNs() override;
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;

  std::string id() const override { return id_; }
  int fd() const { return fd_; }
  // socket(domain, type, 0) inside this namespace, from the calling thread.
  Result<int> socket(int domain, int type) const;

 private:
  NetNs(int fd, std::string id) : fd_(fd), id_(std::move(id)) {}
  int fd_;
  std::string id_;  // "<device>:<inode>" of the namespace
};

}  // namespace zt::io::real
