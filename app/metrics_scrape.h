// One Prometheus scrape across the control thread and the workers, without
// blocking the control loop (which also answers the kubelet's readiness
// probe): each worker is asked for a copy of its registry, taken on its own
// thread and posted back; the scrape waits up to `wait_max` for them,
// asynchronously, then renders the merge. A worker that did not answer in
// time (busy, or its loop ended) contributes its previous copy, so counters
// never look reset.
//
//   MetricsScrape scrape(control_env, workers, control_registry);
//   stats_routes([&] { return scrape.render(); });
#pragma once

#include <memory>
#include <vector>

#include <functional>

#include "core/metrics/registry.h"
#include "io/env.h"
#include "io/task.h"

namespace zt::app {

// A registry that lives on another thread (a worker): it hands a copy of
// itself to `reply`, on its own thread, or never (its loop ended).
class MetricsSource {
 public:
  virtual ~MetricsSource() = default;
  virtual void copy_metrics(std::function<void(core::metrics::Registry)> reply) = 0;
};

class MetricsScrape {
 public:
  static constexpr Duration kWaitMax = std::chrono::seconds(1);

  // `sources` must not run yet: their first copies are taken here.
  MetricsScrape(Env& control, std::vector<MetricsSource*> sources, const core::metrics::Registry& control_registry,
                Duration wait_max = kWaitMax);
  ~MetricsScrape();

  // On the control loop.
  Task<std::string> render();
  // Scrapes in which some worker's copy was stale (for tests and logs).
  uint64_t stale_scrapes() const { return stale_scrapes_; }

 private:
  struct Round;

  Env& env_;
  std::vector<MetricsSource*> sources_;
  const core::metrics::Registry& control_;
  const Duration wait_max_;
  // Each worker's latest copy, written only on the control loop.
  std::shared_ptr<std::vector<core::metrics::Registry>> latest_;
  uint64_t stale_scrapes_ = 0;
};

}  // namespace zt::app
