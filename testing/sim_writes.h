// Counts the transport writes of simulated TCP connections, from the
// simulator's trace ("tcp.write.done <conn> <side> <bytes>"): for tests that
// check how many sends a protocol exchange takes. Also counts timer firings
// ("loop.timer <seq> <host>"), for tests that check a host stays quiet.
//
//   SimWrites writes(h.world());
//   ... run ...
//   EXPECT_EQ(writes.by_side(SimWrites::kClient).size(), 2u);
//   EXPECT_EQ(writes.timers_fired(h.client_host().id()), 0u);
#pragma once

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "io/sim/world.h"

namespace zt::testing {

class SimWrites {
 public:
  static constexpr uint64_t kClient = 0, kServer = 1;  // the connecting side, the accepting side

  explicit SimWrites(io::sim::World& w) : w_(w) {
    log_ = open_memstream(&buf_, &len_);
    w_.trace().set_log(log_);
  }
  ~SimWrites() {
    w_.trace().set_log(nullptr);
    std::fclose(log_);
    std::free(buf_);
  }
  SimWrites(const SimWrites&) = delete;

  // The sizes of the completed writes by one side, over every connection, in
  // order (a failed write shows as 1000 + its error code).
  std::vector<size_t> by_side(uint64_t side) {
    std::fflush(log_);
    std::vector<size_t> out;
    const std::string text(buf_, len_);
    size_t at = 0;
    while ((at = text.find(" tcp.write.done ", at)) != std::string::npos) {
      uint64_t conn = 0, s = 0, bytes = 0;
      at += std::strlen(" tcp.write.done ");
      if (std::sscanf(text.c_str() + at, "%" SCNu64 " %" SCNu64 " %" SCNu64, &conn, &s, &bytes) == 3 && s == side) {
        out.push_back(size_t(bytes));
      }
    }
    return out;
  }

  // Timers (Loop::run_after) that fired on one host.
  size_t timers_fired(uint64_t host) {
    std::fflush(log_);
    size_t n = 0;
    const std::string text(buf_, len_);
    size_t at = 0;
    while ((at = text.find(" loop.timer ", at)) != std::string::npos) {
      uint64_t seq = 0, owner = 0;
      at += std::strlen(" loop.timer ");
      if (std::sscanf(text.c_str() + at, "%" SCNu64 " %" SCNu64, &seq, &owner) == 2 && owner == host) ++n;
    }
    return n;
  }

 private:
  io::sim::World& w_;
  std::FILE* log_ = nullptr;
  char* buf_ = nullptr;
  size_t len_ = 0;
};

}  // namespace zt::testing
