#include "io/sim/packets.h"

#include <cstring>
#include <deque>

#include "io/assert.h"
#include "io/sim/world.h"

namespace zt::io::sim {

struct PacketMessage {
  std::vector<uint8_t> bytes;
  std::vector<NetNamespacePtr> namespaces;
};

class SimPacketSocket;

// One connection: what each side has received and not yet read.
struct PacketChannel {
  HostId host[2] = {0, 0};
  std::deque<PacketMessage> inbox[2];
  bool eof[2] = {false, false};     // side i reads end-of-file once its inbox is empty
  bool closed[2] = {false, false};  // side i closed its end
  SimPacketSocket* end[2] = {nullptr, nullptr};
};

class SimPacketSocket final : public PacketSocket {
 public:
  SimPacketSocket(World& w, std::shared_ptr<PacketChannel> ch, int side)
      : w_(w), ch_(std::move(ch)), side_(side), id_(w.next_packet_id_++) {
    ch_->end[side_] = this;
    w_.packet_ends_.insert({id_, this});
  }
  ~SimPacketSocket() override {
    *alive_ = false;
    recv_cb_ = nullptr;
    send_cb_ = nullptr;
    close();
    ch_->end[side_] = nullptr;
    w_.packet_ends_.erase(id_);
  }

  HostId host() const { return ch_->host[side_]; }

  void send(ConstBytes message, SendCallback done) override {
    ZT_ASSERT(!send_cb_);
    send_cb_ = std::move(done);
    const int peer = 1 - side_;
    Result<void> r = ok();
    if (ch_->closed[side_]) {
      r = Error(Errc::cancelled);
    } else if (ch_->closed[peer] || ch_->eof[side_]) {
      r = Error(Errc::connection_reset, "the peer closed the packet socket");
    } else {
      PacketMessage m{std::vector<uint8_t>(message.begin(), message.end()), pending_namespaces_};
      pending_namespaces_.clear();
      w_.trace().record("packet.send", w_.now().time_since_epoch().count(), host(), message.size());
      w_.scheduler().after(w_.delay(host(), ch_->host[peer]), ch_->host[peer], "packet.arrive",
                           [ch = ch_, peer, m = std::move(m)]() mutable {
                             if (ch->closed[peer]) return;
                             ch->inbox[peer].push_back(std::move(m));
                             if (ch->end[peer]) ch->end[peer]->deliver();
                           });
    }
    w_.scheduler().after(Duration(0), host(), "packet.sent", [this, alive = alive_, r] {
      if (!*alive) return;
      if (auto cb = std::exchange(send_cb_, nullptr)) cb(r);
    });
  }

  void receive(MutableBytes buf, ReceiveCallback done) override {
    ZT_ASSERT(!recv_cb_);
    recv_cb_ = std::move(done);
    buf_ = buf;
    w_.scheduler().after(Duration(0), host(), "packet.receive", [this, alive = alive_] {
      if (*alive) deliver();
    });
  }

  void close() override {
    if (ch_->closed[side_]) return;
    ch_->closed[side_] = true;
    ch_->inbox[side_].clear();
    const int peer = 1 - side_;
    w_.scheduler().after(w_.delay(host(), ch_->host[peer]), ch_->host[peer], "packet.eof", [ch = ch_, peer] {
      ch->eof[peer] = true;
      if (ch->end[peer]) ch->end[peer]->deliver();
    });
    if (recv_cb_) {
      w_.scheduler().after(Duration(0), host(), "packet.cancelled", [this, alive = alive_] {
        if (!*alive) return;
        if (auto cb = std::exchange(recv_cb_, nullptr)) cb(Error(Errc::cancelled));
      });
    }
  }

  // The namespaces the next send carries (the agent's side: SCM_RIGHTS).
  void attach(std::vector<NetNamespacePtr> ns) { pending_namespaces_ = std::move(ns); }

