// Assertions that stay on in every build.
//
// ZT_ASSERT(cond) guards a contract inside the program (a caller broke a rule,
// an invariant no longer holds): it prints where and aborts. Input from peers,
// files or the control plane must never reach a ZT_ASSERT; validate it and
// return an error instead.
//
//   ZT_ASSERT(read_in_flight_ == false);   // at most one read at a time
#pragma once

#include <cstdio>
#include <cstdlib>

namespace zt::detail {
[[noreturn]] inline void assert_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "ZT_ASSERT failed: %s at %s:%d\n", expr, file, line);
  std::fflush(stderr);
  std::abort();
}
}  // namespace zt::detail

#define ZT_ASSERT(cond)                                                 \
  do {                                                                  \
    if (!(cond)) ::zt::detail::assert_failed(#cond, __FILE__, __LINE__); \
  } while (0)
