// Readiness: named blocks, released once, reported in registration order.
#include "core/control/readiness.h"

#include <gtest/gtest.h>

namespace zt::core::control {
namespace {

TEST(Readiness, ReadyOnceEveryBlockIsReleased) {
  Readiness r;
  std::vector<std::pair<std::string, size_t>> released;
  r.on_release([&](const std::string& name, size_t left) { released.emplace_back(name, left); });
  EXPECT_TRUE(r.ready());
  ReadyBlock listeners = r.block("listeners");
  ReadyBlock state = r.block("mesh state");
  {
    ReadyBlock certs = r.block("workload certificates");
    EXPECT_EQ(r.pending(), (std::vector<std::string>{"listeners", "mesh state", "workload certificates"}));
  }  // released by going out of scope
  EXPECT_EQ(r.pending(), (std::vector<std::string>{"listeners", "mesh state"}));
  state.release();
  state.release();  // a second release is nothing
  EXPECT_FALSE(state.held());
  ReadyBlock moved = std::move(listeners);
  EXPECT_FALSE(listeners.held());
  EXPECT_TRUE(moved.held());
  EXPECT_FALSE(r.ready());
  moved.release();
  EXPECT_TRUE(r.ready());
  EXPECT_EQ(released, (std::vector<std::pair<std::string, size_t>>{
                          {"workload certificates", 2}, {"mesh state", 1}, {"listeners", 0}}));
}

TEST(Readiness, RepeatedNamesAreListedOnceAndCountedEach) {
  Readiness r;
  ReadyBlock a = r.block("pod");
  ReadyBlock b = r.block("pod");
  EXPECT_EQ(r.pending(), std::vector<std::string>{"pod"});
  a.release();
  EXPECT_EQ(r.pending(), std::vector<std::string>{"pod"});
  b = ReadyBlock();  // assigning over a held block releases it
  EXPECT_TRUE(r.ready());
}

}  // namespace
}  // namespace zt::core::control