  void deliver() {
    if (!recv_cb_) return;
    Result<Packet> r = Packet{};
    if (ch_->closed[side_]) {
      r = Error(Errc::cancelled);
    } else if (!ch_->inbox[side_].empty()) {
      PacketMessage m = std::move(ch_->inbox[side_].front());
      ch_->inbox[side_].pop_front();
      if (m.bytes.size() > buf_.size()) {
        r = Error(Errc::invalid_argument, "a message longer than " + std::to_string(buf_.size()) + " bytes (dropped)");
      } else {
        std::memcpy(buf_.data(), m.bytes.data(), m.bytes.size());
        r = Packet{m.bytes.size(), std::move(m.namespaces)};
      }
    } else if (!ch_->eof[side_]) {
      return;  // nothing yet
    }
    auto cb = std::exchange(recv_cb_, nullptr);
    cb(std::move(r));
  }

 private:
  World& w_;
  std::shared_ptr<PacketChannel> ch_;
  int side_;
  uint64_t id_;  // the world's registry key (crash closes a host's sockets)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  SendCallback send_cb_;
  ReceiveCallback recv_cb_;
  MutableBytes buf_;
  std::vector<NetNamespacePtr> pending_namespaces_;
};

void attach_namespaces(PacketSocket& agent_side, std::vector<NetNamespacePtr> ns) {
  auto* s = dynamic_cast<SimPacketSocket*>(&agent_side);
  ZT_ASSERT(s != nullptr);
  s->attach(std::move(ns));
}

// --- listeners ---------------------------------------------------------

struct PacketListenerState {
  HostId host;
  std::string path;
  std::deque<PacketSocketPtr> backlog;  // accepted by the world, not yet by the owner
  PacketListener::AcceptCallback accept_cb;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
};

class SimPacketListener final : public PacketListener {
 public:
  SimPacketListener(World& w, std::unique_ptr<PacketListenerState> st) : w_(w), st_(std::move(st)) {
    w_.packet_listeners_[st_->path] = st_.get();
  }
  ~SimPacketListener() override {
    *st_->alive = false;
    auto it = w_.packet_listeners_.find(st_->path);
    if (it != w_.packet_listeners_.end() && it->second == st_.get()) w_.packet_listeners_.erase(it);
  }
  void accept(AcceptCallback done) override {
    ZT_ASSERT(!st_->accept_cb);
    st_->accept_cb = std::move(done);
    w_.scheduler().after(Duration(0), st_->host, "packet.accept", [st = st_.get(), alive = st_->alive] {
      if (*alive) offer(*st);
    });
  }
  static void offer(PacketListenerState& st) {
    if (!st.accept_cb || st.backlog.empty()) return;
    PacketSocketPtr s = std::move(st.backlog.front());
    st.backlog.pop_front();
    auto cb = std::exchange(st.accept_cb, nullptr);
    cb(std::move(s));
  }

 private:
  World& w_;
  std::unique_ptr<PacketListenerState> st_;
};

// --- namespaces --------------------------------------------------------

class SimNamespace final : public NetNamespace {
 public:
  SimNamespace(HostId host, std::shared_ptr<bool> gone) : host_(host), gone_(std::move(gone)) {}
  std::string id() const override { return "sim-host-" + std::to_string(host_); }
  HostId host() const { return host_; }
  bool gone() const { return *gone_; }

 private:
  HostId host_;
  std::shared_ptr<bool> gone_;
};

// A host's network with a mark forced on every socket.
class MarkedNetwork final : public Network {
 public:
  MarkedNetwork(Network& net, NetNamespacePtr ns, std::optional<uint32_t> mark)
      : net_(net), ns_(std::move(ns)), mark_(mark) {}
  Result<std::unique_ptr<Listener>> listen(const Endpoint& at, const ListenOptions& opts) override {
    ListenOptions o = opts;
    if (mark_) o.mark = mark_;
    return net_.listen(at, o);
  }
  std::unique_ptr<Connecting> connect(const Endpoint& to, const SocketOptions& opts, ConnectCallback done) override {
    SocketOptions o = opts;
    if (mark_) o.mark = mark_;
    return net_.connect(to, o, std::move(done));
  }
  Result<std::unique_ptr<DatagramSocket>> udp_bind(const Endpoint& at) override { return net_.udp_bind(at); }
  std::unique_ptr<Resolving> resolve(const std::string& host, ResolveCallback done) override {
    return net_.resolve(host, std::move(done));
  }
  std::unique_ptr<StreamTransfer> transfer(Stream& src, Stream& dst) override { return net_.transfer(src, dst); }
  TransferStats transfer_stats() const override { return net_.transfer_stats(); }
  std::unique_ptr<Connecting> connect_packets(const std::string& path, PacketConnectCallback done) override {
    return net_.connect_packets(path, std::move(done));
  }
  Result<std::unique_ptr<Network>> inside(NetNamespacePtr ns, std::optional<uint32_t> mark) override {
    return net_.inside(std::move(ns), mark);
  }

