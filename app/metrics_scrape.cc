#include "app/metrics_scrape.h"

#include "io/async.h"
#include "io/event.h"

namespace zt::app {

// One scrape's wait: shared with the workers' replies, which may land after
// the scrape gave up (or after the scrape's connection went away).
struct MetricsScrape::Round {
  explicit Round(Loop& loop, size_t workers) : done(loop), left(workers) {}
  Event done;
  size_t left;
};

MetricsScrape::MetricsScrape(Env& control, std::vector<MetricsSource*> sources,
                             const core::metrics::Registry& control_registry, Duration wait_max)
    : env_(control),
      sources_(std::move(sources)),
      control_(control_registry),
      wait_max_(wait_max),
      latest_(std::make_shared<std::vector<core::metrics::Registry>>(sources_.size())) {
  // Before the sources run, their registries can be read from here.
  for (size_t i = 0; i < sources_.size(); ++i) {
    sources_[i]->copy_metrics([this, i](core::metrics::Registry r) { (*latest_)[i] = std::move(r); });
  }
}

MetricsScrape::~MetricsScrape() = default;

Task<std::string> MetricsScrape::render() {
  auto round = std::make_shared<Round>(env_.loop, sources_.size());
  if (sources_.empty()) round->done.set();
  Loop& control = env_.loop;
  for (size_t i = 0; i < sources_.size(); ++i) {
    // The reply crosses to the control loop before it touches anything.
    sources_[i]->copy_metrics([&control, round, latest = latest_, i](core::metrics::Registry r) {
      control.post([round, latest, i, r = std::move(r)]() mutable {
        (*latest)[i] = std::move(r);
        if (--round->left == 0) round->done.set();
      });
    });
  }
  const TimerId give_up = env_.loop.run_after(wait_max_, [round] { round->done.set(); });
  co_await round->done.wait();
  env_.loop.cancel(give_up);
  if (round->left > 0) ++stale_scrapes_;
  core::metrics::Registry all;
  all.merge(control_);
  for (const core::metrics::Registry& r : *latest_) all.merge(r);
  co_return all.render();
}

}  // namespace zt::app
