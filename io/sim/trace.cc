#include "io/sim/trace.h"

#include <cinttypes>

#include "io/rng.h"

namespace zt::io::sim {
namespace {

uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 33);
}

}  // namespace

void Trace::record(std::string_view what, int64_t time_ns, uint64_t a, uint64_t b, uint64_t c) {
  hash_ = mix(hash_, stable_hash(what));
  hash_ = mix(hash_, uint64_t(time_ns));
  hash_ = mix(hash_, a);
  hash_ = mix(hash_, b);
  hash_ = mix(hash_, c);
  ++records_;
  if (log_) {
    std::fprintf(log_, "%" PRIu64 " t=%" PRId64 " %.*s %" PRIu64 " %" PRIu64 " %" PRIu64 " hash=%016" PRIx64 "\n",
                 records_, time_ns, int(what.size()), what.data(), a, b, c, hash_);
  }
}

}  // namespace zt::io::sim
