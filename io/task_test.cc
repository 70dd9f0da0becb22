#include "io/task.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace zt {
namespace {

// A one-shot gate: awaiting suspends until open() resumes the waiter.
struct Gate {
  std::coroutine_handle<> waiter;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) { waiter = h; }
  void await_resume() noexcept {}
  void open() {
    auto h = std::exchange(waiter, {});
    ASSERT_TRUE(h);
    h.resume();
  }
};

struct Tracker {
  std::vector<std::string>* log;
  std::string name;
  ~Tracker() { log->push_back("~" + name); }
};

Task<int> add_after(Gate& g, int a, int b) {
  co_await g;
  co_return a + b;
}

Task<int> immediate(int v) { co_return v; }

TEST(Task, ChainsValuesThroughAwaits) {
  Gate g;
  int result = 0;
  Scope scope;
  scope.spawn([](Gate& g, int& out) -> Task<void> {
    int x = co_await add_after(g, 2, 3);
    int y = co_await immediate(10);
    out = x + y;
  }(g, result));
  EXPECT_EQ(scope.live(), 1u);
  g.open();
  EXPECT_EQ(result, 15);
  EXPECT_EQ(scope.live(), 0u);
}

TEST(Task, LongSynchronousChainsDoNotGrowTheStack) {
  int total = 0;
  Scope scope;
  scope.spawn([](int& out) -> Task<void> {
    for (int i = 0; i < 200000; ++i) out += co_await immediate(1);
  }(total));
  EXPECT_EQ(total, 200000);
}

TEST(Scope, DestroyingTheScopeDestroysSuspendedFramesInnermostLast) {
  std::vector<std::string> log;
  Gate g;
  {
    Scope scope;
    scope.spawn([](Gate& g, std::vector<std::string>& log) -> Task<void> {
      Tracker outer{&log, "outer"};
      co_await [](Gate& g, std::vector<std::string>& log) -> Task<void> {
        Tracker inner{&log, "inner"};
        co_await g;
        log.push_back("never");
      }(g, log);
    }(g, log));
    EXPECT_EQ(scope.live(), 1u);
  }
  EXPECT_EQ(log, (std::vector<std::string>{"~inner", "~outer"}));
}

TEST(Join, WaitsForAllAndResumesOnce) {
  Gate a, b;
  std::vector<std::string> log;
  Scope scope;
  scope.spawn([](Gate& a, Gate& b, std::vector<std::string>& log) -> Task<void> {
    co_await join([](Gate& a, std::vector<std::string>& log) -> Task<void> {
                    co_await a;
                    log.push_back("a");
                  }(a, log),
                  [](Gate& b, std::vector<std::string>& log) -> Task<void> {
                    co_await b;
                    log.push_back("b");
                  }(b, log));
    log.push_back("joined");
  }(a, b, log));
  b.open();
  EXPECT_EQ(log, (std::vector<std::string>{"b"}));
  a.open();
  EXPECT_EQ(log, (std::vector<std::string>{"b", "a", "joined"}));
  EXPECT_EQ(scope.live(), 0u);
}

TEST(Join, AllSynchronousDoesNotSuspend) {
  int done = 0;
  Scope scope;
  scope.spawn([](int& done) -> Task<void> {
    co_await join([](int& d) -> Task<void> { ++d; co_return; }(done),
                  [](int& d) -> Task<void> { ++d; co_return; }(done));
    ++done;
  }(done));
  EXPECT_EQ(done, 3);
}

TEST(Join, DestroyedMidwayDestroysChildren) {
  std::vector<std::string> log;
  Gate a, b;
  {
    Scope scope;
    scope.spawn([](Gate& a, Gate& b, std::vector<std::string>& log) -> Task<void> {
      co_await join([](Gate& a, std::vector<std::string>& log) -> Task<void> {
                      Tracker t{&log, "a"};
                      co_await a;
                    }(a, log),
                    [](Gate& b, std::vector<std::string>& log) -> Task<void> {
                      Tracker t{&log, "b"};
                      co_await b;
                    }(b, log));
    }(a, b, log));
    a.open();  // a finishes; b stays suspended
    EXPECT_EQ(log, (std::vector<std::string>{"~a"}));
  }
  EXPECT_EQ(log, (std::vector<std::string>{"~a", "~b"}));
}

}  // namespace
}  // namespace zt
