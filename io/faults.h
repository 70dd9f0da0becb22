// Fault points in production code, in the manner of FoundationDB's BUGGIFY.
//
// A fault point names a rare path worth exercising (a short buffer, an early
// timeout, a spurious retry). In production FaultPoints is inert: fire()
// returns false. In simulation each named point is switched on for a seed
// with some probability and then fires with some probability, all drawn from
// the seed, so a failure replays.
//
//   if (ZT_BUGGIFY(env, "relay.tiny_buffer")) buf_bytes = 1;
#pragma once

#include <string_view>

namespace zt {

class FaultPoints {
 public:
  virtual ~FaultPoints() = default;
  virtual bool fire(std::string_view point) = 0;
};

class NoFaults final : public FaultPoints {
 public:
  bool fire(std::string_view) override { return false; }
};

}  // namespace zt

#define ZT_BUGGIFY(env, point) ((env).faults.fire(point))
