// Awaitable forms of the io operations, for coroutine code in core/.
//
//   Result<size_t> n = co_await io::read(*stream, buf);
//   Result<void> w = co_await io::write_all(*stream, bytes);
//   Result<StreamPtr> s = co_await io::connect(env, dst, opts, 10s);
//   co_await io::sleep(env.loop, 100ms);
//
// Each awaiter lives in the awaiting coroutine's frame. If that frame is
// destroyed while suspended, the awaiter's destructor cancels its timer and
// the io object drops the callback (io/network.h), so nothing dangles.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "io/env.h"
#include "io/task.h"

namespace zt::io {

namespace detail {

// Adapts a callback-style operation: start(callback) begins it, the
// callback's argument becomes the result of co_await.
template <class R, class Start>
class CallbackAwaiter {
 public:
  explicit CallbackAwaiter(Start start) : start_(std::move(start)) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    start_([this, h](R r) {
      result_.emplace(std::move(r));
      h.resume();
    });
  }
  R await_resume() { return std::move(*result_); }

 private:
  Start start_;
  std::optional<R> result_;
};

template <class R, class Start>
CallbackAwaiter<R, Start> make_awaiter(Start start) {
  return CallbackAwaiter<R, Start>(std::move(start));
}

}  // namespace detail

inline auto read(Stream& s, MutableBytes buf) {
  return detail::make_awaiter<Result<size_t>>([&s, buf](auto done) { s.read(buf, std::move(done)); });
}

inline auto write_some(Stream& s, ConstBytes buf) {
  return detail::make_awaiter<Result<size_t>>([&s, buf](auto done) { s.write(buf, std::move(done)); });
}

inline auto fill(StreamTransfer& t, size_t max) {
  return detail::make_awaiter<Result<size_t>>([&t, max](auto done) { t.fill(max, std::move(done)); });
}

inline auto drain(StreamTransfer& t) {
  return detail::make_awaiter<Result<size_t>>([&t](auto done) { t.drain(std::move(done)); });
}

inline auto accept(Listener& l) {
  return detail::make_awaiter<Result<StreamPtr>>([&l](auto done) { l.accept(std::move(done)); });
}

// Writes every byte of buf (several writes when the stream takes prefixes).
Task<Result<void>> write_all(Stream& s, ConstBytes buf);

// Accepts until the listener is closed, handing each stream to `on_stream`.
// A transient accept error (out of descriptors, a reset before accept) calls
// `on_error` and backs off 10 ms instead of spinning.
Task<void> accept_each(Env& env, Listener& l, std::function<void(StreamPtr)> on_stream,
                       std::function<void()> on_error = {});

// A timer cancelled when this goes out of scope, including when the
// coroutine frame holding it is destroyed at a suspension point: a deadline
// whose callback touches the frame's objects never fires after them.
//
//   ScopedTimer deadline(env.loop, 10s, [s = stream.get()] { s->abort(); });
//   co_await io::read(*stream, buf);     // aborted if 10 s pass first
class ScopedTimer {
 public:
  ScopedTimer(Loop& loop, Duration delay, Callback fn)
      : loop_(loop), id_(loop.run_after(delay, [this, fn = std::move(fn)] {
          id_ = kNoTimer;
          fn();
        })) {}
  ~ScopedTimer() { cancel(); }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;
  void cancel() {
    if (id_ != kNoTimer) loop_.cancel(id_);
    id_ = kNoTimer;
  }

 private:
  Loop& loop_;
  TimerId id_;
};

class SleepAwaiter {
 public:
  SleepAwaiter(Loop& loop, Duration d) : loop_(loop), delay_(d) {}
  SleepAwaiter(SleepAwaiter&&) = delete;
  ~SleepAwaiter() {
    if (timer_ != kNoTimer) loop_.cancel(timer_);
  }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    timer_ = loop_.run_after(delay_, [this, h] {
      timer_ = kNoTimer;
      h.resume();
    });
  }
  void await_resume() noexcept {}

 private:
  Loop& loop_;
  Duration delay_;
  TimerId timer_ = kNoTimer;
};

inline SleepAwaiter sleep(Loop& loop, Duration d) { return SleepAwaiter(loop, d); }

// Lets one party end another's wait early: the waiting side registers
// what stopping means (cancel a connect), cancel() runs it once, at once.
// Whoever registers clears it before its own state goes.
//
//   io::Cancellation stop;
//   answer->on_cancel([&stop] { stop.cancel(); });       // the client reset
//   auto s = co_await io::connect(env, to, opts, 10s, &stop);   // Errc::cancelled
class Cancellation {
 public:
  void cancel() {
    if (cancelled_) return;
    cancelled_ = true;
    if (auto fn = std::exchange(fn_, nullptr)) fn();
  }
  bool cancelled() const { return cancelled_; }
  // Runs `fn` on cancel(), or at once if that already happened.
  void on_cancel(std::function<void()> fn) {
    if (cancelled_) return fn();
    fn_ = std::move(fn);
  }
  void clear() { fn_ = nullptr; }

 private:
  bool cancelled_ = false;
  std::function<void()> fn_;
};

// Connect bounded by a timeout: on expiry the connect is cancelled and the
// result is Errc::timed_out. With `stop`, stop.cancel() ends it early
// (Errc::cancelled).
class ConnectAwaiter {
 public:
  ConnectAwaiter(Env& env, const Endpoint& to, const SocketOptions& opts, Duration timeout,
                 Cancellation* stop = nullptr)
      : env_(env), to_(to), opts_(opts), timeout_(timeout), stop_(stop) {}
  ConnectAwaiter(ConnectAwaiter&&) = delete;
  ~ConnectAwaiter() {
    if (timer_ != kNoTimer) env_.loop.cancel(timer_);
    if (stop_) stop_->clear();
  }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  Result<StreamPtr> await_resume();

 private:
  Env& env_;
  Endpoint to_;
  SocketOptions opts_;
  Duration timeout_;
  Cancellation* stop_;
  std::unique_ptr<Connecting> op_;
  TimerId timer_ = kNoTimer;
  bool timed_out_ = false;
  std::optional<Result<StreamPtr>> result_;
};

inline ConnectAwaiter connect(Env& env, const Endpoint& to, const SocketOptions& opts, Duration timeout,
                              Cancellation* stop = nullptr) {
  return ConnectAwaiter(env, to, opts, timeout, stop);
}

// A host name's addresses (Network::resolve). Bounded by the resolver's
// own timeouts; a frame destroyed while waiting drops the lookup.
class ResolveAwaiter {
 public:
  ResolveAwaiter(Env& env, std::string host) : env_(env), host_(std::move(host)) {}
  ResolveAwaiter(ResolveAwaiter&&) = delete;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    op_ = env_.net.resolve(host_, [this, h](Result<std::vector<IpAddr>> r) {
      result_.emplace(std::move(r));
      h.resume();
    });
  }
  Result<std::vector<IpAddr>> await_resume() { return std::move(*result_); }

 private:
  Env& env_;
  std::string host_;
  std::unique_ptr<Resolving> op_;
  std::optional<Result<std::vector<IpAddr>>> result_;
};

inline ResolveAwaiter resolve(Env& env, std::string host) { return ResolveAwaiter(env, std::move(host)); }

}  // namespace zt::io
