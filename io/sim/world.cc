#include "io/sim/world.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "io/assert.h"
#include "io/sim/tcp.h"
#include "io/sim/udp.h"

namespace zt::io::sim {

// --- per-host views of the world: Clock, Loop, Network ----------------------

class Host::SimClock final : public Clock {
 public:
  explicit SimClock(Host& h) : h_(h) {}
  MonoTime now() const override { return h_.world_.now(); }
  WallTime wall_now() const override {
    // The virtual epoch starts at 2026-01-01T00:00:00Z; hosts may be skewed.
    constexpr auto kEpoch = std::chrono::sys_days(std::chrono::year(2026) / 1 / 1);
    return WallTime(kEpoch) + h_.world_.now().time_since_epoch() + h_.wall_offset_;
  }

 private:
  Host& h_;
};

class Host::SimLoop final : public Loop {
 public:
  explicit SimLoop(Host& h) : h_(h) {}
  void post(Callback fn) override { h_.world_.scheduler().after(Duration(0), h_.id_, "loop.post", std::move(fn)); }
  TimerId run_after(Duration d, Callback fn) override {
    return h_.world_.scheduler().after(d, h_.id_, "loop.timer", std::move(fn));
  }
  bool cancel(TimerId id) override { return h_.world_.scheduler().cancel(id); }

 private:
  Host& h_;
};

namespace {

// io/sim's StreamTransfer: a plain copy through a buffer of its own over the
// streams' read and write. Core's transfer path then runs in simulation with
// every fault the streams have (short reads and writes, resets, partitions)
// and replays exactly; what it does not model is the kernel pipe itself.
class SimTransfer final : public StreamTransfer {
 public:
  SimTransfer(Stream& src, Stream& dst, std::shared_ptr<TransferStats> stats)
      : src_(src), dst_(dst), st_(std::make_shared<State>()) {
    st_->stats = std::move(stats);
    ++st_->stats->transfers;
  }
  // The callbacks hold the state, so buffers in flight stay valid; a dead
  // owner's completions are dropped.
  ~SimTransfer() override { st_->owner_alive = false; }

  void fill(size_t max, IoCallback done) override {
    ZT_ASSERT(done);
    ZT_ASSERT(max > 0);
    ZT_ASSERT(st_->held == 0);
    st_->buf.resize(max);
    st_->offset = 0;
    src_.read({st_->buf.data(), max}, [st = st_, done = std::move(done)](Result<size_t> n) {
      if (!st->owner_alive) return;
      if (n && *n > 0) st->held = *n;
      done(std::move(n));
    });
  }

  void drain(IoCallback done) override {
    ZT_ASSERT(done);
    ZT_ASSERT(st_->held > 0);
    dst_.write({st_->buf.data() + st_->offset, st_->held}, [st = st_, done = std::move(done)](Result<size_t> n) {
      if (!st->owner_alive) return;
      if (n) {
        st->offset += *n;
        st->held -= *n;
        st->stats->bytes += *n;
      }
      done(std::move(n));
    });
  }

  size_t held() const override { return st_->held; }

 private:
  struct State {
    bool owner_alive = true;
    std::vector<uint8_t> buf;
    size_t offset = 0;
    size_t held = 0;
    std::shared_ptr<TransferStats> stats;
  };

  Stream& src_;
  Stream& dst_;
  std::shared_ptr<State> st_;
};

}  // namespace

class SimNetwork final : public Network {
 public:
  explicit SimNetwork(Host& h) : h_(h) {}

  // Offered for two simulated TCP streams only, as io/real offers splice for
  // two kernel sockets only: TLS and HTTP/2 streams keep core's buffer.
  std::unique_ptr<StreamTransfer> transfer(Stream& src, Stream& dst) override {
    if (&src == &dst || !dynamic_cast<SimStream*>(&src) || !dynamic_cast<SimStream*>(&dst)) return nullptr;
    return std::make_unique<SimTransfer>(src, dst, stats_);
  }
  TransferStats transfer_stats() const override { return *stats_; }

  std::unique_ptr<Connecting> connect_packets(const std::string& path, PacketConnectCallback done) override {
    return h_.world_.connect_packets(h_.id_, path, std::move(done));
  }
  Result<std::unique_ptr<Network>> inside(NetNamespacePtr ns, std::optional<uint32_t> mark) override {
    return h_.world_.network_inside(ns, mark);
  }

