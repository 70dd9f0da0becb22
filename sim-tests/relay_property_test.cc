// A rapidcheck stateful property over the relay scenario: random connections
// (sizes, slow clients, servers) interleaved with random faults (partitions
// both ways and one way, resets at byte offsets, crashes and restarts,
// wall-clock jumps, short I/O) and time passing. After a heal phase the
// scenario's invariants must hold: every end that saw a clean EOF got every
// byte in order, every connection ended (liveness), nothing is left over.
//
// The world's seed is drawn without shrinking; operations and faults are
// commands, so a failure shrinks to a minimal fault schedule. Rapidcheck
// prints the RC_PARAMS="reproduce=..." string that replays it.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <set>

#include "sim-tests/relay_scenario.h"

namespace zt::sim_tests {
namespace {

struct Model {
  uint64_t next_id = 1;
  std::set<int> down;  // crashed hosts: 1 = proxy, 2 = server 0, 3 = server 1
};

using Cmd = rc::state::Command<Model, RelayScenario>;

io::sim::Host& host_by_index(RelayScenario& s, int i) {
  switch (i) {
    case 0: return s.client();
    case 1: return s.proxy();
    case 2: return s.server(0);
    default: return s.server(1);
  }
}

struct Open : Cmd {
  size_t up = *rc::gen::oneOf(rc::gen::inRange<size_t>(0, 2000), rc::gen::inRange<size_t>(0, 300000));
  size_t down = *rc::gen::oneOf(rc::gen::inRange<size_t>(0, 2000), rc::gen::inRange<size_t>(0, 300000));
  int server = *rc::gen::inRange(0, 2);
  int pauses = *rc::gen::inRange(0, 4);
  int pause_ms = *rc::gen::inRange(0, 3000);
  void apply(Model& m) const override { ++m.next_id; }
  void run(const Model& m, RelayScenario& s) const override {
    s.open(ConnSpec{m.next_id, up, down, server, pauses, std::chrono::milliseconds(pause_ms)});
  }
  void show(std::ostream& os) const override {
    os << "Open(up=" << up << ", down=" << down << ", server=" << server << ", pauses=" << pauses << "x"
       << pause_ms << "ms)";
  }
};

struct Advance : Cmd {
  int ms = *rc::gen::inRange(1, 5000);
  void run(const Model&, RelayScenario& s) const override { s.world().run_for(std::chrono::milliseconds(ms)); }
  void show(std::ostream& os) const override { os << "Advance(" << ms << "ms)"; }
};

struct Partition : Cmd {
  int a = *rc::gen::inRange(0, 4);
  int b = *rc::gen::inRange(0, 4);
  bool one_way = *rc::gen::arbitrary<bool>();
  void checkPreconditions(const Model&) const override { RC_PRE(a != b); }
  void run(const Model&, RelayScenario& s) const override {
    auto ha = host_by_index(s, a).id(), hb = host_by_index(s, b).id();
    one_way ? s.world().partition_one_way(ha, hb) : s.world().partition(ha, hb);
  }
  void show(std::ostream& os) const override { os << (one_way ? "PartitionOneWay(" : "Partition(") << a << "," << b << ")"; }
};

struct HealAll : Cmd {
  void run(const Model&, RelayScenario& s) const override { s.world().heal_all(); }
  void show(std::ostream& os) const override { os << "HealAll"; }
};

struct ResetNext : Cmd {
  bool from_client = *rc::gen::arbitrary<bool>();
  int side = *rc::gen::inRange(0, 2);
  uint64_t offset = *rc::gen::inRange<uint64_t>(0, 200000);
  void run(const Model&, RelayScenario& s) const override {
    s.world().reset_next_connection_at(from_client ? s.client().id() : s.proxy().id(), side, offset);
  }
  void show(std::ostream& os) const override {
    os << "ResetNext(" << (from_client ? "client" : "proxy") << ", side=" << side << ", offset=" << offset << ")";
  }
};

struct Crash : Cmd {
  int host = *rc::gen::inRange(1, 4);
  void checkPreconditions(const Model& m) const override { RC_PRE(!m.down.count(host)); }
  void apply(Model& m) const override { m.down.insert(host); }
  void run(const Model&, RelayScenario& s) const override { s.world().crash(host_by_index(s, host).id()); }
  void show(std::ostream& os) const override { os << "Crash(" << host << ")"; }
};

struct Restart : Cmd {
  int host = *rc::gen::inRange(1, 4);
  void checkPreconditions(const Model& m) const override { RC_PRE(m.down.count(host) > 0); }
  void apply(Model& m) const override { m.down.erase(host); }
  void run(const Model&, RelayScenario& s) const override { s.world().restart(host_by_index(s, host).id()); }
  void show(std::ostream& os) const override { os << "Restart(" << host << ")"; }
};

struct ShortIo : Cmd {
  int percent = *rc::gen::inRange(0, 101);
  void run(const Model&, RelayScenario& s) const override { s.world().options().faults.short_io = percent / 100.0; }
  void show(std::ostream& os) const override { os << "ShortIo(" << percent << "%)"; }
};

struct WallJump : Cmd {
  int host = *rc::gen::inRange(0, 4);
  int hours = *rc::gen::inRange(-48, 49);
  void run(const Model&, RelayScenario& s) const override {
    s.world().jump_wall(host_by_index(s, host).id(), std::chrono::hours(hours));
  }
  void show(std::ostream& os) const override { os << "WallJump(" << host << ", " << hours << "h)"; }
};

RC_GTEST_PROP(RelayProperty, BytesArriveResetsPropagateNothingLeaks, ()) {
  const uint64_t seed = *rc::gen::noShrink(rc::gen::arbitrary<uint64_t>());
  RelayScenario scenario(seed, io::sim::WorldOptions{});
  rc::state::check(Model{}, scenario,
                   rc::state::gen::execOneOfWithArgs<Open, Open, Open, Advance, Advance, Partition, HealAll,
                                                     ResetNext, Crash, Restart, ShortIo, WallJump>());
  scenario.heal();
  std::vector<std::string> violations = scenario.finish();
  if (!violations.empty()) {
    std::string all = "world seed " + std::to_string(seed) + ":\n";
    for (const auto& v : violations) all += "  " + v + "\n";
    RC_FAIL(all);
  }
}

}  // namespace
}  // namespace zt::sim_tests
