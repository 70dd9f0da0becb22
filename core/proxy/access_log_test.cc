// The access log line: field names and order, quoting, what is left out,
// and the start record's identities (mutual TLS only).
#include "core/proxy/access_log.h"
#include "core/proxy/traffic_metrics.h"

#include <gtest/gtest.h>

namespace zt::core::proxy {
namespace {

ConnectionRecord sample() {
  ConnectionRecord r;
  r.direction = Direction::outbound;
  r.src = Endpoint{IpAddr::v4(10, 0, 1, 1), 40000};
  r.src_workload = "client";
  r.src_namespace = "default";
  r.src_identity = "spiffe://cluster.local/ns/default/sa/client";
  r.dst = Endpoint{IpAddr::v4(10, 0, 2, 1), 15008};
  r.hbone_addr = "10.0.2.1:8080";
  r.dst_service = "server.default.svc.cluster.local";
  r.dst_workload = "server";
  r.dst_namespace = "default";
  r.dst_identity = "spiffe://cluster.local/ns/default/sa/server";
  r.bytes_sent = 5;
  r.bytes_recv = 7;
  r.duration = std::chrono::microseconds(12'900);
  return r;
}

TEST(AccessLog, ACompletedConnectionIsOneLineWithUpstreamsFields) {
  EXPECT_EQ(format_access_log(sample()),
            "src.addr=10.0.1.1:40000 src.workload=\"client\" "
            "src.namespace=\"default\" src.identity=\"spiffe://cluster.local/ns/default/sa/client\" "
            "dst.addr=10.0.2.1:15008 dst.hbone_addr=\"10.0.2.1:8080\" dst.service=\"server.default.svc.cluster.local\" "
            "dst.workload=\"server\" dst.namespace=\"default\" "
            "dst.identity=\"spiffe://cluster.local/ns/default/sa/server\" direction=\"outbound\" bytes_sent=5 "
            "bytes_recv=7 duration=\"12ms\"");
}

TEST(AccessLog, AFailureSaysWhyAndCarriesItsFlag) {
  ConnectionRecord r;
  r.direction = Direction::inbound;
  r.src = Endpoint{IpAddr::v4(10, 0, 3, 1), 5555};
  r.dst = Endpoint{IpAddr::v4(10, 0, 2, 1), 8080};
  r.dst_workload = "server";
  r.error = "connection closed due to policy rejection: \"deny\"\n";
  r.response_flags = "DENY";
  EXPECT_EQ(format_access_log(r),
            "src.addr=10.0.3.1:5555 dst.addr=10.0.2.1:8080 "
            "dst.workload=\"server\" direction=\"inbound\" bytes_sent=0 bytes_recv=0 duration=\"0ms\" "
            "response_flags=\"DENY\" error=\"connection closed due to policy rejection: \\\"deny\\\"\\n\"");
}

TEST(AccessLog, Ipv6AddressesAreBracketed) {
  ConnectionRecord r = sample();
  r.src = Endpoint{*IpAddr::parse("fd00::1"), 1};
  EXPECT_EQ(format_access_log(r).find("src.addr=[fd00::1]:1 "), 0u);
}

TEST(AccessLog, EscapesEveryControlByteWhereverItIs) {
  ConnectionRecord r;
  r.src = Endpoint{IpAddr::v4(10, 0, 3, 1), 1};
  r.dst = Endpoint{IpAddr::v4(10, 0, 2, 1), 2};
  r.error = std::string("\x01") + "a\\b\tc\rd" + "\x1f" + "plain tail";  // apart: \x escapes are greedy
  EXPECT_NE(format_access_log(r).find(" error=\"\\u0001a\\\\b\\tc\\rd\\u001fplain tail\""), std::string::npos)
      << format_access_log(r);
  r.error = "\"";  // nothing but an escape
  EXPECT_NE(format_access_log(r).find(" error=\"\\\"\""), std::string::npos) << format_access_log(r);
}

TEST(AccessLog, LargeByteCountsAndDurationsAreExact) {
  ConnectionRecord r = sample();
  r.bytes_sent = 18'446'744'073'709'551'615u;
  r.bytes_recv = 0;
  r.duration = std::chrono::hours(100);
  const std::string line = format_access_log(r);
  EXPECT_NE(line.find(" bytes_sent=18446744073709551615 bytes_recv=0 duration=\"360000000ms\""), std::string::npos)
      << line;
}

TEST(AccessLog, StartRecordNamesIdentitiesOnlyForMutualTls) {
  mesh::Workload client, server;
  client.name = "client";
  client.ns = "a";
  server.name = "server";
  server.ns = "b";
  server.service_account = "srv";
  const Endpoint src{IpAddr::v4(1, 1, 1, 1), 1}, dst{IpAddr::v4(2, 2, 2, 2), 2};
  ConnectionRecord mtls = start_record(Direction::inbound, src, &client, "spiffe://td/ns/a/sa/c", dst, &server, true);
  EXPECT_EQ(mtls.src_workload, "client");
  EXPECT_EQ(mtls.src_namespace, "a");
  EXPECT_EQ(mtls.src_identity, "spiffe://td/ns/a/sa/c");
  EXPECT_EQ(mtls.dst_workload, "server");
  EXPECT_EQ(mtls.dst_identity, "spiffe://cluster.local/ns/b/sa/srv");
  ConnectionRecord plain = start_record(Direction::inbound, src, nullptr, "spiffe://td/ns/a/sa/c", dst, &server, false);
  EXPECT_TRUE(plain.src_workload.empty());
  EXPECT_TRUE(plain.src_identity.empty());
  EXPECT_TRUE(plain.dst_identity.empty());
  EXPECT_EQ(plain.dst_namespace, "b");
}

struct StillClock : Clock {
  MonoTime now() const override { return MonoTime{}; }
  WallTime wall_now() const override { return WallTime{}; }
};

// Upstream's byte directions: the istio_tcp_received_bytes_total series is
// the request (client to server), sent the response, for both reporters;
// the access log speaks from the reporting side.
TEST(TrafficReport, CountsBytesInUpstreamsDirections) {
  StillClock clock;
  for (Direction d : {Direction::outbound, Direction::inbound}) {
    metrics::Registry reg;
    TrafficMetrics m(reg);
    std::vector<ConnectionRecord> records;
    AccessLogSink sink = [&](const ConnectionRecord& r) { records.push_back(r); };
    ConnectionRecord start;
    start.direction = d;
    TrafficLabels labels;
    labels.reporter = d == Direction::outbound ? "source" : "destination";
    TrafficReport report(&m, labels, {&sink, nullptr, &clock, start});
    report.opened();
    report.closed(/*sent=*/100, /*received=*/7);  // 100 request bytes, 7 back
    const std::string text = reg.render();
    auto value_of = [&](std::string_view family) {
      const size_t at = text.find(std::string(family) + "{");
      if (at == std::string::npos) return std::string("missing");
      const size_t end = text.find('\n', at);
      return text.substr(text.rfind(' ', end) + 1, end - text.rfind(' ', end) - 1);
    };
    EXPECT_EQ(value_of("istio_tcp_received_bytes_total"), "100") << text;
    EXPECT_EQ(value_of("istio_tcp_sent_bytes_total"), "7") << text;
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].bytes_sent, d == Direction::outbound ? 100u : 7u);
    EXPECT_EQ(records[0].bytes_recv, d == Direction::outbound ? 7u : 100u);
  }
}

// The report looks its series up once; a response flag set when it ends is
// another label set, so the close must count there, not in the series the
// open used.
TEST(TrafficReport, AFlagSetAtTheEndCountsUnderItsOwnLabels) {
  metrics::Registry reg;
  TrafficMetrics m(reg);
  TrafficLabels labels;
  labels.reporter = "destination";
  TrafficReport report(&m, labels);
  report.opened();
  report.closed(1, 2, "connection closed due to policy change", kFlagDenied);
  TrafficLabels denied = labels;
  denied.response_flags = std::string(kFlagDenied);
  EXPECT_EQ(m.series(labels).counter(TrafficFamily::opened).value(), 1u);
  EXPECT_EQ(m.series(labels).counter(TrafficFamily::closed).value(), 0u);
  EXPECT_EQ(m.series(denied).counter(TrafficFamily::closed).value(), 1u);
  EXPECT_EQ(m.series(denied).counter(TrafficFamily::received_bytes).value(), 1u);
  EXPECT_EQ(m.series(denied).counter(TrafficFamily::sent_bytes).value(), 2u);
}

// The record goes through the node's log under target "access": info when
// it completed, error when it failed, and RUST_LOG=access=off silences it.
TEST(AccessLog, GoesThroughTheLogUnderTargetAccess) {
  struct Captured final : Log {
    LogFilter filter;
    std::vector<std::string> lines;
    bool enabled(LogLevel l, std::string_view t) const override { return filter.enabled(l, t); }
    void emit(LogLevel l, std::string_view t, std::string_view m, std::span<const LogField> f) override {
      std::string line;
      append_log_line(line, LogFormat::plain, WallTime{}, l, t, m, f);
      lines.push_back(line);
    }
  } log;
  log_access(log, sample());
  ConnectionRecord failed = sample();
  failed.error = "connection refused";
  log_access(log, failed);
  ASSERT_EQ(log.lines.size(), 2u);
  EXPECT_EQ(log.lines[0], "1970-01-01T00:00:00.000000Z\tinfo\taccess\tconnection complete\t" + format_access_log(sample()) + "\n");
  EXPECT_EQ(log.lines[1].find("1970-01-01T00:00:00.000000Z\terror\taccess\tconnection complete\t"), 0u);
  log.filter = *LogFilter::parse("info,access=off");
  log_access(log, failed);
  EXPECT_EQ(log.lines.size(), 2u);
}

}  // namespace
}  // namespace zt::core::proxy
