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
#include <optional>

#include <asio/io_context.hpp>

#include "io/network.h"

namespace zt::io::real {

struct PipePool;
class NetNs;

class AsioNetwork final : public Network {
 public:
  explicit AsioNetwork(asio::io_context& ctx);
  // Sockets made inside `ns`, each marked `mark` (Network::inside).
  AsioNetwork(asio::io_context& ctx, std::shared_ptr<const NetNs> ns, std::optional<uint32_t> mark,
              std::shared_ptr<PipePool> pipes);
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
  std::unique_ptr<Connecting> connect_packets(const std::string& path, PacketConnectCallback done) override;
  // `ns` must be one of io/real's (received by connect_packets' sockets or
  // opened with NetNs::open).
  Result<std::unique_ptr<Network>> inside(NetNamespacePtr ns, std::optional<uint32_t> mark) override;

 private:
  asio::io_context& ctx_;
  std::shared_ptr<PipePool> pipes_;
  std::shared_ptr<const NetNs> ns_;  // null: the thread's own namespace
  std::optional<uint32_t> mark_;     // forced on every socket when set
};

}  // namespace zt::io::real