 private:
  Network& net_;
  NetNamespacePtr ns_;  // held, as io/real holds the descriptor
  std::optional<uint32_t> mark_;
};

// --- the world's side ----------------------------------------------------

namespace {
class SimPacketConnecting final : public Connecting {
 public:
  explicit SimPacketConnecting(std::shared_ptr<bool> alive) : alive_(std::move(alive)) {}
  ~SimPacketConnecting() override { *alive_ = false; }
  void cancel() override {}  // decided at once (as a Unix connect)

 private:
  std::shared_ptr<bool> alive_;
};
}  // namespace

Result<std::unique_ptr<PacketListener>> World::listen_packets(HostId h, const std::string& path) {
  if (packet_listeners_.count(path)) return Error(Errc::address_in_use, path);
  auto st = std::make_unique<PacketListenerState>();
  st->host = h;
  st->path = path;
  return std::unique_ptr<PacketListener>(std::make_unique<SimPacketListener>(*this, std::move(st)));
}

std::unique_ptr<Connecting> World::connect_packets(HostId from, const std::string& path,
                                                   Network::PacketConnectCallback done) {
  auto alive = std::make_shared<bool>(true);
  Result<PacketSocketPtr> result = Error(Errc::connection_refused, "connect " + path + ": nothing listens there");
  auto it = packet_listeners_.find(path);
  if (it != packet_listeners_.end() && host(it->second->host).up()) {
    PacketListenerState& l = *it->second;
    auto ch = std::make_shared<PacketChannel>();
    ch->host[0] = from;
    ch->host[1] = l.host;
    result = PacketSocketPtr(std::make_unique<SimPacketSocket>(*this, ch, 0));
    l.backlog.push_back(std::make_unique<SimPacketSocket>(*this, ch, 1));
    trace_.record("packet.connect", now().time_since_epoch().count(), from, l.host);
    sched_.after(delay(from, l.host), l.host, "packet.accept", [this, path] {
      auto it = packet_listeners_.find(path);
      if (it != packet_listeners_.end()) SimPacketListener::offer(*it->second);
    });
  }
  sched_.after(Duration(0), from, "packet.connected",
               [alive, done = std::move(done), r = std::make_shared<Result<PacketSocketPtr>>(std::move(result))] {
                 if (*alive) done(std::move(*r));
               });
  return std::make_unique<SimPacketConnecting>(std::move(alive));
}

NetNamespacePtr World::net_namespace(HostId h) {
  auto& gone = namespaces_gone_[h];
  if (!gone) gone = std::make_shared<bool>(false);
  return std::make_shared<SimNamespace>(h, gone);
}

void World::destroy_namespace(HostId h) {
  auto& gone = namespaces_gone_[h];
  if (!gone) gone = std::make_shared<bool>(false);
  *gone = true;
}

Result<std::unique_ptr<Network>> World::network_inside(const NetNamespacePtr& ns, std::optional<uint32_t> mark) {
  auto* sim = dynamic_cast<const SimNamespace*>(ns.get());
  if (!sim) return Error(Errc::invalid_argument, "not a network namespace of this world");
  if (sim->gone()) return Error(Errc::invalid_argument, "setns: the network namespace is gone");
  return std::unique_ptr<Network>(std::make_unique<MarkedNetwork>(host(sim->host()).env().net, ns, mark));
}

void World::crash_packets(HostId h) {
  // Ascending ids: the order is the world's, not the heap's.
  std::vector<SimPacketSocket*> ends;
  for (auto& [id, end] : packet_ends_) {
    if (end->host() == h) ends.push_back(end);
  }
  for (SimPacketSocket* end : ends) end->close();
  for (auto& [path, l] : packet_listeners_) {
    if (l->host == h) {
      l->backlog.clear();
      l->accept_cb = nullptr;
    }
  }
}

}  // namespace zt::io::sim
