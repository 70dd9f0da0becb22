// Everything core code may use from the outside world, passed explicitly.
//
// There are no globals: a component receives an Env and takes time,
// randomness, I/O, fault points and its log from it. io/real builds one per thread
// over Asio; io/sim builds one per simulated host over the scheduler.
//
//   Relay relay(env, config);
//   env.loop.run_after(1s, ...);
#pragma once

#include "io/faults.h"
#include "io/log.h"
#include "io/loop.h"
#include "io/network.h"
#include "io/rng.h"
#include "io/time.h"

namespace zt {

struct Env {
  Clock& clock;
  Loop& loop;
  Network& net;
  Rng& rng;  // the root: subsystems take rng.stream("name")
  FaultPoints& faults;
  Log& log;  // ZT_LOG(env.log, debug, "hbone::pool", ...)
};

}  // namespace zt
