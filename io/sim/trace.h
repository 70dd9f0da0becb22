// The simulator's trace: a running hash of every event it dispatches and every
// I/O operation it performs, plus an optional readable log.
//
// Two runs of one seed must end with the same hash; when they do not, the
// logs (one line per record, each with the hash so far) show the first record
// where they part.
//
//   Trace trace;
//   trace.set_log(stderr);
//   trace.record("tcp.write", conn_id, side, bytes);
//   printf("%016llx", trace.hash());
#pragma once

#include <cstdint>
#include <cstdio>
#include <string_view>

namespace zt::io::sim {

class Trace {
 public:
  void record(std::string_view what, int64_t time_ns, uint64_t a = 0, uint64_t b = 0, uint64_t c = 0);
  uint64_t hash() const { return hash_; }
  uint64_t records() const { return records_; }
  // Writes one line per record to out (not owned); nullptr turns it off.
  void set_log(std::FILE* out) { log_ = out; }

 private:
  uint64_t hash_ = 0x6a09e667f3bcc908ull;
  uint64_t records_ = 0;
  std::FILE* log_ = nullptr;
};

}  // namespace zt::io::sim
