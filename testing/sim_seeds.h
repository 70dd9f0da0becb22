// The seeds a seeded simulation test runs, and the line that replays one.
//
//   for (uint64_t seed : sim_seeds(20)) {
//     SCOPED_TRACE(replay(seed));   // every failure names its seed
//     ...
//   }
//
//   default             1..count
//   ZT_SIM_SEED=N       just N (replay a failure)
//   ZT_SIM_SEEDS=LO-HI  LO..HI (how tools/sim-sweep sweeps gtest properties)
//
// The environment is read here, in test support, never in the code under
// test (which gets its seed through the simulated world).
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace zt::testing {

// True when the environment chose the seeds: aggregate checks that assume
// the default 1..count (figures over every seed) skip themselves then.
inline bool sim_seeds_chosen() {
  for (const char* name : {"ZT_SIM_SEED", "ZT_SIM_SEEDS"}) {
    if (const char* env = std::getenv(name); env && *env) return true;
  }
  return false;
}

inline std::vector<uint64_t> sim_seeds(uint64_t count) {
  if (const char* env = std::getenv("ZT_SIM_SEED"); env && *env) return {std::strtoull(env, nullptr, 10)};
  uint64_t lo = 1, hi = count;
  if (const char* env = std::getenv("ZT_SIM_SEEDS"); env && *env) {
    char* end = nullptr;
    lo = std::strtoull(env, &end, 10);
    hi = (end && *end == '-') ? std::strtoull(end + 1, nullptr, 10) : lo;
    if (hi < lo) {
      std::fprintf(stderr, "ZT_SIM_SEEDS=%s: want LO-HI\n", env);
      std::abort();
    }
  }
  std::vector<uint64_t> seeds;
  for (uint64_t s = lo; s <= hi; ++s) seeds.push_back(s);
  return seeds;
}

inline std::string replay(uint64_t seed) {
  char line[64];
  std::snprintf(line, sizeof(line), "replay: ZT_SIM_SEED=%" PRIu64, seed);
  return line;
}

}  // namespace zt::testing
