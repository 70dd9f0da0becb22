// Seeded randomness with one independent stream per subsystem.
//
// A stream is derived from the root seed and the subsystem's name, not from
// draws made so far, so adding or removing one step of a simulated scenario
// does not shift every later draw of every other subsystem. The generator
// (xoshiro256**) and every distribution here are our own, so a seed means the
// same thing on every platform and standard library.
//
//   Rng lb = env.rng.stream("lb");
//   size_t pick = lb.below(endpoints.size());
#pragma once

#include <cstdint>
#include <string_view>

namespace zt {

class Rng {
 public:
  explicit Rng(uint64_t seed);

  uint64_t seed() const { return seed_; }
  // An independent generator for one subsystem (deterministic in seed+name).
  Rng stream(std::string_view subsystem) const;

  uint64_t next();
  uint64_t below(uint64_t bound);  // uniform in [0, bound); bound > 0
  uint64_t between(uint64_t lo, uint64_t hi);  // uniform in [lo, hi]
  double unit();                   // uniform in [0, 1)
  bool chance(double p);           // true with probability p

 private:
  uint64_t seed_;
  uint64_t s_[4];
};

// FNV-1a over bytes: a stable name hash for seeds and traces.
uint64_t stable_hash(std::string_view text);

}  // namespace zt
