// Time as the core sees it: a monotonic clock and a wall clock, both behind
// the Clock interface so the simulator can run them on virtual time.
//
//   MonoTime start = env.clock.now();
//   ...
//   Duration spent = env.clock.now() - start;
//   bool expired = env.clock.wall_now() > cert.not_after;
#pragma once

#include <chrono>
#include <cstdint>

namespace zt {

using Duration = std::chrono::nanoseconds;
using namespace std::chrono_literals;

// A clock tag with no now(): time points on it come only from a Clock.
struct MonoTag {
  using rep = int64_t;
  using period = std::nano;
  using duration = Duration;
  using time_point = std::chrono::time_point<MonoTag, Duration>;
  static constexpr bool is_steady = true;
};
using MonoTime = MonoTag::time_point;
// Wall time on the system-clock epoch (UTC), for certificates and logs.
using WallTime = std::chrono::sys_time<Duration>;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic, never goes back; for timeouts and durations.
  virtual MonoTime now() const = 0;
  // Wall clock; may jump either way (NTP, or the simulator's skew faults).
  virtual WallTime wall_now() const = 0;
};

inline int64_t to_ms(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

}  // namespace zt
