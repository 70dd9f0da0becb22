// Seeded swarm runs of the relay scenario: each seed draws which fault kinds
// are on and how often (swarm testing), a load of connections and a fault
// schedule, heals, and checks the invariants of RelayScenario::finish().
//
// What it exercises, plainly: the test relay (testing/relay.h, which the
// binary does not run) over the simulated network, so the code under test is
// what every proxied connection of the binary goes through below the proxy:
// core/copy.h's copy_bidirectional (half-close, reset forwarding,
// backpressure, buffer growth and shrinking, the transfer path),
// io::connect's timeout, the Acceptor, and the io/sim stream model and fault
// kinds themselves. It runs no TLS, HTTP/2, pool, policy or routing code;
// those are swept by the HBONE property (core/hbone/hbone_property_test.cc)
// and the mesh scenarios (sim-tests/mesh_scenarios_test.cc).
//
//   relay_swarm --seeds 1-100            # run a range; exit 1 if any seed fails
//   relay_swarm --seeds 7 --trace t.log  # one seed with the readable event log
//   ZT_SIM_SEED=7 relay_swarm            # the environment overrides --seeds
//   relay_swarm --idle --seeds 1-5       # 100 mostly idle connections, no faults:
//                                        # the simulated-seconds-per-wall-second figure
//
// Prints one line per seed: "seed=N hash=H ...". A failing seed prints its
// violations and the line that replays it.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "sim-tests/relay_scenario.h"

