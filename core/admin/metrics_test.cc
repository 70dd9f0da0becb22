// Exact Prometheus text output of the metrics registry.
#include "core/admin/metrics.h"

#include <gtest/gtest.h>

namespace zt::admin {
namespace {

TEST(Metrics, RendersFamiliesByNameAndSeriesByLabels) {
  Registry reg;
  reg.declare("zz_total", MetricType::counter, "Last family.");
  reg.declare("aa_gauge", MetricType::gauge, "First family.");
  Labels b = {{"k", "b"}};
  Labels a = {{"k", "a"}};
  reg.counter("zz_total", b).inc(2);
  reg.counter("zz_total", a).inc();
  reg.gauge("aa_gauge", {}).set(-4);
  EXPECT_EQ(reg.render(),
            "# HELP aa_gauge First family.\n"
            "# TYPE aa_gauge gauge\n"
            "aa_gauge -4\n"
            "# HELP zz_total Last family.\n"
            "# TYPE zz_total counter\n"
            "zz_total{k=\"a\"} 1\n"
            "zz_total{k=\"b\"} 2\n");
}

TEST(Metrics, MergeSumsSeriesAndKeepsFamiliesOfBoth) {
  Registry worker1, worker2, total;
  worker1.declare("conns_total", MetricType::counter, "Connections.");
  worker1.counter("conns_total", {{"k", "a"}}).inc(2);
  worker2.counter("conns_total", {{"k", "a"}}).inc(3);
  worker2.counter("conns_total", {{"k", "b"}}).inc();
  worker2.gauge("open", {}).set(4);
  total.merge(worker1);
  total.merge(worker2);
  EXPECT_EQ(total.render(),
            "# HELP conns_total Connections.\n"
            "# TYPE conns_total counter\n"
            "conns_total{k=\"a\"} 5\n"
            "conns_total{k=\"b\"} 1\n"
            "# TYPE open gauge\n"
            "open 4\n");
}

TEST(Metrics, LabelOrderDoesNotMakeANewSeries) {
  Registry reg;
  Labels xy = {{"x", "1"}, {"y", "2"}};
  Labels yx = {{"y", "2"}, {"x", "1"}};
  reg.counter("c_total", xy).inc();
  reg.counter("c_total", yx).inc(4);
  EXPECT_EQ(reg.series_count("c_total"), 1u);
  EXPECT_EQ(reg.counter("c_total", xy).value(), 5u);
  EXPECT_EQ(reg.render(), "# TYPE c_total counter\nc_total{x=\"1\",y=\"2\"} 5\n");
}

TEST(Metrics, EscapesLabelValuesAndHelp) {
  Registry reg;
  reg.declare("e_total", MetricType::counter, "Help with \\ and\nnewline \"quoted\".");
  Labels tricky = {{"v", "a\\b\"c\nd"}};
  reg.counter("e_total", tricky).inc();
  EXPECT_EQ(reg.render(),
            "# HELP e_total Help with \\\\ and\\nnewline \"quoted\".\n"
            "# TYPE e_total counter\n"
            "e_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(Metrics, GaugesMoveBothWays) {
  Registry reg;
  Gauge& g = reg.gauge("g", {});
  g.add(5);
  g.add(-2);
  EXPECT_EQ(g.value(), 3);
  EXPECT_EQ(&g, &reg.gauge("g", {}));  // references are stable
}

TEST(Metrics, NameValidation) {
  EXPECT_TRUE(is_valid_metric_name("istio_tcp_sent_bytes_total"));
  EXPECT_TRUE(is_valid_metric_name("a:b"));
  EXPECT_FALSE(is_valid_metric_name(""));
  EXPECT_FALSE(is_valid_metric_name("1abc"));
  EXPECT_FALSE(is_valid_metric_name("a-b"));
  EXPECT_TRUE(is_valid_label_name("source_workload"));
  EXPECT_FALSE(is_valid_label_name("__reserved"));
  EXPECT_FALSE(is_valid_label_name("a:b"));
}

TEST(Metrics, IstioFamiliesAndBuildInfo) {
  Registry reg;
  declare_istio_metrics(reg);
  set_build_info(reg, "1.24.0");
  TrafficLabels labels;
  labels.reporter = "source";
  labels.source_workload = "client";
  labels.destination_service = "server.ns.svc.cluster.local";
  labels.connection_security_policy = "mutual_tls";
  reg.counter(kTcpConnectionsOpened, labels.to_labels()).inc();
  reg.counter(kTcpSentBytes, labels.to_labels()).inc(1024);
  std::string text = reg.render();
  EXPECT_NE(text.find("# TYPE istio_build gauge\nistio_build{component=\"ztunnel\",tag=\"1.24.0\"} 1\n"),
            std::string::npos)
      << text;
  const std::string series =
      "{connection_security_policy=\"mutual_tls\",destination_app=\"unknown\",destination_canonical_revision="
      "\"unknown\",destination_canonical_service=\"unknown\",destination_cluster=\"unknown\",destination_principal="
      "\"unknown\",destination_service=\"server.ns.svc.cluster.local\",destination_service_name=\"unknown\","
      "destination_service_namespace=\"unknown\",destination_version=\"unknown\",destination_workload=\"unknown\","
      "destination_workload_namespace=\"unknown\",reporter=\"source\",request_protocol=\"tcp\",response_flags=\"-\","
      "source_app=\"unknown\",source_canonical_revision=\"unknown\",source_canonical_service=\"unknown\","
      "source_cluster=\"unknown\",source_principal=\"unknown\",source_version=\"unknown\",source_workload=\"client\","
      "source_workload_namespace=\"unknown\"}";
  EXPECT_NE(text.find("istio_tcp_connections_opened_total" + series + " 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("istio_tcp_sent_bytes_total" + series + " 1024\n"), std::string::npos) << text;
  // Declared families render their HELP/TYPE even with no series yet.
  EXPECT_NE(text.find("# TYPE istio_dns_requests_total counter\n"), std::string::npos);
  EXPECT_EQ(reg.series_count(kTcpConnectionsFailed), 0u);
}

}  // namespace
}  // namespace zt::admin

namespace zt::admin {
namespace {

TEST(Metrics, TrafficLabelsNameTheSameSeriesAsTheirLabelList) {
  Registry reg;
  TrafficLabels l;
  l.reporter = "source";
  l.source_workload = "sleep";
  reg.traffic_counter(kTcpConnectionsOpened, l).inc(2);
  reg.counter(kTcpConnectionsOpened, l.to_labels()).inc(3);
  EXPECT_EQ(reg.traffic_counter(kTcpConnectionsOpened, l).value(), 5u);
  EXPECT_EQ(reg.series_count(kTcpConnectionsOpened), 1u);
  // Another family, or another label value, is another series.
  reg.traffic_counter(kTcpConnectionsClosed, l).inc();
  l.response_flags = "DENY";
  reg.traffic_counter(kTcpConnectionsOpened, l).inc();
  EXPECT_EQ(reg.series_count(kTcpConnectionsOpened), 2u);
  EXPECT_EQ(reg.series_count(kTcpConnectionsClosed), 1u);
  EXPECT_EQ(reg.traffic_counter(kTcpConnectionsOpened, l).value(), 1u);
}

TEST(Metrics, TrafficSeriesCreatesEachFamilysSeriesOnFirstUse) {
  Registry reg;
  TrafficLabels l;
  l.reporter = "source";
  Registry::TrafficSeries& s = reg.traffic_series(l);
  EXPECT_EQ(&reg.traffic_series(l), &s);  // one entry per label set
  EXPECT_EQ(reg.series_count(kTcpConnectionsOpened), 0u);
  s.counter(kTcpConnectionsOpened).inc(4);
  EXPECT_EQ(reg.series_count(kTcpConnectionsOpened), 1u);
  EXPECT_EQ(reg.series_count(kTcpConnectionsClosed), 0u);  // not rendered as a 0 series
  EXPECT_EQ(reg.counter(kTcpConnectionsOpened, l.to_labels()).value(), 4u);
  EXPECT_EQ(&reg.traffic_counter(kTcpConnectionsOpened, l), &s.counter(kTcpConnectionsOpened));
  TrafficLabels other = l;
  other.response_flags = "DENY";
  EXPECT_NE(&reg.traffic_series(other), &s);
}

TEST(Metrics, ACopiedRegistryCountsOnItsOwn) {
  // The series cache points into its own registry: a copy (how the binary
  // scrapes a worker's registry) must never count into the original.
  Registry reg;
  TrafficLabels l;
  reg.traffic_counter(kTcpConnectionsOpened, l).inc();
  Registry copy = reg;
  copy.traffic_counter(kTcpConnectionsOpened, l).inc(10);
  EXPECT_EQ(reg.traffic_counter(kTcpConnectionsOpened, l).value(), 1u);
  EXPECT_EQ(copy.traffic_counter(kTcpConnectionsOpened, l).value(), 11u);
  Registry assigned;
  assigned.traffic_counter(kTcpConnectionsOpened, l).inc(7);
  assigned = reg;
  assigned.traffic_counter(kTcpConnectionsOpened, l).inc(100);
  EXPECT_EQ(reg.traffic_counter(kTcpConnectionsOpened, l).value(), 1u);
  EXPECT_EQ(assigned.traffic_counter(kTcpConnectionsOpened, l).value(), 101u);
  Registry moved = std::move(copy);
  moved.traffic_counter(kTcpConnectionsOpened, l).inc();
  EXPECT_EQ(moved.traffic_counter(kTcpConnectionsOpened, l).value(), 12u);
}

}  // namespace
}  // namespace zt::admin
