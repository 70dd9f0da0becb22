// The simulated network: hosts with IPv4/IPv6 addresses, links with latency
// and jitter, TCP-like byte streams with flow control, UDP, and the faults of
// docs/SIMULATION.md. Each host hands out an Env whose Network, Loop and Clock run
// on the one Scheduler, so the proxy core runs here unchanged.
//
//   World world(seed);
//   Host& a = world.add_host("client", {IpAddr::v4(10,0,0,1)});
//   Host& b = world.add_host("server", {IpAddr::v4(10,0,0,2)});
//   world.partition(a.id(), b.id());         // both ways, until heal
//   world.run_for(5s);
//
// Stream model (per direction): a write takes up to the free window (bytes
// sent but not yet read by the receiver, so a slow reader stalls the writer),
// the bytes arrive in order after the link latency, and the receiver's reads
// send acknowledgements back that reopen the window. A partition holds
// segments (TCP would retransmit) and releases them in order on heal; the
// handshake needs both directions open, else the SYN is retried (1 s, 2 s,
// 4 s, ...) until the connect fails with timed_out.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/env.h"
#include "io/sim/scheduler.h"
#include "io/sim/trace.h"

namespace zt::io::sim {

class World;
struct Conn;
struct ListenerState;
struct UdpState;

struct LinkParams {
  Duration latency = std::chrono::microseconds(200);
  Duration jitter = Duration(0);  // extra delay drawn uniformly in [0, jitter]
};

// Rates drawn per seed (swarm testing); all off by default.
struct FaultRates {
  double short_io = 0;        // a read or write moves only 1..n bytes
  double syn_drop = 0;        // a SYN is lost (the connect retries)
  double udp_loss = 0;        // a datagram is lost
  double conn_reset = 0;      // a new connection gets a RST at a random byte offset
  uint64_t conn_reset_offset_max = 256 * 1024;
  double buggify_enable = 0;  // a fault point is switched on for this seed
  double buggify_fire = 0.25; // a switched-on fault point fires
  // When not empty, only these points may be switched on (a swarm that
  // wants faults no connection has to pay for: late window updates, tiny
  // records, a server's early GOAWAY).
  std::vector<std::string> buggify_only;
};

struct WorldOptions {
  LinkParams link;                 // default for every pair of hosts
  LinkParams loopback{std::chrono::microseconds(10), Duration(0)};
  size_t window_bytes = 64 * 1024; // per direction: sent but unread
  int syn_retries = 6;             // then connect fails with timed_out
  size_t udp_queue_max = 256;
  FaultRates faults;
  // What core code logs (ZT_LOG) and where lines go: off unless a test sets
  // both. Lines carry the host's wall time and name, so they replay too.
  LogFilter log_filter = *LogFilter::parse("off");
  std::function<void(std::string_view line)> log_sink;
};

class Host;
class PacketListener;
class SimPacketSocket;
class SimPacketListener;
struct PacketListenerState;

// Fault points for one world: on/off per point per seed, then per firing.
class SimFaultPoints final : public FaultPoints {
 public:
  SimFaultPoints(World& world, uint64_t seed);
  bool fire(std::string_view point) override;
  // Points seen so far, with (enabled, times fired), in name order.
  const std::map<std::string, std::pair<bool, uint64_t>, std::less<>>& points() const { return points_; }

 private:
  World& world_;
  uint64_t seed_;
  Rng rng_;
  std::map<std::string, std::pair<bool, uint64_t>, std::less<>> points_;
};

class Host {
 public:
  Host(World& world, HostId id, std::string name, std::vector<IpAddr> addrs);
  ~Host();
  Host(const Host&) = delete;

  HostId id() const { return id_; }
  const std::string& name() const { return name_; }
  const std::vector<IpAddr>& addrs() const { return addrs_; }
  IpAddr addr(IpAddr::Family f) const;  // the first address of that family
  bool up() const { return up_; }
  Env& env() { return *env_; }

