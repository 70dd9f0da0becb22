// Coroutines for proxy code: Task<T>, Scope (owner of detached tasks) and
// join (wait for several tasks).
//
// A Task is lazy: it starts when awaited and resumes its awaiter when done;
// a task that finishes without suspending does not nest a stack frame, so
// long runs of synchronous completions do not grow the stack. Destroying a
// Task destroys its frame and, through the frames it owns, everything it was
// waiting on; io objects drop their callbacks when destroyed, so a frame may
// be destroyed at any suspension point. Exceptions are not used: an exception
// escaping a task terminates the process.
//
//   Task<Result<size_t>> pump(Stream& s, MutableBytes buf) {
//     co_return co_await io::read(s, buf);
//   }
//   Scope scope;
//   scope.spawn(serve(listener));   // runs until done or scope is destroyed
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include "io/assert.h"

namespace zt {

template <class T>
class Task;

namespace detail {

struct PromiseBase {
  // Whether the awaiting coroutine is still inside Task::await_suspend. A task
  // that finishes there must not resume its awaiter (that would nest one
  // stack frame per synchronous completion, and compilers do not always turn
  // symmetric transfer into a tail call); await_suspend then returns false.
  enum class Phase : uint8_t { starting, finished_inline, awaited };

  std::coroutine_handle<> continuation = std::noop_coroutine();
  Phase phase = Phase::awaited;

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> done) noexcept {
      PromiseBase& p = done.promise();
      if (p.phase == Phase::starting) {
        p.phase = Phase::finished_inline;
        return std::noop_coroutine();
      }
      return p.continuation;
    }
    void await_resume() noexcept {}
  };

  std::suspend_always initial_suspend() noexcept { return {}; }
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { std::terminate(); }
};

template <class T>
struct Promise : PromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
};

template <>
struct Promise<void> : PromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  explicit Task(Handle h) : h_(h) {}
  Task(Task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  bool valid() const { return bool(h_); }
  bool done() const { return h_ && h_.done(); }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> awaiter) noexcept {
    ZT_ASSERT(h_ && !h_.done());
    auto& p = h_.promise();
    p.continuation = awaiter;
    p.phase = detail::PromiseBase::Phase::starting;
    h_.resume();
    if (p.phase == detail::PromiseBase::Phase::finished_inline) return false;
    p.phase = detail::PromiseBase::Phase::awaited;
    return true;
  }
  T await_resume() {
    if constexpr (!std::is_void_v<T>) return std::move(*h_.promise().value);
  }

 private:
  void reset() {
    if (h_) h_.destroy();
    h_ = {};
  }
  Handle h_;
};

namespace detail {
template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace detail

// Owns detached tasks. A task spawned here runs until it finishes (its frame
// is then freed) or until the Scope is destroyed (its frame is destroyed at
// its suspension point). The simulator relies on this to model a process
// crash: the process's Scope goes, and with it every coroutine it ran.
class Scope {
 public:
  Scope() = default;
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  ~Scope();

  // Starts the task now (runs it up to its first suspension).
  void spawn(Task<void> task);
  // Destroys every task still running, at its suspension point.
  void clear();
  size_t live() const { return live_; }

  struct RootPromise;

 private:
  friend struct RootPromise;
  RootPromise* head_ = nullptr;  // intrusive list of live roots
  size_t live_ = 0;
};

// Runs tasks concurrently and completes when all are done.
//   co_await join(copy(a, b), copy(b, a));
class JoinAwaiter;
JoinAwaiter join(std::vector<Task<void>> tasks);
template <class... Ts>
JoinAwaiter join(Task<void> first, Ts&&... rest);

class JoinAwaiter {
 public:
  explicit JoinAwaiter(std::vector<Task<void>> tasks);
  JoinAwaiter(JoinAwaiter&&) = delete;
  ~JoinAwaiter();

  bool await_ready() const noexcept { return tasks_.empty(); }
  bool await_suspend(std::coroutine_handle<> parent);
  void await_resume() noexcept {}

  struct HelperPromise;

 private:
  std::vector<Task<void>> tasks_;
  std::vector<std::coroutine_handle<>> helpers_;
  std::coroutine_handle<> parent_;
  size_t remaining_ = 0;
};

inline JoinAwaiter join(std::vector<Task<void>> tasks) { return JoinAwaiter(std::move(tasks)); }

// join as a Task of its own, to hand to whoever runs tasks.
inline Task<void> all(std::vector<Task<void>> tasks) { co_await join(std::move(tasks)); }
template <class... Ts>
Task<void> all(Task<void> first, Ts&&... rest) {
  std::vector<Task<void>> tasks;
  tasks.push_back(std::move(first));
  (tasks.push_back(std::forward<Ts>(rest)), ...);
  return all(std::move(tasks));
}
template <class... Ts>
JoinAwaiter join(Task<void> first, Ts&&... rest) {
  std::vector<Task<void>> tasks;
  tasks.push_back(std::move(first));
  (tasks.push_back(std::forward<Ts>(rest)), ...);
  return JoinAwaiter(std::move(tasks));
}

}  // namespace zt