  Result<std::unique_ptr<Listener>> listen(const Endpoint& at, const ListenOptions& opts) override {
    World& w = h_.world_;
    auto bound = bind_endpoint(at);
    if (!bound) return bound.error();
    if (w.listeners_.count({h_.id_, bound->ip, bound->port}))
      return Error(Errc::address_in_use, bound->to_string());
    auto st = std::make_unique<ListenerState>();
    st->host = h_.id_;
    st->local = *bound;
    st->backlog = std::max(1, opts.backlog);
    w.trace().record("tcp.listen", w.now().time_since_epoch().count(), h_.id_, stable_hash(*bound));
    return std::unique_ptr<Listener>(std::make_unique<SimListener>(w, std::move(st)));
  }

  std::unique_ptr<Connecting> connect(const Endpoint& to, const SocketOptions& opts, ConnectCallback done) override {
    return TcpEngine::connect(h_.world_, h_, to, opts, std::move(done));
  }

  Result<std::unique_ptr<DatagramSocket>> udp_bind(const Endpoint& at) override {
    World& w = h_.world_;
    auto bound = bind_endpoint(at);
    if (!bound) return bound.error();
    if (w.udp_.count({h_.id_, bound->ip, bound->port})) return Error(Errc::address_in_use, bound->to_string());
    auto st = std::make_unique<UdpState>();
    st->host = h_.id_;
    st->local = *bound;
    return std::unique_ptr<DatagramSocket>(std::make_unique<SimUdpSocket>(w, std::move(st)));
  }

  // Answers after one simulated DNS round trip, from the world's name table.
  std::unique_ptr<Resolving> resolve(const std::string& host, ResolveCallback done) override {
    Result<std::vector<IpAddr>> answer = Error(Errc::name_not_found, host);
    if (auto ip = IpAddr::parse(host)) {
      answer = std::vector<IpAddr>{*ip};
    } else if (const std::vector<IpAddr>* ips = h_.world_.addresses_of(host); ips && !ips->empty()) {
      answer = *ips;
    }
    Loop& loop = h_.env().loop;
    auto lookup = std::make_unique<SimResolving>(loop);
    lookup->timer = loop.run_after(kDnsRoundTrip, [done = std::move(done), answer = std::move(answer)]() mutable {
      done(std::move(answer));
    });
    return lookup;
  }

 private:
  static constexpr Duration kDnsRoundTrip = std::chrono::milliseconds(1);
  struct SimResolving final : Resolving {
    explicit SimResolving(Loop& l) : loop(l) {}
    ~SimResolving() override { loop.cancel(timer); }
    Loop& loop;
    TimerId timer = kNoTimer;
  };

  Result<Endpoint> bind_endpoint(const Endpoint& at) {
    if (!at.ip.is_unspecified() && !at.ip.is_loopback() &&
        std::find(h_.addrs_.begin(), h_.addrs_.end(), at.ip) == h_.addrs_.end())
      return Error(Errc::address_not_available, at.ip.to_string() + " is not an address of " + h_.name_);
    Endpoint bound = at;
    if (bound.port == 0) bound.port = TcpEngine::ephemeral_port(h_.world_, h_);
    return bound;
  }

  Host& h_;
  std::shared_ptr<TransferStats> stats_ = std::make_shared<TransferStats>();
};

// Renders on the host's own wall clock and names the host, so a line says
// where and when (simulated) it happened.
class Host::SimLog final : public Log {
 public:
  explicit SimLog(Host& h) : h_(h) {}
  bool enabled(LogLevel level, std::string_view target) const override {
    const WorldOptions& o = h_.world_.options();
    return o.log_sink && o.log_filter.enabled(level, target);
  }
  void emit(LogLevel level, std::string_view target, std::string_view message,
            std::span<const LogField> fields) override {
    std::vector<LogField> all{LogField("host", h_.name_)};
    all.insert(all.end(), fields.begin(), fields.end());
    std::string line;
    append_log_line(line, LogFormat::plain, h_.clock_->wall_now(), level, target, message, all);
    h_.world_.options().log_sink(line);
  }

