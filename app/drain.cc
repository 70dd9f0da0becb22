#include "app/drain.h"

#include "io/assert.h"

namespace zt::app {

Drain::Drain(Env& control, const std::vector<std::unique_ptr<Worker>>& workers, core::control::Readiness& readiness,
             Duration deadline, std::function<void()> on_drained)
    : env_(control), workers_(workers), readiness_(readiness), deadline_(deadline), on_drained_(std::move(on_drained)) {}

void Drain::begin(std::string_view reason) {
  if (draining_) return;
  draining_ = true;
  draining_block_ = readiness_.block("draining");
  ZT_LOG(env_.log, info, "drain", "draining", {"reason", reason}, {"deadline", deadline_},
         {"workers", workers_.size()});
  for (auto& w : workers_) w->drain(deadline_);
  if (finished_ == workers_.size()) on_drained_();
}

void Drain::worker_finished() {
  env_.loop.post([this] { finished_one(); });
}

void Drain::finished_one() {
  ++finished_;
  ZT_ASSERT(finished_ <= workers_.size());
  if (draining_ && finished_ == workers_.size()) {
    ZT_LOG(env_.log, info, "drain", "drained");
    on_drained_();
  }
}

}  // namespace zt::app
