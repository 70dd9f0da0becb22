#include "app/descriptors.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace zt::app {

uint64_t raise_descriptor_limit(Log& log) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    ZT_LOG(log, warn, "app", "cannot read the descriptor limit", {"error", std::strerror(errno)});
    return 1024;
  }
  const rlim_t before = lim.rlim_cur;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      lim = raised;
    } else {
      ZT_LOG(log, warn, "app", "cannot raise the descriptor limit", {"soft", uint64_t(before)},
             {"hard", uint64_t(lim.rlim_max)}, {"error", std::strerror(errno)});
    }
  }
  ZT_LOG(log, info, "app", "descriptor limit", {"before", uint64_t(before)}, {"now", uint64_t(lim.rlim_cur)});
  return lim.rlim_cur == RLIM_INFINITY ? UINT64_MAX / 4 : uint64_t(lim.rlim_cur);
}

uint64_t DescriptorBudget::connections_for(uint64_t limit, uint64_t workers, uint64_t dials_per_listener) {
  const uint64_t held = kReserved + workers * dials_per_listener;
  // A floor, so a small limit still serves; the limit is then the bound.
  return std::max<uint64_t>(64, limit > held ? (limit - held) / 2 : 0);
}

bool DescriptorBudget::try_acquire() {
  if (left_.fetch_sub(1, std::memory_order_relaxed) > 0) return true;
  left_.fetch_add(1, std::memory_order_relaxed);
  refused_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

}  // namespace zt::app
