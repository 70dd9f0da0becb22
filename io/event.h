// A one-shot event coroutines can wait for: set() wakes every waiter (later,
// from the loop, never inside set()), and waiting after set() does not wait.
// A waiter whose frame is destroyed while waiting simply leaves the list.
//
//   Event ready(env.loop);
//   co_await ready.wait();     // in one task
//   ready.set();               // in another
#pragma once

#include <coroutine>
#include <map>
#include <memory>

#include "io/loop.h"

namespace zt {

class Event {
  struct State {
    bool set = false;
    uint64_t next_id = 0;
    std::map<uint64_t, std::coroutine_handle<>> waiters;
  };

 public:
  explicit Event(Loop& loop) : loop_(loop), st_(std::make_shared<State>()) {}

  bool is_set() const { return st_->set; }
  void set() {
    if (st_->set) return;
    st_->set = true;
    for (const auto& [id, h] : st_->waiters) {
      loop_.post([st = st_, id = id] {
        auto it = st->waiters.find(id);
        if (it == st->waiters.end()) return;  // its frame is gone
        auto h = it->second;
        st->waiters.erase(it);
        h.resume();
      });
    }
  }

  class Awaiter {
   public:
    explicit Awaiter(std::shared_ptr<State> st) : st_(std::move(st)) {}
    Awaiter(Awaiter&&) = delete;
    ~Awaiter() {
      if (id_) st_->waiters.erase(id_);
    }
    bool await_ready() const noexcept { return st_->set; }
    void await_suspend(std::coroutine_handle<> h) {
      id_ = ++st_->next_id;
      st_->waiters.emplace(id_, h);
    }
    void await_resume() noexcept { id_ = 0; }

   private:
    std::shared_ptr<State> st_;
    uint64_t id_ = 0;
  };
  Awaiter wait() { return Awaiter(st_); }

 private:
  Loop& loop_;
  std::shared_ptr<State> st_;
};

}  // namespace zt