 private:
  Host& h_;
};

Host::Host(World& world, HostId id, std::string name, std::vector<IpAddr> addrs)
    : world_(world), id_(id), name_(std::move(name)), addrs_(std::move(addrs)) {
  clock_ = std::make_unique<SimClock>(*this);
  loop_ = std::make_unique<SimLoop>(*this);
  net_ = std::make_unique<SimNetwork>(*this);
  rng_ = std::make_unique<Rng>(world.rng().stream("host:" + name_).next());
  log_ = std::make_unique<SimLog>(*this);
  env_ = std::make_unique<Env>(Env{*clock_, *loop_, *net_, *rng_, world.fault_points(), *log_});
}

Host::~Host() = default;

IpAddr Host::addr(IpAddr::Family f) const {
  for (const auto& a : addrs_)
    if (a.family() == f) return a;
  return IpAddr::loopback(f);
}

void Host::capture_outbound(uint16_t port, uint32_t bypass_mark) {
  capture_ = {Endpoint{IpAddr::unspecified(IpAddr::Family::v4), port}, bypass_mark};
}

void Host::capture_outbound_to(Endpoint proxy, uint32_t bypass_mark) { capture_ = {proxy, bypass_mark}; }

void Host::capture_inbound(uint16_t port, std::vector<uint16_t> except, uint32_t bypass_mark) {
  capture_in_ = InboundCapture{port, std::move(except), bypass_mark};
}

// --- fault points --------------------------------------------------------------

SimFaultPoints::SimFaultPoints(World& world, uint64_t seed)
    : world_(world), seed_(seed), rng_(Rng(seed).stream("buggify")) {}

bool SimFaultPoints::fire(std::string_view point) {
  auto it = points_.find(point);
  if (it == points_.end()) {
    // On or off for the whole seed, decided by the seed and the name alone.
    Rng decide = Rng(seed_).stream(point);
    const auto& only = world_.options().faults.buggify_only;
    bool enabled = decide.chance(world_.options().faults.buggify_enable) &&
                   (only.empty() || std::find(only.begin(), only.end(), point) != only.end());
    it = points_.emplace(std::string(point), std::make_pair(enabled, uint64_t{0})).first;
  }
  if (!it->second.first || !rng_.chance(world_.options().faults.buggify_fire)) return false;
  ++it->second.second;
  world_.trace().record("buggify", world_.now().time_since_epoch().count(), stable_hash(point));
  return true;
}

// --- the world -------------------------------------------------------------------

World::World(uint64_t seed, WorldOptions options)
    : seed_(seed),
      options_(options),
      sched_(trace_),
      rng_(Rng(seed).stream("network")),
      fault_points_(*this, seed) {}

World::~World() {
  // Objects handed out (streams, listeners) must be gone before the world.
  ZT_ASSERT(live_streams_ == 0);
}

Host& World::add_host(std::string name, std::vector<IpAddr> addrs) {
  for (const auto& a : addrs) ZT_ASSERT(host_of(a) == nullptr);  // addresses are unique
  const HostId id = HostId(hosts_.size() + 1);
  hosts_.push_back(std::make_unique<Host>(*this, id, std::move(name), std::move(addrs)));
  return *hosts_.back();
}

Host* World::host_of(const IpAddr& ip) {
  for (auto& h : hosts_)
    if (std::find(h->addrs_.begin(), h->addrs_.end(), ip) != h->addrs_.end()) return h.get();
  return nullptr;
}

Host& World::host(HostId id) {
  ZT_ASSERT(id >= 1 && id <= hosts_.size());
  return *hosts_[id - 1];
}

LinkParams World::link(HostId from, HostId to) const {
  auto it = links_.find({from, to});
  if (it != links_.end()) return it->second;
  return from == to ? options_.loopback : options_.link;
}

Duration World::delay(HostId from, HostId to) {
  LinkParams p = link(from, to);
  Duration d = p.latency;
  if (p.jitter.count() > 0) d += Duration(int64_t(rng_.below(uint64_t(p.jitter.count()) + 1)));
  return d;
}

void World::set_link(HostId a, HostId b, LinkParams params) {
  links_[{a, b}] = params;
  links_[{b, a}] = params;
}

void World::partition(HostId a, HostId b) {
  partition_one_way(a, b);
  partition_one_way(b, a);
}

void World::partition_one_way(HostId from, HostId to) {
  trace_.record("partition", now().time_since_epoch().count(), from, to);
  count_fault("partition");
  blocked_.insert({from, to});
}

void World::heal(HostId a, HostId b) {
  trace_.record("heal", now().time_since_epoch().count(), a, b);
  blocked_.erase({a, b});
  blocked_.erase({b, a});
  flush_held(a, b);
  flush_held(b, a);
}

void World::heal_all() {
  auto was = blocked_;
  blocked_.clear();
  trace_.record("heal_all", now().time_since_epoch().count(), was.size());
  for (auto [from, to] : was) flush_held(from, to);
}

void World::flush_held(HostId from, HostId to) {
  for (auto& [id, c] : conns_) {
    for (int i = 0; i < 2; ++i) {
      if (c->side[i].host != from || c->side[1 - i].host != to) continue;
      std::deque<Segment> held = std::move(c->held[i]);
      c->held[i].clear();
      for (auto& seg : held) TcpEngine::send(*this, *c, i, std::move(seg));
    }
  }
}

void World::reset_next_connection_at(HostId from, int side, uint64_t offset) {
  pending_resets_[from] = {side, offset};
}

void World::crash(HostId h) {
  Host& host = this->host(h);
  if (!host.up_) return;
  trace_.record("crash", now().time_since_epoch().count(), h);
  count_fault("crash");
  host.up_ = false;
  ++host.incarnation_;
  sched_.drop_owner(h);
  TcpEngine::crash(*this, h);
  UdpEngine::crash(*this, h);
  crash_packets(h);
  if (host.on_crash_) host.on_crash_();
  sched_.drop_owner(h);  // anything the teardown scheduled belongs to the dead process too
}

void World::restart(HostId h) {
  Host& host = this->host(h);
  if (host.up_) return;
  trace_.record("restart", now().time_since_epoch().count(), h);
  host.up_ = true;
  TcpEngine::restart(*this, h);
  if (host.on_restart_) host.on_restart_();
}

void World::jump_wall(HostId h, Duration delta) {
  trace_.record("jump_wall", now().time_since_epoch().count(), h, uint64_t(delta.count()));
  count_fault("wall_jump");
  host(h).wall_offset_ += delta;
}

void World::count_fault(std::string_view kind) {
  auto it = fault_counts_.find(kind);
  if (it == fault_counts_.end()) it = fault_counts_.emplace(std::string(kind), 0).first;
  ++it->second;
}

uint64_t World::buffered_bytes() const {
  uint64_t total = in_flight_bytes_;
  for (const auto& [id, c] : conns_) {
    for (int i = 0; i < 2; ++i) {
      total += c->side[i].rx.size();
      for (const auto& seg : c->held[i]) total += seg.bytes.size();
    }
  }
  return total;
}

World::Descriptors World::descriptors_of(HostId h) const {
  Descriptors d;
  for (const auto& [id, c] : conns_)
    for (const Side& s : c->side) d.streams += s.host == h && s.has_stream && !s.closed;
  for (const auto& [key, l] : listeners_) d.listeners += l->host == h && !l->closed;
  return d;
}

std::string World::describe_leftovers() const {
  std::string out;
  for (const auto& [id, c] : conns_) {
    out += "conn " + std::to_string(id) + " " + c->side[0].local.to_string() + " -> " + c->side[1].local.to_string();
    for (int i = 0; i < 2; ++i) {
      const Side& s = c->side[i];
      out += i == 0 ? " [client" : " [server";
      out += s.closed ? " closed" : " open";
      out += s.has_stream ? " stream" : "";
      out += " rx=" + std::to_string(s.rx.size()) + " unacked=" + std::to_string(s.unacked);
      out += s.fin_in ? " fin_in" : "";
      out += s.rst_in ? " rst_in" : "";
      out += "]";
    }
    out += "\n";
  }
  for (const auto& [key, l] : listeners_) out += "listener " + l->local.to_string() + "\n";
  return out;
}

}  // namespace zt::io::sim
