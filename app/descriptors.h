// File descriptors: the process limit raised to its hard limit at start (as
// upstream does), and the data path's share of it, so that running out is
// a counted refusal on the data ports, never a silent failure everywhere.
//
//   const uint64_t limit = raise_descriptor_limit(log);
//   DescriptorBudget budget(DescriptorBudget::connections_for(limit, workers, dials_per_listener));
//   inbound.set_budget(&budget);          // every data-path listener of every worker
#pragma once

#include <atomic>
#include <cstdint>

#include "io/acceptor.h"
#include "io/log.h"

namespace zt::app {

// Raises RLIMIT_NOFILE's soft limit to the hard one; returns the soft limit
// in force afterwards (unchanged, with a warning, if raising failed).
uint64_t raise_descriptor_limit(Log& log);

// Connections the data-path listeners may hold at once, shared by every
// worker (thread-safe). Refusals are counted for the metrics.
class DescriptorBudget final : public ConnectionBudget {
 public:
  // Descriptors kept back for the admin, stats and readiness ports, the
  // control plane's channels, logs and files.
  static constexpr uint64_t kReserved = 256;
  // What `limit` descriptors allow: each connection may hold two (its own
  // and its upstream: a dial, or a share of a pooled connection), and each
  // worker may have `dials_per_listener` dials of tunnels in flight over all
  // its listeners, pods' included (the worker's DialBudget, shared by them:
  // InboundConfig::shared_dials).
  static uint64_t connections_for(uint64_t limit, uint64_t workers, uint64_t dials_per_listener);

  explicit DescriptorBudget(uint64_t connections) : capacity_(connections), left_(int64_t(connections)) {}
  bool try_acquire() override;
  void release() override { left_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t capacity() const { return capacity_; }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  const uint64_t capacity_;
  std::atomic<int64_t> left_;
  std::atomic<uint64_t> refused_{0};
};

}  // namespace zt::app
