// Streams, listeners, connects and datagrams: every byte core moves goes
// through these interfaces, implemented by io/real (Asio) and io/sim.
//
// The contract, enforced by both runtimes (and asserted by io/sim):
// - At most one read and one write in flight per stream; at most one accept
//   per listener; at most one receive per datagram socket.
// - Each operation's callback fires exactly once, and never from inside the
//   call that started it.
// - close() and abort() complete the operations in flight with
//   Errc::cancelled (still exactly once, still later).
// - Destroying an object drops the callbacks of its operations in flight:
//   they never fire. This is what lets a coroutine frame that owns a stream be
//   destroyed at any suspension point. Destroying an open stream closes it.
// - Buffers passed to read/write must stay valid until the callback fires or
//   the object is destroyed.
//
//   stream->read(buf, [](Result<size_t> n) { ... });  // 0 means the peer sent FIN
//   stream->write(data, [](Result<size_t> n) { ... }); // n >= 1: a prefix was taken
//   stream->shutdown_write();                          // FIN after what was written
//   stream->abort();                                   // RST
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "io/address.h"
#include "io/result.h"
#include "io/time.h"

namespace zt {

using MutableBytes = std::span<uint8_t>;
using ConstBytes = std::span<const uint8_t>;

struct Keepalive {
  Duration idle = std::chrono::seconds(180);
  Duration interval = std::chrono::seconds(180);
  int probes = 9;
};

// Per-socket options ztunnel sets (docs/PROTOCOL.md, sockets).
struct SocketOptions {
  bool nodelay = true;
  std::optional<Keepalive> keepalive;
  std::optional<uint32_t> mark;  // SO_MARK; in io/sim, a marked connect bypasses capture
  // Bind the connecting socket to this source IP first (IP_TRANSPARENT when it
  // is not a local address, so inbound can keep the original source).
  std::optional<IpAddr> source_ip;
  bool transparent = false;
};

struct ListenOptions {
  int backlog = 1024;
  bool reuse_port = false;
  bool transparent = false;  // accept connections for non-local addresses
  std::optional<uint32_t> mark;
};

class Stream {
 public:
  using IoCallback = std::function<void(Result<size_t>)>;

  virtual ~Stream() = default;
  // Completes with n > 0 bytes read, 0 once the peer has finished sending
  // (FIN, and every byte before it was read), or an error.
  virtual void read(MutableBytes buf, IoCallback done) = 0;
  // Completes with n >= 1 bytes taken from the front of buf, or an error.
  virtual void write(ConstBytes buf, IoCallback done) = 0;
  // Sends FIN after the bytes already written. Not while a write is in flight.
  virtual Result<void> shutdown_write() = 0;
  // Graceful close: FIN if not yet sent (RST if unread bytes remain, as TCP does).
  virtual void close() = 0;
  // Abortive close: RST to the peer, unsent bytes dropped.
  virtual void abort() = 0;

  virtual Endpoint local() const = 0;
  virtual Endpoint peer() const = 0;
  // Where the client meant to connect before capture redirected it here.
  // Errc::unsupported when the connection was not redirected.
  virtual Result<Endpoint> original_dst() const = 0;
};

using StreamPtr = std::unique_ptr<Stream>;

// One direction of a relay whose bytes the runtime moves itself, without
// copying them through our memory: splice(2) through a kernel pipe in
// io/real, a plain copy in io/sim. Made by Network::transfer(src, dst); it
// stands for "read from src, then write all of it to dst":
// - fill() is src's read in flight and drain() is dst's write in flight, so
//   neither stream may have its own read (src) or write (dst) in flight at
//   the same time, and src.abort()/close() cancel a fill as they cancel a
//   read (dst likewise for drain);
// - fill() only when nothing is held; drain() only when something is;
// - the usual rules hold: one callback each, never inline, and destroying
//   the transfer drops its callbacks (and any bytes still held); after that,
//   with a fill or drain in flight, the streams are only fit to be closed.
//
//   xfer->fill(max, [](Result<size_t> n) { ... });  // n > 0 now held, 0 = src's EOF
//   xfer->drain([](Result<size_t> n) { ... });      // n >= 1 delivered to dst
class StreamTransfer {
 public:
  using IoCallback = Stream::IoCallback;

  virtual ~StreamTransfer() = default;
  // Takes up to `max` (>= 1) bytes from src and holds them. Completes with
  // n > 0 taken, 0 once src has finished sending (FIN), or src's error.
  virtual void fill(size_t max, IoCallback done) = 0;
  // Writes held bytes to dst. Completes with n >= 1 written, or dst's error.
  virtual void drain(IoCallback done) = 0;
  // Bytes taken from src and not yet written to dst.
  virtual size_t held() const = 0;
};

// What a runtime's transfers did, for tests (proof the fast path ran) and
// metrics.
struct TransferStats {
  uint64_t transfers = 0;      // StreamTransfer objects made
  uint64_t bytes = 0;          // bytes delivered to a dst through them
  uint64_t pipes_created = 0;  // io/real: kernel pipes opened (they are pooled)
  uint64_t pipes_open = 0;     // io/real: pipes open now, lent out or pooled
};

class Listener {
 public:
  using AcceptCallback = std::function<void(Result<StreamPtr>)>;

