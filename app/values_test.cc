// Tests for the setting-value parsers (durations, booleans, integers).
//
//   EXPECT_EQ(*parse_duration("1h30m"), 90min);
#include "app/values.h"

#include <gtest/gtest.h>

namespace zt::app {
namespace {

TEST(ParseDuration, AcceptsUpstreamForms) {
  EXPECT_EQ(*parse_duration("5m"), std::chrono::minutes(5));
  EXPECT_EQ(*parse_duration("24h"), std::chrono::hours(24));
  EXPECT_EQ(*parse_duration("10s"), std::chrono::seconds(10));
  EXPECT_EQ(*parse_duration("500ms"), std::chrono::milliseconds(500));
  EXPECT_EQ(*parse_duration("250us"), std::chrono::microseconds(250));
  EXPECT_EQ(*parse_duration("7ns"), std::chrono::nanoseconds(7));
  EXPECT_EQ(*parse_duration("2d"), std::chrono::hours(48));
  EXPECT_EQ(*parse_duration("1h30m"), std::chrono::minutes(90));
  EXPECT_EQ(*parse_duration("1m 30s"), std::chrono::seconds(90));
  EXPECT_EQ(*parse_duration("1.5h"), std::chrono::minutes(90));
  EXPECT_EQ(*parse_duration("10"), std::chrono::seconds(10));  // bare number: seconds
  EXPECT_EQ(*parse_duration(" 0s "), Duration::zero());
}

TEST(ParseDuration, RejectsGarbage) {
  for (const char* bad : {"", "   ", "abc", "5x", "m5", "5 m", "-5s", "1h-", "1..5s", ".", "5mm"}) {
    Result<Duration> r = parse_duration(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.code(), Errc::invalid_argument);
    }
  }
}

TEST(ParseDuration, RejectsTooLong) {
  EXPECT_FALSE(parse_duration("100000d").ok());
  EXPECT_FALSE(parse_duration(std::string(400, '9') + "s").ok());  // no throw, no overflow
}

TEST(ParseBool, OnlyTrueAndFalse) {
  EXPECT_TRUE(*parse_bool("true"));
  EXPECT_FALSE(*parse_bool("false"));
  for (const char* bad : {"", "TRUE", "1", "yes", "on", " true"}) EXPECT_FALSE(parse_bool(bad).ok()) << bad;
}

TEST(ParseUnsigned, DigitsWithinBound) {
  EXPECT_EQ(*parse_unsigned("0", 10), 0u);
  EXPECT_EQ(*parse_unsigned("65535", 65535), 65535u);
  EXPECT_EQ(*parse_unsigned("18446744073709551615", UINT64_MAX), UINT64_MAX);
  EXPECT_FALSE(parse_unsigned("65536", 65535).ok());
  EXPECT_FALSE(parse_unsigned("18446744073709551616", UINT64_MAX).ok());
  for (const char* bad : {"", "-1", "+1", "1 ", "0x10", "abc"}) EXPECT_FALSE(parse_unsigned(bad, 100).ok()) << bad;
}

}  // namespace
}  // namespace zt::app
