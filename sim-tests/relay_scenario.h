// A small mesh for relay scenarios on io/sim: a client host whose outbound
// traffic is captured to a relay on a proxy host, which forwards each
// connection to its original destination on one of two server hosts.
//
// Both the seeded swarm (relay_swarm.cc) and the rapidcheck property
// (relay_property_test.cc) drive it: they open connections, inject faults,
// heal, and then ask check() which invariants broke.
//
//   RelayScenario s(seed, options);
//   s.open({.id = 1, .up_bytes = 5000, .down_bytes = 70000, .server = 0});
//   s.world().partition(s.proxy().id(), s.server(0).id());
//   s.world().run_for(3s);
//   s.heal();
//   auto violations = s.finish();   // empty when every invariant holds
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "testing/relay.h"
#include "io/sim/world.h"
#include "testing/harness.h"

namespace zt::sim_tests {

using namespace zt::testing;

struct ConnSpec {
  uint64_t id = 0;
  size_t up_bytes = 0;    // client -> server
  size_t down_bytes = 0;  // server -> client
  int server = 0;         // 0 or 1
  int pauses = 0;         // the client sends in pauses+1 pieces, waiting between them
  Duration pause{};
};

// What one end of a connection saw.
struct EndView {
  bool started = false;   // the client connected / the server read the header
  bool done = false;
  bool crashed = false;   // its process died while it ran: nothing to check
  Result<void> wrote = ok();
  testing::ReadAll read;
};

class RelayScenario {
 public:
  static constexpr uint16_t kServerPort = 80;
  static constexpr uint16_t kRelayPort = 15001;

  RelayScenario(uint64_t seed, io::sim::WorldOptions options);
  ~RelayScenario();

  io::sim::World& world() { return world_; }
  io::sim::Host& client() { return *client_; }
  io::sim::Host& proxy() { return *proxy_; }
  io::sim::Host& server(int i) { return *servers_[size_t(i)]; }

  // Starts a client connection now.
  void open(const ConnSpec& spec);
  // Ends every fault: heals partitions, restarts crashed hosts, stops
  // per-seed fault rates.
  void heal();
  // Waits (virtual time) for every connection to end, tears the processes
  // down, and returns the invariants that did not hold.
  std::vector<std::string> finish(Duration liveness_limit = std::chrono::minutes(30));

  size_t opened() const { return specs_.size(); }

 private:
  struct ServerApp;
  struct RelayApp;

  Task<void> run_client(ConnSpec spec);
  void start_relay();
  void start_server(int i);
  bool all_done() const;
  void check_connection(const ConnSpec& spec, std::vector<std::string>& out) const;

  io::sim::World world_;
  io::sim::Host* client_;
  io::sim::Host* proxy_;
  io::sim::Host* servers_[2];
  std::map<uint64_t, ConnSpec> specs_;
  std::map<uint64_t, EndView> client_views_;
  std::map<uint64_t, EndView> server_views_;
  std::unique_ptr<RelayApp> relay_;
  std::unique_ptr<ServerApp> server_apps_[2];
  Scope clients_;  // last: client coroutines go first
};

// The header a client sends first, so the server knows the connection.
inline constexpr size_t kHeaderBytes = 16;

}  // namespace zt::sim_tests
