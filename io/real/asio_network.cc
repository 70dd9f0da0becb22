#include "io/real/asio_network.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/post.hpp>

#include "io/assert.h"
#include "io/real/asio_convert.h"
#include "io/real/netns.h"
#include "io/real/sockopt.h"
#include "io/real/splice.h"
#include "io/real/stream_state.h"
#include "io/real/unix_packets.h"

namespace zt::io::real {

namespace {

using asio::ip::tcp;
using asio::ip::udp;

// Opens `sock` for `proto`, inside `ns` when there is one (in-pod mode).
template <class Socket, class Protocol>
Result<void> open_socket(Socket& sock, const Protocol& proto, const NetNs* ns) {
  std::error_code ec;
  if (!ns) {
    sock.open(proto, ec);
    if (ec) return to_error(ec, "socket");
    return ok();
  }
  Result<int> fd = ns->socket(proto.family(), proto.type() | SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (!fd) return fd.error();
  sock.assign(proto, *fd, ec);
  if (ec) {
    ::close(*fd);
    return to_error(ec, "socket");
  }
  return ok();
}

// Prefixes a setup error's detail with where it happened.
Error with_context(const Error& e, const std::string& where) {
  return Error(e.code, e.detail.empty() ? where : where + ": " + e.detail);
}

// ---------------------------------------------------------------------------
// Streams


// Completes an operation: clears its in-flight flag, then (if the owner
// still exists) calls the user's callback as the very last step, since the
// callback may destroy the object. Handlers hold the shared state by capture,
// so it outlives the callback either way.
template <class Callback, class R>
void finish_op(bool owner_alive, bool& in_flight, Callback& slot, R r) {
  in_flight = false;
  if (!owner_alive) return;
  Callback cb = std::move(slot);
  slot = nullptr;
  cb(std::move(r));
}

void complete_read(const StreamStatePtr& st, Result<size_t> r) {
  finish_op(st->owner_alive, st->reading, st->read_cb, std::move(r));
}

void complete_write(const StreamStatePtr& st, Result<size_t> r) {
  finish_op(st->owner_alive, st->writing, st->write_cb, std::move(r));
}

class AsioStream final : public Stream {
 public:
  explicit AsioStream(StreamStatePtr st) : st_(std::move(st)) {}

  ~AsioStream() override {
    st_->owner_alive = false;
    st_->read_cb = nullptr;
    st_->write_cb = nullptr;
    close();
  }

  void read(MutableBytes buf, IoCallback done) override {
    ZT_ASSERT(done);
    ZT_ASSERT(!st_->reading);  // at most one read in flight
    ZT_ASSERT(!buf.empty());   // an empty read would look like EOF
    st_->reading = true;
    st_->read_cb = std::move(done);
    if (st_->closed || st_->eof || st_->read_error) {
      std::optional<Result<size_t>> r;
      if (st_->closed) {
        r.emplace(closed_error("read"));
      } else if (st_->eof) {
        r.emplace(size_t{0});
      } else {
        r.emplace(*st_->read_error);
      }
      bool was_closed = st_->closed;
      asio::post(st_->sock.get_executor(), [st = st_, r = std::move(*r), was_closed]() mutable {
        if (st->closed && !was_closed) r = Error(Errc::cancelled);
        complete_read(st, std::move(r));
      });
      return;
    }
    st_->sock.async_read_some(asio::buffer(buf.data(), buf.size()),
                              [st = st_](const std::error_code& ec, size_t n) {
                                Result<size_t> r = n;
                                if (st->closed) {
                                  r = Error(Errc::cancelled);
                                } else if (ec == asio::error::eof) {
                                  st->eof = true;
                                  r = size_t{0};
                                } else if (ec) {
                                  Error e = to_error(ec, "read");
                                  if (e.code != Errc::cancelled) st->read_error = e;
                                  r = std::move(e);
                                }
                                complete_read(st, std::move(r));
                              });
  }

  void write(ConstBytes buf, IoCallback done) override {
    ZT_ASSERT(done);
    ZT_ASSERT(!st_->writing);  // at most one write in flight
    ZT_ASSERT(!buf.empty());   // a write takes n >= 1 bytes
    st_->writing = true;
    st_->write_cb = std::move(done);
    if (st_->closed) {
      asio::post(st_->sock.get_executor(), [st = st_] { complete_write(st, closed_error("write")); });
      return;
    }
    st_->sock.async_write_some(asio::buffer(buf.data(), buf.size()),
                               [st = st_](const std::error_code& ec, size_t n) {
                                 Result<size_t> r = n;
                                 if (st->closed) {
                                   r = Error(Errc::cancelled);
                                 } else if (ec) {
                                   r = to_error(ec, "write");
                                 }
                                 complete_write(st, std::move(r));
                               });
  }

  Result<void> shutdown_write() override {
    ZT_ASSERT(!st_->writing);
    if (st_->closed) return closed_error("shutdown");
    std::error_code ec;
    st_->sock.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return to_error(ec, "shutdown");
    return ok();
  }

  void close() override {
    if (st_->closed) return;
    st_->closed = true;
    // Asio completes the operations in flight with operation_aborted; their
    // handlers report Errc::cancelled because `closed` is set.
    std::error_code ec;
    st_->sock.close(ec);
  }

  void abort() override {
    if (st_->closed) return;
    (void)sockopt::set_linger_zero(st_->sock.native_handle());
    close();
  }

  Endpoint local() const override {
    if (!st_->local && !st_->closed) {
      std::error_code ec;
      tcp::endpoint local = st_->sock.local_endpoint(ec);
      if (!ec) st_->local = from_asio(local);
    }
    return st_->local.value_or(Endpoint{});
  }
  Endpoint peer() const override { return st_->peer; }

  Result<Endpoint> original_dst() const override {
    if (st_->closed) return closed_error("original_dst");
    return sockopt::original_dst(st_->sock.native_handle(), st_->peer.ip.is_v6());  // one family both ends
  }

  const StreamStatePtr& state() const { return st_; }

 private:
  StreamStatePtr st_;
};

StreamPtr make_stream(tcp::socket sock, const Endpoint& peer) {
  auto st = std::make_shared<StreamState>(std::move(sock));
  st->peer = peer;
  return std::make_unique<AsioStream>(std::move(st));
}

// ---------------------------------------------------------------------------
// Listeners

struct ListenerState {
  explicit ListenerState(asio::io_context& ctx) : acc(ctx) {}

  tcp::acceptor acc;
  Endpoint local;
  // Accepted sockets inherit TCP_NODELAY from the listening socket (Linux),
  // so only a listener without it needs a setsockopt per connection.
  bool nodelay_inherited = false;
  bool owner_alive = true;
  bool closed = false;
  bool accepting = false;
  Listener::AcceptCallback cb;
  tcp::endpoint peer;  // filled by the accept in flight
};
using ListenerStatePtr = std::shared_ptr<ListenerState>;

void complete_accept(const ListenerStatePtr& st, Result<StreamPtr> r) {
  finish_op(st->owner_alive, st->accepting, st->cb, std::move(r));  // an unclaimed stream in r closes
}

class AsioListener final : public Listener {
 public:
  explicit AsioListener(ListenerStatePtr st) : st_(std::move(st)) {}

  ~AsioListener() override {
    st_->owner_alive = false;
    st_->cb = nullptr;
    close();
  }

  void accept(AcceptCallback done) override {
    ZT_ASSERT(done);
    ZT_ASSERT(!st_->accepting);  // at most one accept in flight
    st_->accepting = true;
    st_->cb = std::move(done);
    if (st_->closed) {
      asio::post(st_->acc.get_executor(), [st = st_] { complete_accept(st, closed_error("accept")); });
      return;
    }
    st_->acc.async_accept(st_->peer, [st = st_](const std::error_code& ec, tcp::socket sock) {
      if (st->closed) return complete_accept(st, Error(Errc::cancelled));
      if (ec) return complete_accept(st, to_error(ec, "accept on " + st->local.to_string()));
      if (!st->nodelay_inherited) (void)sockopt::set_nodelay(sock.native_handle(), true);
      complete_accept(st, make_stream(std::move(sock), from_asio(st->peer)));
    });
  }

  Endpoint local() const override { return st_->local; }

  void close() override {
    if (st_->closed) return;
    st_->closed = true;
    std::error_code ec;
    st_->acc.close(ec);
  }

 private:
  ListenerStatePtr st_;
};

// ---------------------------------------------------------------------------
// Connects

struct ConnectState {
  ConnectState(asio::io_context& ctx, const Endpoint& to, Network::ConnectCallback cb)
      : sock(ctx), to(to), cb(std::move(cb)) {}

  tcp::socket sock;
  Endpoint to;
  Network::ConnectCallback cb;
  bool owner_alive = true;
  bool finished = false;   // the completion handler has run
  bool cancelled = false;  // cancel() closed the socket
  bool decided = false;    // failed during setup; that error is on its way
};
using ConnectStatePtr = std::shared_ptr<ConnectState>;

void complete_connect(const ConnectStatePtr& st, Result<StreamPtr> r) {
  st->finished = true;
  if (!st->owner_alive) return;
  Network::ConnectCallback cb = std::move(st->cb);
  st->cb = nullptr;
  cb(std::move(r));
}

class AsioConnecting final : public Connecting {
 public:
  explicit AsioConnecting(ConnectStatePtr st) : st_(std::move(st)) {}

  ~AsioConnecting() override {
    st_->owner_alive = false;
    st_->cb = nullptr;
    if (!st_->finished) {
      std::error_code ec;
      st_->sock.close(ec);
    }
  }

  void cancel() override {
    if (st_->finished || st_->cancelled || st_->decided) return;
    st_->cancelled = true;
    std::error_code ec;
    st_->sock.close(ec);  // the connect completes with operation_aborted
  }

 private:
  ConnectStatePtr st_;
};

Result<void> prepare_connect(tcp::socket& sock, const Endpoint& to, const SocketOptions& opts, const NetNs* ns) {
  bool v6 = to.ip.is_v6();
  if (opts.source_ip && opts.source_ip->is_v6() != v6) {
    return Error(Errc::invalid_argument,
                 "source " + opts.source_ip->to_string() + " and destination " + to.to_string() + " differ in family");
  }
  std::error_code ec;
  if (auto r = open_socket(sock, v6 ? tcp::v6() : tcp::v4(), ns); !r) return r;
  int fd = sock.native_handle();
  if (auto r = sockopt::apply(fd, v6, opts); !r) return r;
  if (opts.source_ip) {
    sockopt::set_bind_address_no_port(fd);
    sock.bind(tcp::endpoint(to_asio(*opts.source_ip), 0), ec);
    if (ec) return to_error(ec, "bind to source " + opts.source_ip->to_string());
  }
  return ok();
}

// ---------------------------------------------------------------------------
// Datagrams

struct UdpState {
  explicit UdpState(asio::io_context& ctx) : sock(ctx) {}

  udp::socket sock;
  Endpoint local;
  bool owner_alive = true;
  bool closed = false;
  bool receiving = false;
  DatagramSocket::RecvCallback recv_cb;
  udp::endpoint from;  // filled by the receive in flight
};
using UdpStatePtr = std::shared_ptr<UdpState>;

void complete_recv(const UdpStatePtr& st, Result<Datagram> r) {
  finish_op(st->owner_alive, st->receiving, st->recv_cb, std::move(r));
}

class AsioDatagramSocket final : public DatagramSocket {
 public:
  explicit AsioDatagramSocket(UdpStatePtr st) : st_(std::move(st)) {}

  ~AsioDatagramSocket() override {
    st_->owner_alive = false;
    st_->recv_cb = nullptr;
    close();
  }

  void send_to(const Endpoint& to, ConstBytes data, SendCallback done) override {
    ZT_ASSERT(done);
    std::optional<Error> early;
    if (st_->closed) {
      early.emplace(closed_error("send"));
    } else if (to.ip.is_v6() != st_->local.ip.is_v6()) {
      early.emplace(Errc::invalid_argument,
                    "send from " + st_->local.to_string() + " to " + to.to_string() + ": address family differs");
    }
    if (early) {
      // Send callbacks live in their handler, not the state: several sends
      // may be in flight. owner_alive drops them after destruction.
      asio::post(st_->sock.get_executor(), [st = st_, err = std::move(*early), done = std::move(done)] {
        if (st->owner_alive) done(err);
      });
      return;
    }
    st_->sock.async_send_to(asio::buffer(data.data(), data.size()), to_udp(to),
                            [st = st_, done = std::move(done)](const std::error_code& ec, size_t n) {
                              if (!st->owner_alive) return;
                              Result<size_t> r = n;
                              if (st->closed) {
                                r = Error(Errc::cancelled);
                              } else if (ec) {
                                r = to_error(ec, "send");
                              }
                              done(std::move(r));
                            });
  }

  void recv_from(MutableBytes buf, RecvCallback done) override {
    ZT_ASSERT(done);
    ZT_ASSERT(!st_->receiving);  // at most one receive in flight
    st_->receiving = true;
    st_->recv_cb = std::move(done);
    if (st_->closed) {
      asio::post(st_->sock.get_executor(), [st = st_] { complete_recv(st, closed_error("recv")); });
      return;
    }
    st_->sock.async_receive_from(asio::buffer(buf.data(), buf.size()), st_->from,
                                 [st = st_](const std::error_code& ec, size_t n) {
                                   if (st->closed) return complete_recv(st, Error(Errc::cancelled));
                                   if (ec) return complete_recv(st, to_error(ec, "recv"));
                                   complete_recv(st, Datagram{n, from_asio(st->from)});
                                 });
  }

  Endpoint local() const override { return st_->local; }

  void close() override {
    if (st_->closed) return;
    st_->closed = true;
    std::error_code ec;
    st_->sock.close(ec);
  }

 private:
  UdpStatePtr st_;
};

}  // namespace

// ---------------------------------------------------------------------------
// AsioNetwork

Result<std::unique_ptr<Listener>> AsioNetwork::listen(const Endpoint& at, const ListenOptions& opts) {
  const std::string where = "listen on " + at.to_string();
  auto st = std::make_shared<ListenerState>(ctx_);
  bool v6 = at.ip.is_v6();
  std::error_code ec;
  if (auto r = open_socket(st->acc, v6 ? tcp::v6() : tcp::v4(), ns_.get()); !r) return with_context(r.error(), where);
  ListenOptions forced = opts;
  if (mark_) forced.mark = mark_;
  if (auto r = sockopt::apply(st->acc.native_handle(), v6, forced); !r) return with_context(r.error(), where);
  // Every accepted stream gets TCP_NODELAY; set here, it is inherited.
  st->nodelay_inherited = bool(sockopt::set_nodelay(st->acc.native_handle(), true));
  st->acc.bind(to_tcp(at), ec);
  if (ec) return to_error(ec, where);
  int backlog = opts.backlog > 0 ? opts.backlog : int(asio::socket_base::max_listen_connections);
  st->acc.listen(backlog, ec);
  if (ec) return to_error(ec, where);
  tcp::endpoint bound = st->acc.local_endpoint(ec);
  if (ec) return to_error(ec, where);
  st->local = from_asio(bound);
  return std::unique_ptr<Listener>(std::make_unique<AsioListener>(std::move(st)));
}

std::unique_ptr<Connecting> AsioNetwork::connect(const Endpoint& to, const SocketOptions& opts, ConnectCallback done) {
  ZT_ASSERT(done);
  auto st = std::make_shared<ConnectState>(ctx_, to, std::move(done));
  SocketOptions forced = opts;
  if (mark_) forced.mark = mark_;
  Result<void> prep = prepare_connect(st->sock, to, forced, ns_.get());
  if (!prep) {
    st->decided = true;
    std::error_code ec;
    st->sock.close(ec);
    asio::post(ctx_, [st, err = with_context(prep.error(), "connect to " + to.to_string())] {
      complete_connect(st, err);
    });
  } else {
    st->sock.async_connect(to_tcp(to), [st](const std::error_code& ec) {
      if (!st->owner_alive) {
        st->finished = true;
        return;
      }
      if (st->cancelled) return complete_connect(st, Error(Errc::cancelled));
      if (ec) return complete_connect(st, to_error(ec, "connect to " + st->to.to_string()));
      complete_connect(st, make_stream(std::move(st->sock), st->to));
    });
  }
  return std::make_unique<AsioConnecting>(std::move(st));
}

namespace {

// The lookup runs on Asio's resolver thread (getaddrinfo blocks); its handler
// runs on the loop and finds the owner gone if the handle was dropped.
struct ResolveState {
  explicit ResolveState(asio::io_context& ctx) : resolver(ctx) {}
  tcp::resolver resolver;
  Network::ResolveCallback done;
};

class AsioResolving final : public Resolving {
 public:
  explicit AsioResolving(std::shared_ptr<ResolveState> st) : st_(std::move(st)) {}
  ~AsioResolving() override {
    st_->done = nullptr;
    st_->resolver.cancel();
  }

