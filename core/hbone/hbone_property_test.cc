// A rapidcheck stateful property over HBONE: random tunnels (sizes, bursts)
// through the pool, interleaved with faults (server crash and restart,
// partitions both ways, GOAWAY drains, time passing). After a heal phase:
// every tunnel ended; every tunnel that ended cleanly echoed every byte; the
// pool holds no connection that is dead or has nothing to do once idle
// connections are released; nothing is left in the simulated network.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include "testing/hbone_test_util.h"

namespace zt::core::hbone {
namespace {

using namespace zt::testing;

struct System {
  explicit System(uint64_t seed) : h(seed), w(h.client().clock.wall_now(), seed) {
    start_server();
    h.server_host().on_crash([this] { server.reset(); });
    h.server_host().on_restart([this] { start_server(); });
    pool = std::make_unique<Client>(h, w);
  }
  void start_server() { server = std::make_unique<HboneServerApp>(h, w); }

  HboneHarness h;
  testing::TlsWorld w;
  std::unique_ptr<HboneServerApp> server;
  std::unique_ptr<Client> pool;
  int failures = 0;  // tunnels that failed (allowed: faults were on)
  int corrupt = 0;   // clean ends with bytes missing (never allowed)
  int started = 0, finished = 0;
  Scope tunnels;
};

struct Model {
  bool server_down = false;
  bool partitioned = false;
};
using Cmd = rc::state::Command<Model, System>;

Task<void> tracked(System& s, size_t size, uint8_t salt, int& failures) {
  co_await round_trip(s.pool->pool, key_for(s.h), size, salt, failures, &s.corrupt);
  ++s.finished;
}

struct Open : Cmd {
  int count = *rc::gen::inRange(1, 60);
  size_t size = *rc::gen::inRange<size_t>(0, 200000);
  void run(const Model&, System& s) const override {
    for (int i = 0; i < count; ++i) {
      ++s.started;
      s.tunnels.spawn(tracked(s, size, uint8_t(i), s.failures));
    }
  }
  void show(std::ostream& os) const override { os << "Open(" << count << " x " << size << " bytes)"; }
};

struct Advance : Cmd {
  int ms = *rc::gen::inRange(1, 20000);
  void run(const Model&, System& s) const override { s.h.world().run_for(std::chrono::milliseconds(ms)); }
  void show(std::ostream& os) const override { os << "Advance(" << ms << "ms)"; }
};

struct CrashServer : Cmd {
  void checkPreconditions(const Model& m) const override { RC_PRE(!m.server_down); }
  void apply(Model& m) const override { m.server_down = true; }
  void run(const Model&, System& s) const override { s.h.world().crash(s.h.server_host().id()); }
  void show(std::ostream& os) const override { os << "CrashServer"; }
};

struct RestartServer : Cmd {
  void checkPreconditions(const Model& m) const override { RC_PRE(m.server_down); }
  void apply(Model& m) const override { m.server_down = false; }
  void run(const Model&, System& s) const override { s.h.world().restart(s.h.server_host().id()); }
  void show(std::ostream& os) const override { os << "RestartServer"; }
};

struct Partition : Cmd {
  bool one_way = *rc::gen::arbitrary<bool>();
  void checkPreconditions(const Model& m) const override { RC_PRE(!m.partitioned); }
  void apply(Model& m) const override { m.partitioned = true; }
  void run(const Model&, System& s) const override {
    auto c = s.h.client_host().id(), v = s.h.server_host().id();
    one_way ? s.h.world().partition_one_way(c, v) : s.h.world().partition(c, v);
  }
  void show(std::ostream& os) const override { os << (one_way ? "PartitionOneWay" : "Partition"); }
};

struct Heal : Cmd {
  void checkPreconditions(const Model& m) const override { RC_PRE(m.partitioned); }
  void apply(Model& m) const override { m.partitioned = false; }
  void run(const Model&, System& s) const override { s.h.world().heal_all(); }
  void show(std::ostream& os) const override { os << "Heal"; }
};

struct Drain : Cmd {
  void checkPreconditions(const Model& m) const override { RC_PRE(!m.server_down); }
  void run(const Model&, System& s) const override {
    // The old process drains (GOAWAY) and a new one takes over the port.
    s.server->server->drain();
    auto old = std::move(s.server);
    s.start_server();
    s.h.world().scheduler().after(std::chrono::minutes(2), io::sim::kNetwork, "prop.retire",
                                  [o = std::shared_ptr<HboneServerApp>(std::move(old))]() mutable { o.reset(); });
  }
  void show(std::ostream& os) const override { os << "Drain"; }
};

RC_GTEST_PROP(HboneProperty, TunnelsEndBytesEchoAndThePoolHoldsNothingDead, ()) {
  const uint64_t seed = *rc::gen::noShrink(rc::gen::arbitrary<uint64_t>());
  System s(seed);
  rc::state::check(Model{}, s,
                   rc::state::gen::execOneOfWithArgs<Open, Open, Advance, Advance, CrashServer, RestartServer, Partition,
                                                     Heal, Drain>());
  // Heal phase: faults off, the server up.
  s.h.world().heal_all();
  s.h.world().restart(s.h.server_host().id());
  const bool ended = s.h.run_until([&] { return s.finished == s.started; }, std::chrono::minutes(10));
  RC_ASSERT(ended);
  RC_ASSERT(s.corrupt == 0);
  // A healthy, healed system: new tunnels all work, on whatever the pool kept.
  std::vector<Task<void>> fresh;
  int fresh_failures = 0;
  for (int i = 0; i < 20; ++i) fresh.push_back(round_trip(s.pool->pool, key_for(s.h), 3000, uint8_t(i), fresh_failures));
  RC_ASSERT(s.h.run(all(std::move(fresh)), std::chrono::minutes(2)));
  RC_ASSERT(fresh_failures == 0);
  // Idle release empties the pool; nothing dead lingers.
  s.h.world().run_for(std::chrono::minutes(8));
  RC_ASSERT(s.pool->pool.connections() == 0u);
  s.tunnels.clear();
  s.pool.reset();
  s.server.reset();
  s.h.world().run_for(std::chrono::seconds(5));
  RC_ASSERT(s.h.world().live_connections() == 0u);
}

}  // namespace
}  // namespace zt::core::hbone