  virtual ~Listener() = default;
  virtual void accept(AcceptCallback done) = 0;
  virtual Endpoint local() const = 0;  // the bound endpoint (port 0 resolved)
  virtual void close() = 0;
};

// An outstanding connect. cancel() makes the callback fire with
// Errc::cancelled unless the result was already decided; destroying the
// handle drops the callback.
class Connecting {
 public:
  virtual ~Connecting() = default;
  virtual void cancel() = 0;
};

struct Datagram {
  size_t size = 0;
  Endpoint from;
};

class DatagramSocket {
 public:
  using SendCallback = std::function<void(Result<size_t>)>;
  using RecvCallback = std::function<void(Result<Datagram>)>;

  virtual ~DatagramSocket() = default;
  virtual void send_to(const Endpoint& to, ConstBytes data, SendCallback done) = 0;
  virtual void recv_from(MutableBytes buf, RecvCallback done) = 0;
  virtual Endpoint local() const = 0;
  virtual void close() = 0;
};

// An outstanding name lookup; destroying it drops the callback.
class Resolving {
 public:
  virtual ~Resolving() = default;
};

// A network namespace handed to this process (in-pod mode: a pod's,
// received from the CNI node agent). Network::inside() makes sockets in it.
class NetNamespace {
 public:
  virtual ~NetNamespace() = default;
  // The same namespace received twice has the same id (io/real: its
  // inode), so a re-sent pod is recognised and a recreated one is not.
  virtual std::string id() const = 0;
};
using NetNamespacePtr = std::shared_ptr<const NetNamespace>;

// One message of a SOCK_SEQPACKET Unix socket (ZDS), with the descriptors
// that came with it: network namespaces, or null for a descriptor that is
// not one (already closed).
struct Packet {
  size_t size = 0;  // 0: the peer closed the connection
  std::vector<NetNamespacePtr> namespaces;
};

// A connected SOCK_SEQPACKET Unix socket: message boundaries are kept, a
// message can carry descriptors. The stream rules apply: one send and one
// receive in flight, callbacks once and never inline, destroying drops them.
class PacketSocket {
 public:
  using SendCallback = std::function<void(Result<void>)>;
  using ReceiveCallback = std::function<void(Result<Packet>)>;

  virtual ~PacketSocket() = default;
  virtual void send(ConstBytes message, SendCallback done) = 0;
  // A message longer than buf fails with Errc::invalid_argument (it is lost).
  virtual void receive(MutableBytes buf, ReceiveCallback done) = 0;
  virtual void close() = 0;
};
using PacketSocketPtr = std::unique_ptr<PacketSocket>;

class Network {
 public:
  using ConnectCallback = std::function<void(Result<StreamPtr>)>;
  using ResolveCallback = std::function<void(Result<std::vector<IpAddr>>)>;

  virtual ~Network() = default;
  virtual Result<std::unique_ptr<Listener>> listen(const Endpoint& at, const ListenOptions& opts) = 0;
  // No timeout of its own beyond the transport's (SYN retries); callers bound
  // it with io::connect(..., timeout) from io/async.h.
  virtual std::unique_ptr<Connecting> connect(const Endpoint& to, const SocketOptions& opts,
                                              ConnectCallback done) = 0;
  virtual Result<std::unique_ptr<DatagramSocket>> udp_bind(const Endpoint& at) = 0;
  // The addresses of a host name: the system resolver in io/real (istiod is
  // a Service name, and its IPs change), the world's name table in io/sim.
  // An IP literal is its own answer; an unknown name is Errc::name_not_found. The
  // callback never runs inline.
  virtual std::unique_ptr<Resolving> resolve(const std::string& host, ResolveCallback done) = 0;

  // A transfer src -> dst (StreamTransfer above) when this runtime can move
  // bytes between these two streams itself: both are its own plain TCP
  // streams (not TLS, not HTTP/2 tunnels). nullptr otherwise, and callers
  // copy through a buffer of their own.
  virtual std::unique_ptr<StreamTransfer> transfer(Stream& src, Stream& dst) {
    (void)src;
    (void)dst;
    return nullptr;
  }
  virtual TransferStats transfer_stats() const { return {}; }

  // Connects to the SOCK_SEQPACKET Unix socket at `path` (the CNI node
  // agent's ZDS socket). Completes on the loop, never inline.
  using PacketConnectCallback = std::function<void(Result<PacketSocketPtr>)>;
  virtual std::unique_ptr<Connecting> connect_packets(const std::string& path, PacketConnectCallback done) = 0;
  // A Network whose sockets (listening, connecting, datagram) are made
  // inside `ns` and each marked `mark` (SO_MARK: the pod's redirection
  // rules let ztunnel's own sockets through). Same loop as this one; it
  // holds `ns` for as long as it lives.
  virtual Result<std::unique_ptr<Network>> inside(NetNamespacePtr ns, std::optional<uint32_t> mark) {
    (void)ns;
    (void)mark;
    return Error(Errc::unsupported, "network namespaces are not supported here");
  }
};

}  // namespace zt