  // iptables-style outbound capture: connects from this host to another host
  // land on the local listener at `port`, with original_dst = where they were
  // going. Connects with SO_MARK `bypass_mark` are not captured (the proxy's
  // own upstream connections), as with ztunnel's mark 1337.
  void capture_outbound(uint16_t port, uint32_t bypass_mark = 1337);
  // The same, steering to a listener on another host (a node whose pods'
  // traffic a separate proxy host handles), so faults can hit that hop too.
  void capture_outbound_to(Endpoint proxy, uint32_t bypass_mark = 1337);
  // iptables-style inbound capture (ztunnel's 15006): connections arriving
  // at this host for any port but `except` land on the local listener at
  // `port`, with original_dst = where they were going. Connects marked
  // `bypass_mark` are not captured.
  void capture_inbound(uint16_t port, std::vector<uint16_t> except = {15001, 15006, 15008, 15080},
                       uint32_t bypass_mark = 1337);
  // Called by World::crash after the host's connections and events are gone
  // (destroy the process's objects here) and by World::restart (rebuild them).
  void on_crash(std::function<void()> fn) { on_crash_ = std::move(fn); }
  void on_restart(std::function<void()> fn) { on_restart_ = std::move(fn); }

 private:
  friend class World;
  friend class SimNetwork;
  friend struct TcpEngine;
  friend struct UdpEngine;
  class SimClock;
  class SimLoop;
  class SimLog;

  World& world_;
  HostId id_;
  std::string name_;
  std::vector<IpAddr> addrs_;
  bool up_ = true;
  uint64_t incarnation_ = 0;  // bumped by each crash
  Duration wall_offset_{};
  uint16_t next_port_ = 40000;
  std::optional<std::pair<Endpoint, uint32_t>> capture_;  // (where to, bypass mark); ip unspecified = here
  struct InboundCapture {
    uint16_t port;
    std::vector<uint16_t> except;
    uint32_t bypass_mark;
  };
  std::optional<InboundCapture> capture_in_;
  std::function<void()> on_crash_, on_restart_;
  std::unique_ptr<Clock> clock_;
  std::unique_ptr<Loop> loop_;
  std::unique_ptr<Network> net_;
  std::unique_ptr<Rng> rng_;
  std::unique_ptr<Log> log_;
  std::unique_ptr<Env> env_;
};

class World {
 public:
  explicit World(uint64_t seed, WorldOptions options = {});
  ~World();
  World(const World&) = delete;

  uint64_t seed() const { return seed_; }
  Scheduler& scheduler() { return sched_; }
  Trace& trace() { return trace_; }
  Rng& rng() { return rng_; }  // the world's own draws (jitter, fault rolls)
  WorldOptions& options() { return options_; }
  const WorldOptions& options() const { return options_; }
  SimFaultPoints& fault_points() { return fault_points_; }

  Host& add_host(std::string name, std::vector<IpAddr> addrs);
  // The name table hosts resolve against (Network::resolve), as a cluster's
  // DNS: "istiod.istio-system.svc" -> its IPs. Host names are not in it.
  void set_name(const std::string& name, std::vector<IpAddr> addrs) { names_[name] = std::move(addrs); }
  void remove_name(const std::string& name) { names_.erase(name); }
  const std::vector<IpAddr>* addresses_of(const std::string& name) const {
    auto it = names_.find(name);
    return it == names_.end() ? nullptr : &it->second;
  }
  Host* host_of(const IpAddr& ip);
  Host& host(HostId id);

  // --- in-pod mode (io/sim/packets.h) ---
  // A SOCK_SEQPACKET listener on host `h` at `path` (paths are world-wide).
  Result<std::unique_ptr<PacketListener>> listen_packets(HostId h, const std::string& path);
  // Host `h` as a network namespace (a pod's), for an agent to send.
  NetNamespacePtr net_namespace(HostId h);
  // From now on, Network::inside(h's namespace) fails: the pod was torn
  // down before ztunnel entered its namespace.
  void destroy_namespace(HostId h);

  // --- running ---
  MonoTime now() const { return sched_.now(); }
  void run_for(Duration d) { sched_.run_until(sched_.now() + d); }
  bool run_until(const std::function<bool()>& done, Duration limit) {
    return sched_.run_until(done, sched_.now() + limit);
  }

