#include "io/task.h"

namespace zt {

// --- Scope -------------------------------------------------------------

struct Scope::RootPromise {
  Scope* scope = nullptr;
  RootPromise* prev = nullptr;
  RootPromise* next = nullptr;

  struct Root {
    std::coroutine_handle<RootPromise> h;
  };
  Root get_return_object() noexcept { return {std::coroutine_handle<RootPromise>::from_promise(*this)}; }
  std::suspend_always initial_suspend() noexcept { return {}; }
  std::suspend_never final_suspend() noexcept { return {}; }
  void return_void() noexcept {}
  void unhandled_exception() noexcept { std::terminate(); }

  void link(Scope* s) {
    scope = s;
    next = s->head_;
    if (next) next->prev = this;
    s->head_ = this;
    ++s->live_;
  }
  void unlink() {
    if (!scope) return;
    if (prev) prev->next = next; else scope->head_ = next;
    if (next) next->prev = prev;
    --scope->live_;
    scope = nullptr;
    prev = next = nullptr;
  }
  ~RootPromise() { unlink(); }
};

}  // namespace zt

template <class... Args>
struct std::coroutine_traits<zt::Scope::RootPromise::Root, Args...> {
  using promise_type = zt::Scope::RootPromise;
};

namespace zt {
namespace {

Scope::RootPromise::Root run_root(Task<void> task) { co_await task; }

}  // namespace

void Scope::spawn(Task<void> task) {
  ZT_ASSERT(task.valid());
  auto root = run_root(std::move(task));
  root.h.promise().link(this);
  root.h.resume();  // may finish here; the frame then frees itself and unlinks
}

Scope::~Scope() { clear(); }

void Scope::clear() {
  while (head_) {
    RootPromise* first = head_;
    first->unlink();
    std::coroutine_handle<RootPromise>::from_promise(*first).destroy();
  }
}

// --- join ----------------------------------------------------------------

struct JoinAwaiter::HelperPromise {
  JoinAwaiter* join = nullptr;

  struct Helper {
    std::coroutine_handle<HelperPromise> h;
  };
  struct Final {
    bool await_ready() noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<HelperPromise> h) noexcept {
      JoinAwaiter* j = h.promise().join;
      // The last helper hands control to the parent; the parent may then
      // destroy the awaiter and with it this (already suspended) frame.
      return --j->remaining_ == 0 ? j->parent_ : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  Helper get_return_object() noexcept { return {std::coroutine_handle<HelperPromise>::from_promise(*this)}; }
  std::suspend_always initial_suspend() noexcept { return {}; }
  Final final_suspend() noexcept { return {}; }
  void return_void() noexcept {}
  void unhandled_exception() noexcept { std::terminate(); }
};

}  // namespace zt

template <class... Args>
struct std::coroutine_traits<zt::JoinAwaiter::HelperPromise::Helper, Args...> {
  using promise_type = zt::JoinAwaiter::HelperPromise;
};

namespace zt {
namespace {

JoinAwaiter::HelperPromise::Helper run_helper(Task<void>& task) { co_await task; }

}  // namespace

JoinAwaiter::JoinAwaiter(std::vector<Task<void>> tasks) : tasks_(std::move(tasks)) {}

JoinAwaiter::~JoinAwaiter() {
  for (auto h : helpers_) h.destroy();  // before tasks_, whose frames they await
}

bool JoinAwaiter::await_suspend(std::coroutine_handle<> parent) {
  parent_ = parent;
  // One extra count guards the start loop: no helper can resume the parent
  // (and so destroy this awaiter) before every helper has been started.
  remaining_ = tasks_.size() + 1;
  helpers_.reserve(tasks_.size());
  for (auto& t : tasks_) {
    auto helper = run_helper(t);
    helper.h.promise().join = this;
    helpers_.push_back(helper.h);
  }
  for (auto h : helpers_) h.resume();
  return --remaining_ != 0;  // all finished synchronously: do not suspend
}

}  // namespace zt
