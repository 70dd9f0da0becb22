#include "io/acceptor.h"

#include "io/assert.h"
#include "io/async.h"

namespace zt {

Acceptor::Acceptor(Env& env, std::unique_ptr<Listener> listener, Serve serve, size_t connections_max)
    : env_(env), listener_(std::move(listener)), serve_(std::move(serve)), connections_max_(connections_max) {
  ZT_ASSERT(listener_);
  ZT_ASSERT(serve_);
  ZT_ASSERT(connections_max_ > 0);
}

Acceptor::~Acceptor() { scope_.clear(); }

void Acceptor::start() {
  ZT_ASSERT(!started_);  // one accept loop per listener
  started_ = true;
  if (!draining_) scope_.spawn(accept_loop());
}

void Acceptor::drain() {
  if (draining_) return;
  draining_ = true;
  listener_->close();  // the accept loop ends with `cancelled`
}

Task<void> Acceptor::accept_loop() {
  return io::accept_each(
      env_, *listener_,
      [this](StreamPtr s) {
        ++counters_.accepted;
        if (serving_ >= connections_max_) {
          // A peer that opens connections faster than they finish must not
          // grow memory without bound.
          ++counters_.refused_busy;
          s->abort();
          return;
        }
        if (budget_ && !budget_->try_acquire()) {
          ++counters_.refused_budget;
          s->abort();
          return;
        }
        scope_.spawn(counted(serve_(std::move(s)), serving_, budget_));
      },
      [this] { ++counters_.accept_errors; });
}

Task<void> Acceptor::counted(Task<void> task, size_t& serving, ConnectionBudget* budget) {
  // The budget's unit goes back however this frame ends (also destroyed
  // mid-way by a scope that clears).
  struct Hold {
    size_t& serving;
    ConnectionBudget* budget;
    ~Hold() {
      --serving;
      if (budget) budget->release();
    }
  } hold{serving, budget};
  ++serving;
  co_await task;
}

}  // namespace zt
