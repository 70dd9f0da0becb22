// Harness over io/sim: three simulated hosts (client, proxy, server) with
// 200 us links, in one World with a fixed seed.
#pragma once

#include <cstdlib>

#include "io/sim/world.h"
#include "testing/harness.h"
#include "testing/sim_log.h"

namespace zt::testing {

template <IpAddr::Family F>
class SimHarness : public Harness {
 public:
  explicit SimHarness(uint64_t seed = 1, io::sim::WorldOptions opts = {}) : world_(seed, opts) {
    client_ = &world_.add_host("client", {ip(1)});
    proxy_ = &world_.add_host("proxy", {ip(2)});
    server_ = &world_.add_host("server", {ip(3)});
    blackhole_ = ip(99);
    world_.blackhole(blackhole_);
    // ZT_SIM_TRACE=1 prints every simulator event (tests may read the
    // environment; the simulator itself never does).
    if (const char* t = std::getenv("ZT_SIM_TRACE"); t && *t == '1') world_.trace().set_log(stderr);
    log_from_environment(world_);  // ZT_SIM_LOG=debug
  }

  io::sim::World& world() { return world_; }
  io::sim::Host& client_host() { return *client_; }
  io::sim::Host& proxy_host() { return *proxy_; }
  io::sim::Host& server_host() { return *server_; }

  Env& client() override { return client_->env(); }
  Env& proxy() override { return proxy_->env(); }
  Env& server() override { return server_->env(); }
  IpAddr client_ip() const override { return client_->addrs()[0]; }
  IpAddr proxy_ip() const override { return proxy_->addrs()[0]; }
  IpAddr server_ip() const override { return server_->addrs()[0]; }

  bool run(Task<void> task, Duration limit) override {
    return run_task(std::move(task), [&](const std::function<bool()>& done) { return world_.run_until(done, limit); });
  }
  bool run_until(const std::function<bool()>& done, Duration limit) override { return world_.run_until(done, limit); }
  size_t transport_buffer_bytes_max() const override { return 2 * world_.options().window_bytes; }
  void idle(Duration d) override { world_.run_for(d); }
  Endpoint unresponsive_endpoint() override { return Endpoint{blackhole_, 80}; }
  std::string leftovers() override {
    world_.run_for(std::chrono::seconds(1));  // let FINs and RSTs land
    return world_.describe_leftovers();
  }
  const char* name() const override { return F == IpAddr::Family::v4 ? "sim-v4" : "sim-v6"; }

 private:
  static IpAddr ip(uint8_t last) {
    if (F == IpAddr::Family::v4) return IpAddr::v4(10, 0, 0, last);
    uint8_t raw[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last};
    return IpAddr::v6_from_bytes(raw);
  }

  io::sim::World world_;
  io::sim::Host* client_;
  io::sim::Host* proxy_;
  io::sim::Host* server_;
  IpAddr blackhole_;
};

}  // namespace zt::testing
