#include "io/async.h"

namespace zt::io {

Task<Result<void>> write_all(Stream& s, ConstBytes buf) {
  while (!buf.empty()) {
    Result<size_t> n = co_await write_some(s, buf);
    if (!n) co_return n.error();
    ZT_ASSERT(*n >= 1 && *n <= buf.size());
    buf = buf.subspan(*n);
  }
  co_return ok();
}

void ConnectAwaiter::await_suspend(std::coroutine_handle<> h) {
  op_ = env_.net.connect(to_, opts_, [this, h](Result<StreamPtr> r) {
    if (timer_ != kNoTimer) env_.loop.cancel(timer_);
    timer_ = kNoTimer;
    result_.emplace(std::move(r));
    h.resume();
  });
  timer_ = env_.loop.run_after(timeout_, [this] {
    timer_ = kNoTimer;
    timed_out_ = true;
    op_->cancel();
  });
}

Result<StreamPtr> ConnectAwaiter::await_resume() {
  if (!*result_ && result_->code() == Errc::cancelled && timed_out_) {
    return Error(Errc::timed_out,
                 "connect to " + to_.to_string() + " timed out after " + std::to_string(to_ms(timeout_)) + "ms");
  }
  return std::move(*result_);
}

}  // namespace zt::io
