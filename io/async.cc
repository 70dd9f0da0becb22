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

Task<void> accept_each(Env& env, Listener& l, std::function<void(StreamPtr)> on_stream,
                       std::function<void()> on_error) {
  for (;;) {
    Result<StreamPtr> s = co_await accept(l);
    if (!s) {
      if (s.code() == Errc::cancelled || s.code() == Errc::not_connected) co_return;  // closed
      if (on_error) on_error();
      co_await sleep(env.loop, std::chrono::milliseconds(10));
      continue;
    }
    on_stream(std::move(*s));
  }
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
  if (stop_) stop_->on_cancel([this] { op_->cancel(); });
}

Result<StreamPtr> ConnectAwaiter::await_resume() {
  if (stop_) stop_->clear();
  if (!*result_ && result_->code() == Errc::cancelled && timed_out_) {
    return Error(Errc::timed_out,
                 "connect to " + to_.to_string() + " timed out after " + std::to_string(to_ms(timeout_)) + "ms");
  }
  return std::move(*result_);
}

}  // namespace zt::io
