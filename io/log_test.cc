// The log's formats (upstream's plain and JSON lines, valid logfmt) and its
// filter (RUST_LOG's syntax).
#include "io/log.h"

#include <gtest/gtest.h>

namespace zt {
namespace {

WallTime at(int64_t unix_micros) { return WallTime(std::chrono::microseconds(unix_micros)); }

std::string line(LogFormat format, LogLevel level, std::string_view target, std::string_view msg, LogFields fields) {
  std::string out;
  append_log_line(out, format, at(1'764'860'687'123'456), level, target, msg, as_span(fields));
  return out;
}

TEST(Log, TimestampsAreRfc3339WithMicroseconds) {
  EXPECT_EQ(format_rfc3339_micros(at(0)), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_rfc3339_micros(at(1'764'860'687'123'456)), "2025-12-04T15:04:47.123456Z");
  EXPECT_EQ(format_rfc3339_micros(at(951'782'400'000'001)), "2000-02-29T00:00:00.000001Z");  // leap day
  // Sub-microsecond parts are cut, not rounded into the next second.
  EXPECT_EQ(format_rfc3339_micros(at(59'999'999) + std::chrono::nanoseconds(999)), "1970-01-01T00:00:59.999999Z");
}

TEST(Log, PlainLinesAreTabSeparatedWithLogfmtFields) {
  const Endpoint ep{*IpAddr::parse("10.0.0.1"), 4000};
  EXPECT_EQ(line(LogFormat::plain, LogLevel::info, "access", "connection complete",
                 {{"src.addr", ep}, {"dst.workload", "echo"}, {"bytes_sent", uint64_t{5}}, {"ok", true},
                  {"delta", int64_t{-3}}, {"duration", Duration(std::chrono::milliseconds(12))}}),
            "2025-12-04T15:04:47.123456Z\tinfo\taccess\tconnection complete\tsrc.addr=10.0.0.1:4000 "
            "dst.workload=\"echo\" bytes_sent=5 ok=true delta=-3 duration=\"12ms\"\n");
  EXPECT_EQ(line(LogFormat::plain, LogLevel::warn, "app", "no fields", {}),
            "2025-12-04T15:04:47.123456Z\twarn\tapp\tno fields\n");
}

TEST(Log, TextValuesAreEscaped) {
  // The line that was not valid logfmt before: quotes inside a value.
  EXPECT_EQ(line(LogFormat::plain, LogLevel::error, "app", "invalid configuration",
                 {{"error", "LOCAL_XDS_PATH=\"/nonexistent\": cannot be read"}}),
            "2025-12-04T15:04:47.123456Z\terror\tapp\tinvalid configuration\t"
            "error=\"LOCAL_XDS_PATH=\\\"/nonexistent\\\": cannot be read\"\n");
  std::string out;
  append_quoted(out, std::string_view("a\\b\nc\td\x01\x7f", 9));
  EXPECT_EQ(out, "\"a\\\\b\\nc\\td\\u0001\x7f\"");
}

TEST(Log, JsonLinesAreOneObjectEach) {
  const Endpoint ep{*IpAddr::parse("fd00::1"), 15008};
  EXPECT_EQ(line(LogFormat::json, LogLevel::debug, "hbone::pool", "said \"hi\"",
                 {{"peer", ep}, {"streams", 3}, {"name", "a\"b"}, {"fresh", false}}),
            "{\"level\":\"debug\",\"time\":\"2025-12-04T15:04:47.123456Z\",\"scope\":\"hbone::pool\","
            "\"message\":\"said \\\"hi\\\"\",\"peer\":\"[fd00::1]:15008\",\"streams\":3,\"name\":\"a\\\"b\","
            "\"fresh\":false}\n");
}

TEST(LogFilter, DefaultIsInfo) {
  LogFilter f;
  EXPECT_TRUE(f.enabled(LogLevel::info, "anything"));
  EXPECT_FALSE(f.enabled(LogLevel::debug, "anything"));
  EXPECT_FALSE(f.enabled(LogLevel::off, "anything"));
  EXPECT_EQ(f.to_string(), "info");
}

TEST(LogFilter, TargetDirectivesCoverTheirSubtargets) {
  auto f = LogFilter::parse("warn,hbone=debug,hbone::server=error,access=off");
  ASSERT_TRUE(f.ok()) << f.error().message();
  EXPECT_TRUE(f->enabled(LogLevel::debug, "hbone"));
  EXPECT_TRUE(f->enabled(LogLevel::debug, "hbone::pool"));
  EXPECT_FALSE(f->enabled(LogLevel::warn, "hbone::server"));  // the longer directive wins
  EXPECT_TRUE(f->enabled(LogLevel::error, "hbone::server"));
  EXPECT_FALSE(f->enabled(LogLevel::debug, "hbonex"));        // a prefix of a name is not a parent
  EXPECT_FALSE(f->enabled(LogLevel::error, "access"));
  EXPECT_FALSE(f->enabled(LogLevel::info, "proxy::outbound"));
  EXPECT_TRUE(f->enabled(LogLevel::warn, "proxy::outbound"));
  EXPECT_EQ(f->most_verbose(), LogLevel::debug);
  EXPECT_EQ(f->to_string(), "warn,access=off,hbone=debug,hbone::server=error");
}

TEST(LogFilter, UpstreamsCratePrefixAndBareTargets) {
  auto f = LogFilter::parse("ztunnel::proxy=debug,xds");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->enabled(LogLevel::debug, "proxy::outbound"));
  EXPECT_TRUE(f->enabled(LogLevel::trace, "xds::client"));  // a bare target: every level
  EXPECT_FALSE(f->enabled(LogLevel::debug, "tls"));
}

TEST(LogFilter, LaterDirectivesReplaceEarlierOnes) {
  auto base = LogFilter::parse("info,hbone=debug");
  auto added = LogFilter::parse("hbone=warn,access=off");
  ASSERT_TRUE(base.ok() && added.ok());
  LogFilter f = base->combined(*added);
  EXPECT_EQ(f.to_string(), "info,access=off,hbone=warn");
  EXPECT_EQ(base->combined(*LogFilter::parse("debug")).to_string(), "debug,hbone=debug");
  EXPECT_EQ(LogFilter::parse("debug,info")->to_string(), "info");
}

TEST(LogFilter, BadDirectivesAreErrorsNamingThem) {
  for (std::string_view bad : {"hbone=loud", "=debug", "verbose level", "a=\"b\""}) {
    auto f = LogFilter::parse(bad);
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_NE(f.error().detail.find("bad log directive"), std::string::npos) << f.error().detail;
  }
  EXPECT_TRUE(LogFilter::parse("").ok());
  EXPECT_TRUE(LogFilter::parse("DEBUG").ok());
}

}  // namespace
}  // namespace zt