namespace zt::sim_tests {
namespace {

struct Swarm {
  int connections;
  bool partitions, one_way, resets, crash_proxy, crash_servers, wall_jumps;
  double short_io, syn_drop, buggify, conn_reset, slow_clients;
  Duration jitter;
  int fault_events;
};

Swarm draw_swarm(Rng& r) {
  Swarm s;
  s.connections = int(r.between(10, 100));
  s.partitions = r.chance(0.5);
  s.one_way = r.chance(0.5);
  s.resets = r.chance(0.5);
  s.crash_proxy = r.chance(0.3);
  s.crash_servers = r.chance(0.4);
  s.wall_jumps = r.chance(0.3);
  s.short_io = r.chance(0.5) ? r.unit() * 0.5 : 0;
  s.syn_drop = r.chance(0.3) ? r.unit() * 0.3 : 0;
  s.buggify = r.chance(0.5) ? 0.5 : 0;
  s.conn_reset = r.chance(0.5) ? r.unit() * 0.3 : 0;
  s.slow_clients = r.chance(0.7) ? r.unit() : 0;
  s.jitter = r.chance(0.5) ? Duration(int64_t(r.below(5'000'000))) : Duration(0);
  s.fault_events = int(r.below(12));
  return s;
}

size_t draw_size(Rng& r) {
  switch (r.below(4)) {
    case 0: return 0;
    case 1: return r.below(2000);
    case 2: return r.below(64 * 1024);
    default: return r.below(600 * 1024);
  }
}

struct SeedResult {
  uint64_t hash = 0;
  std::vector<std::string> violations;
  double virtual_s = 0;
  double wall_s = 0;
  std::map<std::string, uint64_t, std::less<>> faults;
};

// Schedules one random fault at a random time in the first 20 s.
void schedule_fault(RelayScenario& s, const Swarm& sw, Rng& r) {
  io::sim::World& w = s.world();
  const MonoTime at = w.now() + Duration(int64_t(r.below(20'000'000'000ull)));
  const io::sim::HostId hosts[] = {s.client().id(), s.proxy().id(), s.server(0).id(), s.server(1).id()};
  const io::sim::HostId a = hosts[r.below(4)], b = hosts[r.below(4)];
  const Duration len = std::chrono::milliseconds(int64_t(100 + r.below(15000)));
  const uint64_t kind = r.below(6);
  if (kind == 0 && sw.partitions && a != b) {
    w.scheduler().at(at, io::sim::kNetwork, "swarm.partition", [&w, a, b] { w.partition(a, b); });
    w.scheduler().at(at + len, io::sim::kNetwork, "swarm.heal", [&w, a, b] { w.heal(a, b); });
  } else if (kind == 1 && sw.one_way && a != b) {
    w.scheduler().at(at, io::sim::kNetwork, "swarm.one_way", [&w, a, b] { w.partition_one_way(a, b); });
    w.scheduler().at(at + len, io::sim::kNetwork, "swarm.heal", [&w, a, b] { w.heal(a, b); });
  } else if (kind == 2 && sw.resets) {
    const io::sim::HostId from = r.chance(0.5) ? s.client().id() : s.proxy().id();
    const int side = int(r.below(2));
    const uint64_t offset = r.chance(0.5) ? r.below(4096) : r.below(300 * 1024);
    w.scheduler().at(at, io::sim::kNetwork, "swarm.reset",
                     [&w, from, side, offset] { w.reset_next_connection_at(from, side, offset); });
  } else if (kind == 3 && sw.crash_proxy) {
    const io::sim::HostId p = s.proxy().id();
    w.scheduler().at(at, io::sim::kNetwork, "swarm.crash", [&w, p] { w.crash(p); });
    w.scheduler().at(at + len, io::sim::kNetwork, "swarm.restart", [&w, p] { w.restart(p); });
  } else if (kind == 4 && sw.crash_servers) {
    const io::sim::HostId v = s.server(int(r.below(2))).id();
    w.scheduler().at(at, io::sim::kNetwork, "swarm.crash", [&w, v] { w.crash(v); });
    w.scheduler().at(at + len, io::sim::kNetwork, "swarm.restart", [&w, v] { w.restart(v); });
  } else if (kind == 5 && sw.wall_jumps) {
    const Duration jump = std::chrono::hours(int64_t(r.below(48)) - 24);
    w.scheduler().at(at, io::sim::kNetwork, "swarm.wall_jump", [&w, a, jump] { w.jump_wall(a, jump); });
  }
}

// 100 connections that each send 10 pieces 30 s apart: an idle-heavy mesh.
Swarm idle_profile() {
  Swarm s{};
  s.connections = 100;
  return s;
}

SeedResult run_seed(uint64_t seed, std::FILE* trace, bool idle) {
  Rng r = Rng(seed).stream("swarm");
  const Swarm sw = idle ? idle_profile() : draw_swarm(r);
  io::sim::WorldOptions opts;
  opts.faults.short_io = sw.short_io;
  opts.faults.syn_drop = sw.syn_drop;
  opts.faults.buggify_enable = sw.buggify;
  opts.faults.conn_reset = sw.conn_reset;
  opts.link.jitter = sw.jitter;
  const auto wall_start = std::chrono::steady_clock::now();
  RelayScenario s(seed, opts);
  if (trace) s.world().trace().set_log(trace);
  io::sim::World& w = s.world();
  for (int i = 0; i < sw.connections; ++i) {
    ConnSpec spec{uint64_t(i + 1), draw_size(r), draw_size(r), int(r.below(2))};
    if (idle) {
      spec.pauses = 9;
      spec.pause = std::chrono::seconds(30);
    } else if (r.chance(sw.slow_clients)) {
      spec.pauses = int(1 + r.below(4));
      spec.pause = std::chrono::milliseconds(int64_t(r.below(5000)));
    }
    const MonoTime at = w.now() + Duration(int64_t(r.below(10'000'000'000ull)));
    w.scheduler().at(at, io::sim::kNetwork, "swarm.open", [&s, spec] { s.open(spec); });
  }
  for (int i = 0; i < sw.fault_events; ++i) schedule_fault(s, sw, r);
  w.run_for(std::chrono::seconds(idle ? 400 : 40));  // every open and fault has happened
  s.heal();
  SeedResult out;
  out.violations = s.finish();
  out.hash = w.trace().hash();
  out.virtual_s = std::chrono::duration<double>(w.now().time_since_epoch()).count();
  out.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  out.faults = w.fault_counts();
  for (const auto& [name, state] : w.fault_points().points())
    if (state.second) out.faults["buggify:" + name] += state.second;
  return out;
}

bool parse_range(const char* text, uint64_t& lo, uint64_t& hi) {
  char* end = nullptr;
  lo = std::strtoull(text, &end, 10);
  if (end == text) return false;
  hi = lo;
  if (*end == '-') hi = std::strtoull(end + 1, &end, 10);
  return *end == '\0' && lo <= hi;
}

}  // namespace
}  // namespace zt::sim_tests

int main(int argc, char** argv) {
  using namespace zt::sim_tests;
  uint64_t lo = 1, hi = 10;
  const char* trace_path = nullptr;
  bool idle = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--seeds") && i + 1 < argc) {
      if (!parse_range(argv[++i], lo, hi)) {
        std::fprintf(stderr, "relay_swarm: bad --seeds '%s' (want N or A-B)\n", argv[i]);
        return 2;
      }
    } else if (!std::strcmp(argv[i], "--idle")) {
      idle = true;
    } else if (!std::strcmp(argv[i], "--trace") && i + 1 < argc) {
      trace_path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: relay_swarm [--seeds N|A-B] [--idle] [--trace FILE]\n");
      return 2;
    }
  }
  if (const char* env = std::getenv("ZT_SIM_SEED"); env && *env) {
    if (!parse_range(env, lo, hi)) {
      std::fprintf(stderr, "relay_swarm: bad ZT_SIM_SEED '%s'\n", env);
      return 2;
    }
  }
  std::FILE* trace = trace_path ? std::fopen(trace_path, "w") : nullptr;
  int failed = 0;
  double virtual_total = 0, wall_total = 0;
  std::map<std::string, uint64_t, std::less<>> faults;
  for (uint64_t seed = lo; seed <= hi; ++seed) {
    SeedResult r = run_seed(seed, trace, idle);
    virtual_total += r.virtual_s;
    wall_total += r.wall_s;
    for (const auto& [k, v] : r.faults) faults[k] += v;
    std::printf("seed=%" PRIu64 " hash=%016" PRIx64 " virtual=%.1fs wall=%.3fs %s\n", seed, r.hash, r.virtual_s,
                r.wall_s, r.violations.empty() ? "ok" : "FAIL");
    if (!r.violations.empty()) {
      ++failed;
      for (const auto& v : r.violations) std::printf("  violation: %s\n", v.c_str());
      std::printf("  replay: ZT_SIM_SEED=%" PRIu64 " ctest -L sim -R relay_swarm --output-on-failure\n", seed);
    }
  }
  if (trace) std::fclose(trace);
  std::printf("summary: %" PRIu64 " seeds, %d failed, %.0f simulated s per wall s\n", hi - lo + 1, failed,
              wall_total > 0 ? virtual_total / wall_total : 0.0);
  std::printf("faults:");
  for (const auto& [k, v] : faults) std::printf(" %s=%" PRIu64, k.c_str(), v);
  std::printf("\n");
  return failed ? 1 : 0;
}