  // --- faults ---
  void set_link(HostId a, HostId b, LinkParams params);  // both directions; a == b: a's own loopback
  void partition(HostId a, HostId b);                    // both directions
  void partition_one_way(HostId from, HostId to);
  void heal(HostId a, HostId b);
  void heal_all();
  bool blocked(HostId from, HostId to) const { return blocked_.count({from, to}) > 0; }
  // Connects to this address are black-holed (no answer, not even RST).
  void blackhole(const IpAddr& ip) { blackholes_.insert(ip); }
  void clear_blackholes() { blackholes_.clear(); }
  // RST both ends of a connection once `side` (0 client, 1 server) has sent
  // `offset` bytes on it. Applies to the next connection opened from `from`.
  void reset_next_connection_at(HostId from, int side, uint64_t offset);
  void crash(HostId h);
  void restart(HostId h);
  void jump_wall(HostId h, Duration delta);

  // --- what is left (for leak checks after the heal phase) ---
  size_t live_connections() const { return conns_.size(); }
  size_t live_streams() const { return live_streams_; }
  size_t live_listeners() const { return listeners_.size(); }
  uint64_t buffered_bytes() const;  // unread, in flight and held
  // The descriptors host `h` holds now: connection ends its programs have
  // not closed, and open listeners. (Connects still in progress are not
  // counted: they end within their timeout.)
  struct Descriptors {
    size_t streams = 0, listeners = 0;
    size_t total() const { return streams + listeners; }
  };
  Descriptors descriptors_of(HostId h) const;
  std::string describe_leftovers() const;

  // Counters of faults that happened (for sweep reports).
  const std::map<std::string, uint64_t, std::less<>>& fault_counts() const { return fault_counts_; }
  void count_fault(std::string_view kind);

 private:
  friend class Host;
  friend class SimNetwork;
  friend class SimUdpSocket;
  friend class SimStream;
  friend class SimListener;
  friend class SimConnecting;
  friend struct TcpEngine;
  friend struct UdpEngine;
  friend class SimPacketSocket;
  friend class SimPacketListener;

  std::unique_ptr<Connecting> connect_packets(HostId from, const std::string& path, Network::PacketConnectCallback done);
  Result<std::unique_ptr<Network>> network_inside(const NetNamespacePtr& ns, std::optional<uint32_t> mark);
  void crash_packets(HostId h);

  LinkParams link(HostId from, HostId to) const;
  Duration delay(HostId from, HostId to);
  void flush_held(HostId from, HostId to);

  uint64_t seed_;
  WorldOptions options_;
  Trace trace_;
  Scheduler sched_;
  Rng rng_;
  SimFaultPoints fault_points_;
  std::vector<std::unique_ptr<Host>> hosts_;  // index = id - 1
  std::map<std::pair<HostId, HostId>, LinkParams> links_;
  std::set<std::pair<HostId, HostId>> blocked_;
  std::map<std::string, std::vector<IpAddr>> names_;
  std::set<IpAddr> blackholes_;
  std::map<HostId, std::pair<int, uint64_t>> pending_resets_;
  std::map<std::string, uint64_t, std::less<>> fault_counts_;

  // TCP and UDP state, keyed by stable ids (never by pointer).
  uint64_t next_conn_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::map<std::tuple<HostId, IpAddr, uint16_t>, ListenerState*> listeners_;
  std::map<std::tuple<HostId, IpAddr, uint16_t>, UdpState*> udp_;
  size_t live_streams_ = 0;
  // Packet sockets (keyed by creation order) and listeners (by path).
  uint64_t next_packet_id_ = 1;
  std::map<uint64_t, SimPacketSocket*> packet_ends_;
  std::map<std::string, PacketListenerState*> packet_listeners_;
  std::map<HostId, std::shared_ptr<bool>> namespaces_gone_;
  uint64_t in_flight_bytes_ = 0;  // data segments scheduled, not yet arrived
};

}  // namespace zt::io::sim
