// The log filter: specs as upstream takes them, the access target on its own.
#include "app/log.h"

#include <gtest/gtest.h>

namespace zt::app::log {
namespace {

TEST(LogFilter, LevelsAndTheAccessTarget) {
  ASSERT_TRUE(set_spec("info"));
  EXPECT_TRUE(enabled(Level::info));
  EXPECT_FALSE(enabled(Level::debug));
  EXPECT_TRUE(enabled(Level::info, "access"));

  ASSERT_TRUE(set_spec("warn,access=info"));
  EXPECT_FALSE(enabled(Level::info));
  EXPECT_TRUE(enabled(Level::warn));
  EXPECT_TRUE(enabled(Level::info, "access"));
  EXPECT_EQ(spec(), "warn,access=info");

  ASSERT_TRUE(set_spec("access=off"));  // the default level stays what it was
  EXPECT_FALSE(enabled(Level::error, "access"));
  EXPECT_TRUE(enabled(Level::error));
  EXPECT_FALSE(enabled(Level::info));

  ASSERT_TRUE(set_spec("debug,hyper=off"));  // targets of no concern here are accepted
  EXPECT_TRUE(enabled(Level::debug));
  EXPECT_TRUE(enabled(Level::debug, "access"));
}

TEST(LogFilter, ABadSpecChangesNothing) {
  ASSERT_TRUE(set_spec("info"));
  EXPECT_FALSE(set_spec("loud"));
  EXPECT_FALSE(set_spec("access=loud,debug"));
  EXPECT_FALSE(set_spec(""));
  EXPECT_EQ(spec(), "info");
  EXPECT_FALSE(enabled(Level::debug));
}

}  // namespace
}  // namespace zt::app::log
