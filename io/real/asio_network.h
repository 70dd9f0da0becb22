// zt::Network over Asio TCP and UDP sockets on one asio::io_context.
//
// Internal to io/real (includes Asio). Implements the contract of
// io/network.h: one read and one write in flight per stream, every callback
// exactly once and never inline, close()/abort() complete what is in flight
// with Errc::cancelled, and destroying an object drops its callbacks. Each
// object keeps its socket and pending callbacks in a shared state that the
// Asio handlers hold, so a handler that runs after the object is gone finds
// the owner flag cleared and does nothing.
//
//   asio::io_context ctx;
//   AsioNetwork net(ctx);
//   auto l = net.listen(*Endpoint::parse("127.0.0.1:0"), {});
//   auto c = net.connect((*l)->local(), {}, [](Result<StreamPtr> s) { ... });
#pragma once

#include <memory>

#include <asio/io_context.hpp>

#include "io/network.h"

namespace zt::io::real {

struct PipePool;

class AsioNetwork final : public Network {
 public:
  explicit AsioNetwork(asio::io_context& ctx);
  ~AsioNetwork() override;

  // IPv6 listeners are IPv6-only (no v4-mapped addresses), SO_REUSEADDR is
  // always on; ListenOptions adds SO_REUSEPORT, IP(V6)_TRANSPARENT, SO_MARK.
  Result<std::unique_ptr<Listener>> listen(const Endpoint& at, const ListenOptions& opts) override;
  // Options that cannot be set (e.g. SO_MARK without CAP_NET_ADMIN) fail the
  // connect through its callback, with the option named in Error::detail.
  std::unique_ptr<Connecting> connect(const Endpoint& to, const SocketOptions& opts, ConnectCallback done) override;
  Result<std::unique_ptr<DatagramSocket>> udp_bind(const Endpoint& at) override;
  // getaddrinfo on Asio's resolver thread; the answer comes back on the loop.
  std::unique_ptr<Resolving> resolve(const std::string& host, ResolveCallback done) override;
  // splice(2) between two of our TCP streams, through pipes borrowed from a
  // pool of this network (only while bytes are on their way). Ignores SIGPIPE
  // process-wide on first use (splice cannot ask for MSG_NOSIGNAL).
  std::unique_ptr<StreamTransfer> transfer(Stream& src, Stream& dst) override;
  TransferStats transfer_stats() const override;

 private:
  asio::io_context& ctx_;
  std::shared_ptr<PipePool> pipes_;
};

}  // namespace zt::io::real
