// The mesh swarm: per seed a random mesh running the real node proxy, random
// traffic, policies and faults, invariants checked against reference models
// (sim-tests/mesh_swarm_lib.h). One line per seed; a failing seed prints its
// violations and the line that replays it.
//
//   mesh_swarm --seeds 1-25            # a block (ctest runs 4, each twice)
//   mesh_swarm --seed 7 --trace t.log  # one seed with the event log
//   ZT_SIM_SEED=7 mesh_swarm           # the environment overrides the range
#include "sim-tests/mesh_swarm_lib.h"

int main(int argc, char** argv) {
  zt::testing::SwarmCli cli;
  if (!zt::testing::parse_swarm_cli("mesh_swarm", argc, argv, cli)) return 2;
  return zt::testing::run_swarm("mesh_swarm", argv[0], cli, [](uint64_t seed, std::FILE* trace) {
    return zt::sim_tests::swarm::run_mesh_swarm_seed(seed, trace);
  });
}