 private:
  std::shared_ptr<ResolveState> st_;
};

}  // namespace

std::unique_ptr<Resolving> AsioNetwork::resolve(const std::string& host, ResolveCallback done) {
  ZT_ASSERT(done);
  auto st = std::make_shared<ResolveState>(ctx_);
  st->done = std::move(done);
  if (auto ip = IpAddr::parse(host)) {
    asio::post(ctx_, [st, ip = *ip] {
      if (st->done) st->done(std::vector<IpAddr>{ip});
    });
  } else {
    st->resolver.async_resolve(host, "", [st, host](const std::error_code& ec, tcp::resolver::results_type results) {
      if (!st->done) return;
      ResolveCallback done = std::move(st->done);
      if (ec) {
        const bool missing = ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again ||
                             ec == asio::error::no_data;
        return done(missing ? Error(Errc::name_not_found, host) : to_error(ec, "resolving " + host));
      }
      std::vector<IpAddr> ips;
      for (const auto& entry : results) {
        IpAddr ip = from_asio(tcp::endpoint(entry.endpoint())).ip;
        if (std::find(ips.begin(), ips.end(), ip) == ips.end()) ips.push_back(ip);
      }
      if (ips.empty()) return done(Error(Errc::name_not_found, host));
      done(std::move(ips));
    });
  }
  return std::make_unique<AsioResolving>(std::move(st));
}

AsioNetwork::AsioNetwork(asio::io_context& ctx) : ctx_(ctx), pipes_(make_pipe_pool()) {}

AsioNetwork::AsioNetwork(asio::io_context& ctx, std::shared_ptr<const NetNs> ns, std::optional<uint32_t> mark,
                         std::shared_ptr<PipePool> pipes)
    : ctx_(ctx), pipes_(std::move(pipes)), ns_(std::move(ns)), mark_(mark) {}

std::unique_ptr<Connecting> AsioNetwork::connect_packets(const std::string& path, PacketConnectCallback done) {
  return connect_unix_packets(ctx_, path, std::move(done));
}

Result<std::unique_ptr<Network>> AsioNetwork::inside(NetNamespacePtr ns, std::optional<uint32_t> mark) {
  auto real = std::dynamic_pointer_cast<const NetNs>(ns);
  if (!real) return Error(Errc::invalid_argument, "not a network namespace of this runtime");
  return std::unique_ptr<Network>(std::make_unique<AsioNetwork>(ctx_, std::move(real), mark, pipes_));
}

AsioNetwork::~AsioNetwork() = default;

std::unique_ptr<StreamTransfer> AsioNetwork::transfer(Stream& src, Stream& dst) {
  auto* s = dynamic_cast<AsioStream*>(&src);
  auto* d = dynamic_cast<AsioStream*>(&dst);
  if (!s || !d || s == d || s->state()->closed || d->state()->closed) return nullptr;
  // splice needs non-blocking sockets; Asio tracks the flag and keeps working.
  std::error_code ec;
  s->state()->sock.native_non_blocking(true, ec);
  if (!ec) d->state()->sock.native_non_blocking(true, ec);
  if (ec) return nullptr;
  return splice_transfer(s->state(), d->state(), pipes_);
}

TransferStats AsioNetwork::transfer_stats() const { return pipe_stats(*pipes_); }

Result<std::unique_ptr<DatagramSocket>> AsioNetwork::udp_bind(const Endpoint& at) {
  const std::string where = "udp bind " + at.to_string();
  auto st = std::make_shared<UdpState>(ctx_);
  bool v6 = at.ip.is_v6();
  std::error_code ec;
  if (auto r = open_socket(st->sock, v6 ? udp::v6() : udp::v4(), ns_.get()); !r) return with_context(r.error(), where);
  if (mark_) {
    if (auto r = sockopt::set_mark(st->sock.native_handle(), *mark_); !r) return with_context(r.error(), where);
  }
  if (v6) {
    if (auto r = sockopt::set_v6_only(st->sock.native_handle()); !r) return with_context(r.error(), where);
  }
  st->sock.bind(to_udp(at), ec);
  if (ec) return to_error(ec, where);
  udp::endpoint bound = st->sock.local_endpoint(ec);
  if (ec) return to_error(ec, where);
  st->local = from_asio(bound);
  return std::unique_ptr<DatagramSocket>(std::make_unique<AsioDatagramSocket>(std::move(st)));
}

}  // namespace zt::io::real
