#include "io/real/unix_packets.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <asio/post.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include "io/assert.h"
#include "io/real/netns.h"
#include "io/real/sockopt.h"

namespace zt::io::real {

namespace {

// Descriptors one message may carry; ZDS sends one. More are closed.
constexpr size_t kDescriptorsMax = 8;

struct PacketState {
  explicit PacketState(asio::io_context& ctx, int fd) : ctx(ctx), sock(ctx, fd) {}
  asio::io_context& ctx;
  asio::posix::stream_descriptor sock;  // used to wait; I/O is send/recvmsg on its descriptor
  bool owner_alive = true;
  bool closed = false;
  PacketSocket::SendCallback send_cb;
  PacketSocket::ReceiveCallback recv_cb;
  std::vector<uint8_t> out;  // the message being sent
  MutableBytes in;           // where the message being received goes
};
using PacketStatePtr = std::shared_ptr<PacketState>;

void finish_send(const PacketStatePtr& st, Result<void> r) {
  auto cb = std::move(st->send_cb);
  st->send_cb = nullptr;
  if (st->owner_alive && cb) cb(std::move(r));
}

void finish_receive(const PacketStatePtr& st, Result<Packet> r) {
  auto cb = std::move(st->recv_cb);
  st->recv_cb = nullptr;
  if (st->owner_alive && cb) cb(std::move(r));
}

void try_send(const PacketStatePtr& st) {
  if (st->closed) return finish_send(st, Error(Errc::cancelled));
  const ssize_t n = ::send(st->sock.native_handle(), st->out.data(), st->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n >= 0) return finish_send(st, ok());
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    st->sock.async_wait(asio::posix::descriptor_base::wait_write, [st](const std::error_code& ec) {
      if (ec) return finish_send(st, Error(Errc::cancelled));
      try_send(st);
    });
    return;
  }
  finish_send(st, sockopt::error_from_errno(errno, "send (unix packet socket)"));
}

void try_receive(const PacketStatePtr& st) {
  if (st->closed) return finish_receive(st, Error(Errc::cancelled));
  iovec iov{st->in.data(), st->in.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kDescriptorsMax)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = ::recvmsg(st->sock.native_handle(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      st->sock.async_wait(asio::posix::descriptor_base::wait_read, [st](const std::error_code& ec) {
        if (ec) return finish_receive(st, Error(Errc::cancelled));
        try_receive(st);
      });
      return;
    }
    return finish_receive(st, sockopt::error_from_errno(errno, "recvmsg (unix packet socket)"));
  }
  // Every descriptor that came is ours to close, whatever happens next.
  Packet packet;
  packet.size = size_t(n);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      auto ns = NetNs::adopt(fd);  // closes fd when it is not a network namespace
      packet.namespaces.push_back(ns ? NetNamespacePtr(std::move(*ns)) : nullptr);
    }
  }
  if (msg.msg_flags & MSG_TRUNC) {
    return finish_receive(st, Error(Errc::invalid_argument, "a message longer than " + std::to_string(st->in.size()) +
                                                                " bytes (dropped)"));
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    // Descriptors beyond what we take are closed by the kernel; say so
    // with a placeholder, so the message is refused for its count.
    packet.namespaces.push_back(nullptr);
  }
  finish_receive(st, std::move(packet));
}

class UnixPacketSocket final : public PacketSocket {
 public:
  explicit UnixPacketSocket(PacketStatePtr st) : st_(std::move(st)) {}
  ~UnixPacketSocket() override {
    st_->owner_alive = false;
    close();
  }

  void send(ConstBytes message, SendCallback done) override {
    ZT_ASSERT(!st_->send_cb);
    st_->send_cb = std::move(done);
    st_->out.assign(message.begin(), message.end());
    // Never inline: the attempt runs from the loop.
    asio::post(st_->ctx, [st = st_] { try_send(st); });
  }

  void receive(MutableBytes buf, ReceiveCallback done) override {
    ZT_ASSERT(!st_->recv_cb);
    st_->recv_cb = std::move(done);
    st_->in = buf;
    asio::post(st_->ctx, [st = st_] { try_receive(st); });
  }

  void close() override {
    if (st_->closed) return;
    st_->closed = true;
    std::error_code ec;
    st_->sock.close(ec);  // waits in flight end with operation_aborted -> cancelled
  }

 private:
  PacketStatePtr st_;
};

class UnixConnecting final : public Connecting {
 public:
  explicit UnixConnecting(std::shared_ptr<bool> alive) : alive_(std::move(alive)) {}
  ~UnixConnecting() override { *alive_ = false; }
  void cancel() override {}  // a Unix connect is decided at once: the result stands

 private:
  std::shared_ptr<bool> alive_;
};

}  // namespace

std::unique_ptr<Connecting> connect_unix_packets(asio::io_context& ctx, const std::string& path,
                                                 Network::PacketConnectCallback done) {
  ZT_ASSERT(done);
  auto alive = std::make_shared<bool>(true);
  Result<PacketSocketPtr> result = Error(Errc::invalid_argument, "unix socket path too long: " + path);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() < sizeof(addr.sun_path)) {
    std::memcpy(addr.sun_path, path.data(), path.size());
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      result = sockopt::error_from_errno(errno, "socket(AF_UNIX, SOCK_SEQPACKET)");
    } else if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      // A Unix connect decides at once (EAGAIN: the listener's backlog is full; retried by the caller).
      result = sockopt::error_from_errno(errno, "connect " + path);
      ::close(fd);
    } else {
      result = PacketSocketPtr(std::make_unique<UnixPacketSocket>(std::make_shared<PacketState>(ctx, fd)));
    }
  }
  asio::post(ctx, [alive, done = std::move(done), result = std::make_shared<Result<PacketSocketPtr>>(std::move(result))]() mutable {
    if (*alive) done(std::move(*result));
  });
  return std::make_unique<UnixConnecting>(std::move(alive));
}

}  // namespace zt::io::real
