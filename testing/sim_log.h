// ZT_SIM_LOG=<filter> (RUST_LOG's syntax: "debug", "hbone=debug,access=off")
// prints what core code logs in a simulated world, stamped with the host's
// simulated wall time and named by host, so a failing seed's story can be
// read next to its trace (ZT_SIM_TRACE=1). Tests may read the environment;
// the simulator itself never does.
//
//   io::sim::World world(seed);
//   testing::log_from_environment(world);
#pragma once

#include <cstdio>
#include <cstdlib>

#include "io/log.h"
#include "io/sim/world.h"

namespace zt::testing {

inline void log_from_environment(io::sim::World& world) {
  const char* spec = std::getenv("ZT_SIM_LOG");
  if (!spec || !*spec) return;
  auto filter = LogFilter::parse(spec);
  if (!filter) {
    std::fprintf(stderr, "ZT_SIM_LOG: %s\n", filter.error().detail.c_str());
    return;
  }
  world.options().log_filter = *filter;
  world.options().log_sink = [](std::string_view line) { std::fwrite(line.data(), 1, line.size(), stderr); };
}

}  // namespace zt::testing
