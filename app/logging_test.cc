// The binary's logging settings: RUST_LOG and LOG_FORMAT at start, and the
// /logging changes on top of them; and the process log's own rendering.
#include "app/logging.h"

#include <unistd.h>

#include <gtest/gtest.h>

namespace zt::app {
namespace {

TEST(Logging, StartsFromRustLogAndLogFormat) {
  auto plain = Logging::from_environment({});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->initial().to_string(), "info");
  EXPECT_EQ(plain->format(), LogFormat::plain);
  auto set = Logging::from_environment({{"RUST_LOG", "warn,hbone=debug"}, {"LOG_FORMAT", "json"}});
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->initial().to_string(), "warn,hbone=debug");
  EXPECT_EQ(set->format(), LogFormat::json);
}

TEST(Logging, BadValuesNameTheVariable) {
  auto bad_level = Logging::from_environment({{"RUST_LOG", "hbone=loud"}});
  ASSERT_FALSE(bad_level.ok());
  EXPECT_NE(bad_level.error().detail.find("RUST_LOG=\"hbone=loud\""), std::string::npos) << bad_level.error().detail;
  auto bad_format = Logging::from_environment({{"LOG_FORMAT", "xml"}});
  ASSERT_FALSE(bad_format.ok());
  EXPECT_EQ(bad_format.error().detail, "LOG_FORMAT=\"xml\": must be plain or json");
}

TEST(Logging, ChangesAddToTheCurrentFilterAndResetReturnsToTheStart) {
  auto logging = Logging::from_environment({{"RUST_LOG", "warn"}});
  ASSERT_TRUE(logging.ok());
  io::real::ProcessLog log(LogFormat::plain, -1);
  logging->apply(log);
  ASSERT_TRUE(logging->change(log, "hbone=debug", false).ok());
  ASSERT_TRUE(logging->change(log, "access=off", false).ok());
  EXPECT_EQ(log.filter().to_string(), "warn,access=off,hbone=debug");
  EXPECT_TRUE(log.enabled(LogLevel::debug, "hbone::pool"));
  EXPECT_FALSE(log.enabled(LogLevel::info, "proxy::outbound"));
  ASSERT_TRUE(logging->change(log, "", true).ok());
  EXPECT_EQ(log.filter().to_string(), "warn");
  EXPECT_FALSE(log.enabled(LogLevel::debug, "hbone::pool"));
  EXPECT_FALSE(logging->change(log, "x=loud", false).ok());
  EXPECT_EQ(log.filter().to_string(), "warn");
}

TEST(ProcessLog, WritesWholeLinesToItsDescriptor) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  {
    io::real::ProcessLog log(LogFormat::json, fds[1]);
    ZT_LOG(log, info, "app", "hello", {"n", 1});
    ZT_LOG(log, debug, "app", "not enabled");
  }
  close(fds[1]);
  char buf[512];
  const ssize_t n = read(fds[0], buf, sizeof(buf));
  close(fds[0]);
  ASSERT_GT(n, 0);
  const std::string out(buf, size_t(n));
  EXPECT_EQ(out.find("{\"level\":\"info\",\"time\":\""), 0u) << out;
  EXPECT_NE(out.find("\",\"scope\":\"app\",\"message\":\"hello\",\"n\":1}\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("not enabled"), std::string::npos);
}

}  // namespace
}  // namespace zt::app
