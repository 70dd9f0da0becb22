// The command line of a seeded swarm binary (sim-tests/mesh_swarm,
// tools/sim-sweep, tools/sim-determinism):
//
//   BIN --seeds 1-25          # a range; exit 1 if any seed fails
//   BIN --seed 7 --trace t    # one seed with the readable event log
//   ZT_SIM_SEED=7 BIN         # the environment overrides --seeds/--seed
//
// Each seed prints one line "seed=N hash=H virtual=..s wall=..s ok|FAIL"
// (tools/sim-determinism compares the hashes of two processes); a failing
// seed prints its violations and the line that replays it.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace zt::testing {

struct SwarmSeedResult {
  uint64_t hash = 0;
  std::vector<std::string> violations;
  double virtual_s = 0;
  double wall_s = 0;
  std::string stats;                                           // one short line of what the seed did
  std::map<std::string, uint64_t, std::less<>> faults;  // fault kinds and points that fired
};

struct SwarmCli {
  uint64_t lo = 1, hi = 10;
  const char* trace_path = nullptr;
  bool verbose = false;
};

inline bool parse_seed_range(const char* text, uint64_t& lo, uint64_t& hi) {
  char* end = nullptr;
  lo = std::strtoull(text, &end, 10);
  if (end == text) return false;
  hi = lo;
  if (*end == '-') hi = std::strtoull(end + 1, &end, 10);
  return *end == '\0' && lo <= hi;
}

// Parses argv; returns false (after printing usage) on a bad command line.
inline bool parse_swarm_cli(const char* name, int argc, char** argv, SwarmCli& cli) {
  for (int i = 1; i < argc; ++i) {
    if ((!std::strcmp(argv[i], "--seeds") || !std::strcmp(argv[i], "--seed")) && i + 1 < argc) {
      if (!parse_seed_range(argv[++i], cli.lo, cli.hi)) {
        std::fprintf(stderr, "%s: bad seed range '%s' (want N or LO-HI)\n", name, argv[i]);
        return false;
      }
    } else if (!std::strcmp(argv[i], "--trace") && i + 1 < argc) {
      cli.trace_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--verbose")) {
      cli.verbose = true;
    } else {
      std::fprintf(stderr, "usage: %s [--seeds LO-HI | --seed N] [--trace FILE] [--verbose]\n", name);
      return false;
    }
  }
  if (const char* env = std::getenv("ZT_SIM_SEED"); env && *env) {
    if (!parse_seed_range(env, cli.lo, cli.hi)) {
      std::fprintf(stderr, "%s: bad ZT_SIM_SEED '%s'\n", name, env);
      return false;
    }
  }
  return true;
}

// Runs every seed of the range through `run` and prints the per-seed lines,
// a summary and the fault counts. Returns the process exit code.
inline int run_swarm(const char* name, const char* binary, const SwarmCli& cli,
                     const std::function<SwarmSeedResult(uint64_t seed, std::FILE* trace)>& run) {
  std::FILE* trace = cli.trace_path ? std::fopen(cli.trace_path, "w") : nullptr;
  int failed = 0;
  double virtual_total = 0, wall_total = 0;
  std::map<std::string, uint64_t, std::less<>> faults;
  for (uint64_t seed = cli.lo; seed <= cli.hi; ++seed) {
    SwarmSeedResult r = run(seed, trace);
    virtual_total += r.virtual_s;
    wall_total += r.wall_s;
    for (const auto& [k, v] : r.faults) faults[k] += v;
    std::printf("seed=%" PRIu64 " hash=%016" PRIx64 " virtual=%.1fs wall=%.3fs %s%s%s\n", seed, r.hash, r.virtual_s,
                r.wall_s, r.violations.empty() ? "ok" : "FAIL", cli.verbose ? " " : "",
                cli.verbose ? r.stats.c_str() : "");
    if (!r.violations.empty()) {
      ++failed;
      size_t shown = 0;
      for (const auto& v : r.violations) {
        if (++shown > 20) {
          std::printf("  ... %zu violations in all\n", r.violations.size());
          break;
        }
        std::printf("  violation: %s\n", v.c_str());
      }
      std::printf("  %s\n", r.stats.c_str());
      std::printf("  replay: %s --seed %" PRIu64 "   (or ZT_SIM_SEED=%" PRIu64 " ctest -L sim -R %s)\n", binary, seed,
                  seed, name);
    }
    std::fflush(stdout);
  }
  if (trace) std::fclose(trace);
  std::printf("summary: %" PRIu64 " seeds, %d failed, %.0f simulated s per wall s, %.2f seeds per wall s\n",
              cli.hi - cli.lo + 1, failed, wall_total > 0 ? virtual_total / wall_total : 0.0,
              wall_total > 0 ? double(cli.hi - cli.lo + 1) / wall_total : 0.0);
  std::printf("faults:");
  for (const auto& [k, v] : faults) std::printf(" %s=%" PRIu64, k.c_str(), v);
  std::printf("\n");
  return failed ? 1 : 0;
}

}  // namespace zt::testing
